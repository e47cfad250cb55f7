"""What `compare` adds to the single numbers: intervals, significance, pretraining-seed groups.

* Intervals: the 95% interval each result file states (`summary.pretrained.<metric>`:
  bootstrap over shapes for CPAC, Student t over seeds for classification).
* Significance of each run against the first (the reference row), on paired data:
  CPAC per-shape values of the shapes both runs scored (side file `*.per_shape.json`,
  seed-averaged; mae: absolute error, rmse: squared error, iou@tau: per-shape IoU) with the
  Wilcoxon signed-rank test; classification test accuracy of the seeds both runs ran with
  the paired t-test. Marked `*` when p < 0.05.
* Groups: result directories whose pretraining configs (`config.json` of the checkpoint the
  bundle evaluated) differ only in `seed`, `data.mix_seed`, `workdir` and fields that do
  not change the trained model (`train.resume.NO_EFFECT_FIELDS`: logging, cache checks,
  loaders) are one group (the pretraining seeds of one run); a group row shows the mean over
  its members and Student's t interval over them, and groups are compared with Welch's
  t-test (different seeds are not paired).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Sequence

import numpy as np

from nepa3d_jax.eval import stats

log = logging.getLogger("nepa3d_jax.eval.compare")
SEED_FIELDS = ("seed", "data.mix_seed", "workdir")


def read_json(path: str) -> dict | None:
    """A result file's object; None when absent, and None with a warning when it is not a
    JSON object (compare goes on with the other files)."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        log.warning("compare: %s cannot be read (%s); treated as missing", path, err)
        return None
    if not isinstance(data, dict):
        log.warning("compare: %s holds no result object; treated as missing", path)
        return None
    return data


def interval(result: dict | None, key: str) -> tuple[float, float] | None:
    block = (((result or {}).get("summary") or {}).get("pretrained") or {}).get(key) or {}
    lo, hi = block.get("ci_low"), block.get("ci_high")
    return (float(lo), float(hi)) if lo is not None and hi is not None else None


def cpac_per_shape(run_dir: str, result: dict | None) -> dict[str, dict[str, float]] | None:
    """{metric: {shape path: seed-averaged per-shape value}} from the CPAC side file."""
    if not result:
        return None
    path = result.get("per_shape_json") or os.path.join(run_dir, "cpac_udf.per_shape.json")
    if not os.path.isabs(path) and not os.path.isfile(path):
        path = os.path.join(run_dir, os.path.basename(path))
    side = read_json(path) if path else None
    if not side or "pretrained" not in side.get("stats", {}):
        return None
    st = {k: np.mean(np.asarray(v, np.float64), axis=0)
          for k, v in side["stats"]["pretrained"].items()}
    iou = np.where(st["union"] > 0, st["inter"] / np.maximum(st["union"], 1e-9), 1.0)
    per = {"mae": st["abs_err"], "rmse": st["sq_err"], "iou@tau": iou}
    return {m: dict(zip(side["paths"], map(float, v))) for m, v in per.items()}


def cpac_paired(run_dir: str, result: dict | None, key: str
                ) -> tuple[str, dict[str, float] | None]:
    """`Job.paired` of CPAC: per-shape values (Wilcoxon signed-rank)."""
    per = cpac_per_shape(run_dir, result)
    return "wilcoxon", per.get(key) if per else None


def cls_paired(run_dir: str, result: dict | None, key: str
               ) -> tuple[str, dict[int, float] | None] | None:
    """`Job.paired` of classification: test accuracy per fine-tune seed (paired t-test);
    validation accuracy selects the epoch and is not tested."""
    return ("t", cls_per_seed(result, key)) if key == "test_acc" else None


def cls_per_seed(result: dict | None, key: str) -> dict[int, float] | None:
    rows = (result or {}).get("per_seed")
    if not rows:
        return None
    return {int(r["seed"]): float(r[key]) for r in rows if r.get(key) is not None}


def paired(ref: dict | None, other: dict | None, kind: str) -> dict[str, Any] | None:
    """Paired test on the common keys (shapes or seeds); None without two common keys."""
    if not ref or not other:
        return None
    common = sorted(set(ref) & set(other))
    if len(common) < 2:
        return None
    return stats.paired_test([other[k] for k in common], [ref[k] for k in common], kind)


