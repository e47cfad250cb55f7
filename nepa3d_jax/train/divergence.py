"""Divergence: a non-finite loss or gradient norm stops the run before anything is saved.

The loop checks values it already has on the host: the metrics fetched at the logging
interval, and the last step's metrics right before a checkpoint save (a save synchronises
anyway). No step pays an extra device->host transfer. A NaN state is therefore never written,
so `keep_checkpoints` can never rotate the last finite checkpoint out.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp

WATCHED = ("loss", "grad_norm", "state")
EXIT_DIVERGED = 3  # `main`'s exit status for a run stopped by this check


class DivergenceError(RuntimeError):
    """The run produced a non-finite loss or gradient norm; `step` names where it was seen."""

    def __init__(self, message: str, step: int, last_checkpoint: int | None):
        super().__init__(message)
        self.step = int(step)
        self.last_checkpoint = last_checkpoint


def host_values(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The watched metrics on the host (one small transfer; call only where the loop syncs)."""
    return {k: float(v) for k, v in jax.device_get(
        {k: metrics[k] for k in WATCHED if k in metrics}).items()}


@jax.jit
def _all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def state_values(state: Any, metrics: Mapping[str, Any]) -> dict[str, float]:
    """`host_values` plus `state` = 1.0 / NaN: whether every float in the state about to be
    saved is finite (the loss of step k is computed *before* update k, so it alone cannot
    vouch for the parameters after it). One reduction per save, not per step."""
    values = host_values(metrics)
    values["state"] = 1.0 if bool(_all_finite(state)) else float("nan")
    return values


def check(step: int, values: Mapping[str, float], *, where: str, log_every: int,
          last_checkpoint: int | None, workdir: str, resumed_from: int | None = None) -> None:
    """Raise DivergenceError when a watched value of `step` is NaN/Inf. When the last
    checkpoint is the one this segment resumed from, the message says that resuming again
    would repeat the divergence (its data passed the checksum check, so the cause is the
    optimisation, not a corrupt file)."""
    bad = {k: values[k] for k in WATCHED if k in values and not math.isfinite(float(values[k]))}
    if not bad:
        return
    what = ", ".join("non-finite parameters / optimizer state" if k == "state" else f"{k}={v}"
                     for k, v in bad.items())
    kept = (f"the last finite checkpoint is step {last_checkpoint} in {workdir}"
            if last_checkpoint is not None else f"no checkpoint was saved in {workdir}")
    if last_checkpoint is not None and last_checkpoint == resumed_from:
        kept += (" (this segment resumed from it, and its files passed their checksums: "
                 "resuming it unchanged diverges again)")
    raise DivergenceError(
        f"training diverged: {what} at step {step} (seen at the {where} check; values are "
        f"checked every train.log_every_steps={log_every} steps and before each checkpoint, "
        f"so it may have started earlier). Nothing non-finite was saved; {kept}. Lower "
        "train.base_lr or set train.grad_clip, then use a new workdir or resume from that "
        "checkpoint.", step, last_checkpoint)
