"""Baselines every evaluation reports beside the pretrained model.

`random_init`: the same architecture and config with freshly initialised parameters, drawn
the way the pretraining run drew its own (`jax.random.key(config.seed)` at step 0), so the
gap "pretrained - random_init" is what pretraining added on top of the architecture and the
probe. (`nn_copy`, the geometric CPAC baseline, lives with the CPAC metrics.)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp


def pretrain_seed(record: Any) -> int:
    """The `seed` a checkpoint's recorded pretraining config holds; 0 when it records none
    (an original `.pt`'s args may predate the field)."""
    try:
        return int(record["seed"] or 0) if "seed" in record else 0
    except (TypeError, ValueError):
        return 0


def init_seed(pretrained: Any) -> int:
    """The pretraining run's `seed` of a loaded checkpoint (`pretrain_seed`)."""
    return pretrain_seed(getattr(pretrained, "config", None))


def random_params(model: Any, seed: int) -> Any:
    """Fresh parameters of `model` from `key(seed)` (a 2-token dummy traces it)."""
    feat = jnp.zeros((1, 2, model.feat_dim), jnp.float32)
    type_id = jnp.zeros((1, 2), jnp.int32)
    return jax.jit(model.init)(jax.random.key(int(seed)), feat, type_id)["params"]


def random_init(pretrained: Any, seed: int | None = None) -> Any:
    """A copy of a loaded `Pretrained` whose parameters are a fresh initialisation."""
    seed = init_seed(pretrained) if seed is None else int(seed)
    return dataclasses.replace(pretrained, params=random_params(pretrained.model, seed),
                               source=f"random-init(seed={seed}) of {pretrained.source}",
                               _fns={})