def source(run_dir: str) -> str | None:
    """The run folder of the checkpoint a bundle folder evaluated (None: not a bundle)."""
    ckpt = (read_json(os.path.join(run_dir, "bundle.json")) or {}).get("ckpt")
    if not ckpt:
        return None
    return os.path.abspath(ckpt if os.path.isdir(ckpt) else os.path.dirname(ckpt))


def config_key(run_dir: str) -> str | None:
    """The pretraining config of the evaluated checkpoint, seed fields removed (JSON)."""
    folder = source(run_dir)
    if folder is None:
        return None
    config = read_json(os.path.join(folder, "config.json"))
    if not config:
        return None
    from nepa3d_jax.config.record import flatten
    from nepa3d_jax.train.resume import NO_EFFECT_FIELDS

    flat = flatten({k: v for k, v in config.items() if k not in ("derived", "config_source")})
    return json.dumps({k: v for k, v in sorted(flat.items())
                       if k not in SEED_FIELDS and k not in NO_EFFECT_FIELDS},
                      sort_keys=True, default=str)


def group_runs(runs: Sequence[dict], headers: Sequence[str]) -> list[dict]:
    """Merge runs with the same `config_key` into one row: mean and t interval per column
    (a run evaluated twice is not a second seed: it stays a row of its own)."""
    groups: dict[str, list[dict]] = {}
    order: list[str] = []
    for i, r in enumerate(runs):
        key = r.get("config_key") or f"#{i}"
        if key in groups and r.get("source") in {m.get("source") for m in groups[key]}:
            key = f"{key}#{i}"
        if key not in groups:
            order.append(key)
        groups.setdefault(key, []).append(r)
    out = []
    tags = [{m.get("tag") for m in groups[key]} for key in order]
    for key, tag in zip(order, tags):
        members = groups[key]
        if len(members) == 1:
            out.append(members[0])
            continue
        # Named by the members' common run tag when no other row shares it (a study's recipe).
        common = next(iter(tag)) if len(tag) == 1 and tags.count(tag) == 1 else ""
        name = (f"{common} ({len(members)} seeds)" if common
                else f"{members[0]['name']} (+{len(members) - 1} seeds)")
        row = dict(name=name,
                   readout=members[0]["readout"], values={}, intervals={}, members=members,
                   member_values={}, baselines={})
        for header in headers:
            vals = [m["values"][header] for m in members if m["values"][header] is not None]
            row["member_values"][header] = vals
            if vals:
                t = stats.t_interval(vals)
                row["values"][header] = t["mean"]
                if t["ci_low"] is not None:
                    row["intervals"][header] = (t["ci_low"], t["ci_high"])
            else:
                row["values"][header] = None
            row["baselines"][header] = _mean_baselines(members, header)
        out.append(row)
    return out


def _mean_baselines(members: Sequence[dict], header: str) -> dict[str, tuple]:
    """A group's baselines: the mean over the members that state one (no interval)."""
    found: dict[str, list[float]] = {}
    for m in members:
        for name, (v, _) in (m.get("baselines") or {}).get(header, {}).items():
            found.setdefault(name, []).append(v)
    return {name: (float(np.mean(v)), None) for name, v in found.items()}


def welch(a: Sequence[float], b: Sequence[float]) -> dict[str, Any] | None:
    """Welch's two-sided t-test between two groups of pretraining seeds."""
    from scipy import stats as scipy_stats

    if len(a) < 2 or len(b) < 2:
        return None
    if np.std(a) == 0 and np.std(b) == 0:  # no spread: the means either match or do not
        p = 1.0 if np.mean(a) == np.mean(b) else 0.0
    else:
        p = float(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue)
    if not np.isfinite(p):
        return None
    return {"test": "Welch t-test over pretraining seeds (two-sided)", "n": len(a) + len(b),
            "mean_diff": float(np.mean(a) - np.mean(b)), "p": p,
            "significant": bool(p < stats.ALPHA)}
