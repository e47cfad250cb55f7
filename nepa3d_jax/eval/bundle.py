"""The post-pretrain evaluation bundle for one checkpoint: ScanObjectNN classification,
CPAC-UDF, and ModelNet40 classification when its cache exists (skipped with a logged
reason otherwise). Writes `results/<run_tag>/` (one JSON + log per step, `bundle.json`
with every step's status); a failing step does not stop the others, but the bundle raises
at the end so the job exits non-zero.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable

import ml_collections

from nepa3d_jax.eval.cls.finetune import write_json_atomic
from nepa3d_jax.run_log import close_run_log, open_run_log

STEPS = ("scan", "cpac", "modelnet")
OUT_NAMES = dict(scan="cls_scanobjectnn", cpac="cpac_udf", modelnet="cls_modelnet40")


def run_tag_of(ckpt: str) -> str:
    """`runs/x` -> `x`; `runs/x/last.pt` -> `x` (the run a checkpoint belongs to)."""
    path = os.path.normpath(ckpt)
    if os.path.isfile(path) or path.endswith(".pt"):
        path = os.path.dirname(path) or path
    return os.path.basename(path) or "run"


def _summary(name: str, result: dict) -> dict:
    keys = ("best_val", "test_acc") if name != "cpac" else ("mae", "rmse", "iou@tau")
    out = {k: result.get(k) for k in keys if k in result}
    rnd = (result.get("baselines") or {}).get("random_init") or {}
    main = "mae" if name == "cpac" else "test_acc"
    if main in rnd:
        out[f"random_init_{main}"] = rnd[main]
    return out


def _runners() -> dict[str, Callable[[ml_collections.ConfigDict], dict]]:
    from nepa3d_jax.eval.cpac import udf as cpac_udf
    from nepa3d_jax.eval.cls import finetune as finetune_cls
    return dict(scan=finetune_cls.run, modelnet=finetune_cls.run, cpac=cpac_udf.run)


def run(config: ml_collections.ConfigDict,
        runners: dict[str, Callable] | None = None) -> dict:
    """Runs the enabled steps for `config.ckpt`; returns (and writes) the bundle summary."""
    c = config
    if not c.ckpt:
        raise ValueError("config.ckpt is empty: name the run directory or .pt to evaluate")
    if not os.path.exists(c.ckpt):
        raise ValueError(f"config.ckpt={c.ckpt} does not exist")
    tag = c.run_tag or run_tag_of(c.ckpt)
    out_dir = os.path.join(c.results_root, tag)
    os.makedirs(out_dir, exist_ok=True)
    log = open_run_log("nepa3d_jax.eval_bundle", os.path.join(out_dir, "bundle.log"),
                       "%(asctime)s %(message)s", "%H:%M:%S", mode="a")
    runners = runners or _runners()
    summary = dict(run_tag=tag, ckpt=c.ckpt, results_dir=out_dir, steps={})
    failed = []
    try:
        log.info(f"[bundle] run_tag={tag} ckpt={c.ckpt} results={out_dir}")
        for name in STEPS:
            sub = ml_collections.ConfigDict(c[name].to_dict())
            sub.ckpt = c.ckpt
            if str(c.get("seeds", "") or ""):
                sub.seeds = str(c.seeds)  # one list of evaluation seeds for every step
            sub.out_json = os.path.join(out_dir, OUT_NAMES[name] + ".json")
            step = dict(out_json=sub.out_json)
            if not c[f"run_{name}"]:
                step.update(status="skipped", reason=f"run_{name}=False")
            elif name == "modelnet" and not os.path.isdir(sub.cache_root):
                step.update(status="skipped",
                            reason=f"ModelNet40 cache not found: {sub.cache_root} "
                                   "(set modelnet.cache_root to run it)")
            else:
                log.info(f"[bundle] === {name}: {OUT_NAMES[name]} ===")
                t0 = time.time()
                try:
                    result = runners[name](sub)
                    step.update(status="ok", seconds=time.time() - t0,
                                summary=_summary(name, result))
                except Exception as e:  # noqa: BLE001 -- recorded; raised at the end
                    step.update(status="failed", seconds=time.time() - t0,
                                error=f"{type(e).__name__}: {e}")
                    failed.append(name)
                    log.info(traceback.format_exc())
            if step["status"] == "skipped":
                log.info(f"[skip] {name}: {step['reason']}")
            else:
                log.info(f"[bundle] {name}: {step['status']} "
                         f"{step.get('summary', step.get('error', ''))}")
            summary["steps"][name] = step
            write_json_atomic(os.path.join(out_dir, "bundle.json"), summary)
    finally:
        close_run_log(log)
    if failed:
        raise RuntimeError(f"eval bundle {tag}: step(s) {failed} failed; see "
                           f"{os.path.join(out_dir, 'bundle.json')}")
    return summary
