"""The post-pretrain evaluation bundle for one checkpoint: every registered evaluator output
(`nepa3d_jax.jobs`: ScanObjectNN classification, ModelNet40 classification when its cache
exists, CPAC-UDF), in registry order. Writes `results/<run_tag>/` (one JSON + log per step,
`bundle.json` with every step's status, summary and verdict); a failing step does not stop
the others, but the bundle raises at the end so the job exits non-zero.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from typing import Any, Mapping

import ml_collections

from nepa3d_jax import atomic_io, jobs
from nepa3d_jax.eval import headline
from nepa3d_jax.run_log import close_run_log, open_run_log


def run_tag_of(ckpt: str) -> str:
    """`runs/x` -> `x`; `runs/x/last.pt` -> `x` (the run a checkpoint belongs to)."""
    path = os.path.normpath(ckpt)
    if os.path.isfile(path) or path.endswith(".pt"):
        path = os.path.dirname(path) or path
    return os.path.basename(path) or "run"


def step_summary(job: jobs.Job, result: Mapping[str, Any]) -> dict[str, Any]:
    """The job's metrics as the result states them, and random-init's headline metric."""
    out = {m.key: result.get(m.key) for m in job.metrics if m.key in result}
    rnd = (result.get("baselines") or {}).get("random_init") or {}
    main = job.metrics[0].key if job.metrics else None
    if main in rnd:
        out[f"random_init_{main}"] = rnd[main]
    return out


def _run_output(job: jobs.Job, sub: ml_collections.ConfigDict) -> dict:
    sub.job = job.name
    return jobs.run(sub, field=f"bundle step {job.name}")


def _step_config(c: ml_collections.ConfigDict, output: jobs.Output, out_dir: str
                 ) -> ml_collections.ConfigDict:
    sub = ml_collections.ConfigDict(c[output.step].to_dict())
    sub.ckpt = c.ckpt
    if str(c.seeds):
        sub.seeds = str(c.seeds)  # one list of evaluation seeds for every step
    sub.out_json = os.path.join(out_dir, output.name + ".json")
    return sub


def run(config: ml_collections.ConfigDict,
        runners: dict[str, Callable] | None = None) -> dict:
    """Runs the enabled steps for `config.ckpt`; returns (and writes) the bundle summary.
    `runners` (step -> function of the step's config) replaces the registered jobs (tests)."""
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
    summary = dict(run_tag=tag, ckpt=c.ckpt, results_dir=out_dir, steps={})
    failed = []
    try:
        log.info(f"[bundle] run_tag={tag} ckpt={c.ckpt} results={out_dir}")
        for job, output in jobs.outputs():
            name = output.step
            sub = _step_config(c, output, out_dir)
            step: dict[str, Any] = dict(out_json=sub.out_json)
            if not c[f"run_{name}"]:
                step.update(status="skipped", reason=f"run_{name}=False")
            elif output.optional and not os.path.isdir(str(sub.cache_root)):
                step.update(status="skipped",
                            reason=f"{output.label} cache not found: {sub.cache_root} "
                                   f"(set {name}.cache_root to run it)")
            else:
                log.info(f"[bundle] === {name}: {output.name} ===")
                t0 = time.time()
                try:
                    result = (runners[name](sub) if runners is not None
                              else _run_output(job, sub))
                    step.update(status="ok", seconds=time.time() - t0,
                                summary=step_summary(job, result))
                    found = headline.block(job.name, result)
                    if found and found[1].get("verdict"):
                        step["verdict"] = found[1]["verdict"]
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
                if "verdict" in step:
                    log.info(f"[bundle] {name}: {step['verdict']}")
            summary["steps"][name] = step
            atomic_io.write_json_atomic(os.path.join(out_dir, "bundle.json"), summary, indent=2,
                                 sort_keys=True)
    finally:
        close_run_log(log)
    if failed:
        raise RuntimeError(f"eval bundle {tag}: step(s) {failed} failed; see "
                           f"{os.path.join(out_dir, 'bundle.json')}")
    return summary
