"""AdamW as the original pretrains: constant LR, weight decay 0.05 on every parameter, no warmup.

The original builds `torch.optim.AdamW(params, lr, weight_decay=0.05)` (betas 0.9/0.999,
eps 1e-8), never clips gradients and never changes the LR during training. optax's `adamw`
applies the same update (decoupled decay on all leaves, bias-corrected moments, eps outside
the square root). The LR is `derive(config).lr` (base_lr scaled by the global batch when
`train.lr_scale`). `train.grad_clip > 0` adds global-norm clipping, off by default.
"""

from __future__ import annotations

import ml_collections
import optax

ADAM_EPS = 1e-8


def make_optimizer(train: ml_collections.ConfigDict, lr: float) -> optax.GradientTransformation:
    """optax chain for `config.train` at the effective learning rate `lr`."""
    adamw = optax.adamw(
        learning_rate=float(lr),
        b1=float(train.b1),
        b2=float(train.b2),
        eps=ADAM_EPS,
        weight_decay=float(train.weight_decay),
    )
    clip = float(train.grad_clip)
    if clip > 0:
        return optax.chain(optax.clip_by_global_norm(clip), adamw)
    return adamw
