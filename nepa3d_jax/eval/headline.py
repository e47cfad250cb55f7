"""The few numbers a reader of `results.json` wants first: does pretraining beat its baselines?

`headline(evals)` condenses the evaluator results of `train.eval_after`: every registered
job with a `headline` name (`nepa3d_jax.jobs`) gets a block under that name, for its first
metric (`cpac_mae`, `cls_test_acc`, ...):
  <model>       {mean, ci_low, ci_high, ci, per_seed} for pretrained and each baseline
  seeds         the evaluation seeds
  p             {pretrained_vs_<baseline>: two-sided p of the paired test}
and `verdict` holds one sentence per evaluator (`eval.verdict`, which owns the wording).
A job may word its block itself (`Job.headline_hook`); `study_block` serves results shaped
like the two studies' (`summary.<model>.<metric>`, `significance.pretrained_vs_<baseline>`).
"""

from __future__ import annotations

from typing import Any, Mapping

from nepa3d_jax import jobs
from nepa3d_jax.eval import verdict

INTERVAL_KEYS = ("mean", "ci_low", "ci_high", "ci", "per_seed")


def _interval(block: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not block:
        return None
    return {k: block.get(k) for k in INTERVAL_KEYS}


def study_block(job: jobs.Job, result: Mapping[str, Any], steps: int | None = None
                ) -> dict[str, Any] | None:
    """The headline block of a study result for the job's first metric, with its verdict."""
    summary = result.get("summary")
    if not summary or not job.metrics:
        return None
    metric = job.metrics[0]
    sig = result.get("significance") or {}
    out: dict[str, Any] = {name: _interval((s or {}).get(metric.key))
                           for name, s in summary.items()}
    out["seeds"] = result.get("seeds")
    out["p"] = {k: (v or {}).get("p") for k, v in sig.items()}
    p = {k.removeprefix("pretrained_vs_"): (v or {}).get("p") for k, v in sig.items()}
    scores = {name: block for name, block in out.items()
              if name in summary and block is not None}
    out["verdict"] = verdict.verdict(f"{job.title} {metric.key}", metric.higher_is_better,
                                     scores, p, steps)
    return out


def block(name: str, result: Mapping[str, Any] | None, steps: int | None = None
          ) -> tuple[str, dict[str, Any]] | None:
    """(headline name, block with its "verdict") of one evaluator's result, or None."""
    job = jobs.JOBS.get(name)
    if job is None or not job.headline or not result:
        return None
    hook = jobs.resolve(job.headline_hook) if job.headline_hook else study_block
    out = hook(job, result, steps)
    return None if out is None else (job.headline, out)


def headline(evals: Mapping[str, Any], steps: int | None = None) -> dict[str, Any]:
    """The headline of `evals` (evaluator name -> result), in their order; `steps`: the
    pretraining steps of the evaluated checkpoint (a short run's verdict says so)."""
    out: dict[str, Any] = {"verdict": []}
    for name, result in evals.items():
        found = block(name, result, steps)
        if found is None:
            continue
        key, body = found
        line = body.pop("verdict", None)
        out[key] = body
        if line:
            out["verdict"].append(line)
    return out
