"""`train.eval_after`: run an evaluator on the finished run directory; `results.json`.

The evaluator's config is its registered defaults (`nepa3d_jax.jobs`) updated with the
pretraining config's `eval.<name>` block when present, with `ckpt` set to this run's workdir
and `out_json` inside it; a relative `render_png` (the CPAC sheet) is taken inside the workdir
too, so `--config.workdir=runs/other` never writes into another run's folder. Results of the run (and of the evaluator) land in
`<workdir>/results.json`.
"""

from __future__ import annotations

import json
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
    if "render_png" in sub and sub.render_png and not os.path.isabs(sub.render_png):
        sub.render_png = os.path.join(str(config.workdir), sub.render_png)
    return sub


def names(eval_after: str) -> list[str]:
    """`train.eval_after` as a list ("cpac_udf,finetune_cls" runs both, in that order)."""
    return [n.strip() for n in str(eval_after or "").split(",") if n.strip()]


def run_after_training(config: ml_collections.ConfigDict, name: str) -> dict[str, Any]:
    return jobs.run(evaluator_config(config, name), field=FIELD, evaluators_only=True)


def _previous_losses(path: pathlib.Path) -> list[list]:
    try:
        losses = json.loads(path.read_text()).get("losses") or []
        return [[int(s), loss] for s, loss in losses]
    except (OSError, ValueError, TypeError, AttributeError):
        return []  # none yet, or unreadable: this segment's losses only


def write_results(workdir: str | os.PathLike, result: dict[str, Any]) -> str | None:
    """`<workdir>/results.json` (process 0): the run summary and any evaluator results.

    `losses` covers the whole run: a resumed segment (`resumed_from` = S) keeps the earlier
    segments' logged losses up to step S from the previous results.json, diverged or not.
    """
    if jax.process_index() != 0:
        return None
    path = pathlib.Path(workdir) / "results.json"
    summary = {k: v for k, v in result.items() if k not in ("state",)}
    own = [[int(s), float(l)] for s, l in result.get("losses", [])]
    start = result.get("resumed_from") or 0
    summary["losses"] = [e for e in _previous_losses(path) if e[0] <= start] + own if start \
        else own
    return atomic_io.write_json_atomic(path, summary)  # NaN -> null, listed under "undefined"
