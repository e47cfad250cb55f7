"""AdamW as the original pretrains: constant LR, weight decay 0.05 on every parameter, no warmup.

The original builds `torch.optim.AdamW(params, lr, weight_decay=0.05)` (betas 0.9/0.999,
eps 1e-8), never clips gradients and never changes the LR during training. optax's `adamw`
applies the same update (decoupled decay on all leaves, bias-corrected moments, eps outside
the square root). The LR is `derive(config).lr` (base_lr scaled by the global batch when
`train.lr_scale`). `train.grad_clip > 0` adds global-norm clipping, off by default.

Opt-in (a study recipe, not the original): `train.lr_schedule = "cosine"` warms up linearly
over `train.lr_warmup_steps` and decays to 0 by the last step, so the final weights are not
the noisy iterate of a constant-LR walk.
"""

from __future__ import annotations

import ml_collections
import optax

from nepa3d_jax.config.schedule import LR_SCHEDULES

ADAM_EPS = 1e-8


def lr_schedule(train: ml_collections.ConfigDict, lr: float,
                total_steps: int) -> optax.Schedule | float:
    """The LR per step: the constant `lr` (the original) or linear warmup + cosine to 0."""
    if train.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"train.lr_schedule={train.lr_schedule!r}: one of {LR_SCHEDULES}")
    if train.lr_schedule == "constant":
        return float(lr)
    warmup = int(train.lr_warmup_steps)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=float(lr), warmup_steps=warmup,
        decay_steps=max(int(total_steps), warmup + 1), end_value=0.0)


def lr_at(train: ml_collections.ConfigDict, lr: float, total_steps: int, step: int) -> float:
    """The LR the optimizer applied at update number `step` (0-based), for the metrics log."""
    schedule = lr_schedule(train, lr, total_steps)
    return float(schedule(step)) if callable(schedule) else float(schedule)


def make_optimizer(train: ml_collections.ConfigDict, lr: float,
                   total_steps: int) -> optax.GradientTransformation:
    """optax chain for `config.train` at the effective learning rate `lr`."""
    adamw = optax.adamw(
        learning_rate=lr_schedule(train, lr, total_steps),
        b1=float(train.b1),
        b2=float(train.b2),
        eps=ADAM_EPS,
        weight_decay=float(train.weight_decay),
    )
    clip = float(train.grad_clip)
    if clip > 0:
        return optax.chain(optax.clip_by_global_norm(clip), adamw)
    return adamw
