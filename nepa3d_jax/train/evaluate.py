"""`train.eval_after`: run an evaluator on the finished run directory; `results.json`.

The evaluator's config is its registered defaults (`nepa3d_jax.jobs`) updated with the
pretraining config's `eval.<name>` block when present, with `ckpt` set to this run's workdir
and `out_json` inside it. Results of the run (and of the evaluator) land in
`<workdir>/results.json`.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import jax
import ml_collections

from nepa3d_jax import atomic_io, jobs

FIELD = "train.eval_after"


def evaluator_config(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
    """The evaluator's defaults + the run's `eval.<name>` block, pointed at this run."""
    jobs.get(name, FIELD, evaluators_only=True)
    sub = jobs.default_config(name)
    block = config.eval[name] if name in config.eval else None
    if block is not None:
        sub.update(block.to_dict() if hasattr(block, "to_dict") else dict(block))
    sub.job = name
    sub.ckpt = str(config.workdir)
    sub.out_json = os.path.join(str(config.workdir), f"{name}.json")
    return sub


def names(eval_after: str) -> list[str]:
    """`train.eval_after` as a list ("cpac_udf,finetune_cls" runs both, in that order)."""
    return [n.strip() for n in str(eval_after or "").split(",") if n.strip()]


def run_after_training(config: ml_collections.ConfigDict, name: str) -> dict[str, Any]:
    return jobs.run(evaluator_config(config, name), field=FIELD, evaluators_only=True)


def write_results(workdir: str | os.PathLike, result: dict[str, Any]) -> str | None:
    """`<workdir>/results.json` (process 0): the run summary and any evaluator results."""
    if jax.process_index() != 0:
        return None
    path = pathlib.Path(workdir) / "results.json"
    summary = {k: v for k, v in result.items() if k not in ("state",)}
    summary["losses"] = [[int(s), float(l)] for s, l in result.get("losses", [])]
    return atomic_io.write_json_atomic(path, summary)  # NaN -> null, listed under "undefined"
