"""What `compare` adds to the single numbers: intervals, significance, pretraining-seed groups.

* Intervals: the 95% interval each result file states (`summary.pretrained.<metric>`:
  bootstrap over shapes for CPAC, Student t over seeds for classification).
* Significance of each run against the first (the reference row), on paired data:
  CPAC per-shape values of the shapes both runs scored (side file `*.per_shape.json`,
  seed-averaged; mae: absolute error, rmse: squared error, iou@tau: per-shape IoU) with the
  Wilcoxon signed-rank test; classification test accuracy of the seeds both runs ran with
  the paired t-test. Marked `*` when p < 0.05.
* Groups: result directories whose pretraining configs (`config.json` of the checkpoint the
  bundle evaluated) differ only in `seed`, `data.mix_seed` and `workdir` are one group (the
  pretraining seeds of one run); a group row shows the mean over its members and Student's
  t interval over them, and groups are compared with Welch's t-test (different seeds are
  not paired).
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import numpy as np

from nepa3d_jax.eval import stats

SEED_FIELDS = ("seed", "data.mix_seed", "workdir")


def _read(path: str) -> dict | None:
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


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
    side = _read(path) if path else None
    if not side or "pretrained" not in side.get("stats", {}):
        return None
    st = {k: np.mean(np.asarray(v, np.float64), axis=0)
          for k, v in side["stats"]["pretrained"].items()}
    iou = np.where(st["union"] > 0, st["inter"] / np.maximum(st["union"], 1e-9), 1.0)
    per = {"mae": st["abs_err"], "rmse": st["sq_err"], "iou@tau": iou}
    return {m: dict(zip(side["paths"], map(float, v))) for m, v in per.items()}


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


def config_key(run_dir: str) -> str | None:
    """The pretraining config of the evaluated checkpoint, seed fields removed (JSON)."""
    bundle = _read(os.path.join(run_dir, "bundle.json")) or {}
    ckpt = bundle.get("ckpt")
    if not ckpt:
        return None
    folder = ckpt if os.path.isdir(ckpt) else os.path.dirname(ckpt)
    config = _read(os.path.join(folder, "config.json"))
    if not config:
        return None
    from nepa3d_jax.config.record import flatten

    flat = flatten({k: v for k, v in config.items() if k not in ("derived", "config_source")})
    return json.dumps({k: v for k, v in sorted(flat.items()) if k not in SEED_FIELDS},
                      sort_keys=True, default=str)


def group_runs(runs: Sequence[dict], columns: Sequence[tuple]) -> list[dict]:
    """Merge runs with the same `config_key` into one row: mean and t interval per column."""
    groups: dict[str, list[dict]] = {}
    order: list[str] = []
    for i, r in enumerate(runs):
        key = r.get("config_key") or f"#{i}"
        if key not in groups:
            order.append(key)
        groups.setdefault(key, []).append(r)
    out = []
    for key in order:
        members = groups[key]
        if len(members) == 1:
            out.append(members[0])
            continue
        row = dict(name=f"{members[0]['name']} (+{len(members) - 1} seeds)",
                   readout=members[0]["readout"], values={}, intervals={}, members=members,
                   member_values={})
        for header, *_ in columns:
            vals = [m["values"][header] for m in members if m["values"][header] is not None]
            row["member_values"][header] = vals
            if vals:
                t = stats.t_interval(vals)
                row["values"][header] = t["mean"]
                if t["ci_low"] is not None:
                    row["intervals"][header] = (t["ci_low"], t["ci_high"])
            else:
                row["values"][header] = None
        out.append(row)
    return out


def welch(a: Sequence[float], b: Sequence[float]) -> dict[str, Any] | None:
    """Welch's two-sided t-test between two groups of pretraining seeds."""
    from scipy import stats as sst

    if len(a) < 2 or len(b) < 2:
        return None
    if np.std(a) == 0 and np.std(b) == 0:  # no spread: the means either match or do not
        p = 1.0 if np.mean(a) == np.mean(b) else 0.0
    else:
        p = float(sst.ttest_ind(a, b, equal_var=False).pvalue)
    if not np.isfinite(p):
        return None
    return {"test": "Welch t-test over pretraining seeds (two-sided)", "n": len(a) + len(b),
            "mean_diff": float(np.mean(a) - np.mean(b)), "p": p,
            "significant": bool(p < stats.ALPHA)}
