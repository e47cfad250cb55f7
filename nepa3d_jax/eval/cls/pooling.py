"""Sequence -> vector readouts for classification (pure jnp).

Modes (the original's `--cls_pooling`): `mean` (all tokens), `bos` (first), `eos` (last
token), `mean_no_special` (all but BOS/EOS), `mean_pts` (POINT, Q_POINT and A_POINT
tokens), `mean_a` (answer tokens A_POINT and A_RAY), `auto` (`mean_a` for Q/A tokens, else
`eos`). A masked mode whose mask is empty for the *whole batch* falls back to the last
token, as the original does; a single sample with an empty mask inside a non-empty batch
pools to zeros.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nepa3d_jax.tokenizer.types import (TYPE_A_POINT, TYPE_A_RAY, TYPE_BOS, TYPE_EOS, TYPE_POINT,
                                        TYPE_Q_POINT)

MODES = ("auto", "eos", "bos", "mean", "mean_no_special", "mean_pts", "mean_a")


def resolve_pooling(mode: str, qa_tokens: bool) -> str:
    if mode not in MODES:
        raise ValueError(f"cls_pooling={mode!r}: expected one of {MODES}")
    if mode == "auto":
        return "mean_a" if qa_tokens else "eos"
    return mode


def pooling_mask(type_id_BT: jax.Array, mode: str) -> jax.Array | None:
    """Boolean (B,T) mask of the tokens a masked mode averages; None for bos/eos/mean."""
    t = type_id_BT
    if mode == "mean_no_special":
        return (t != TYPE_BOS) & (t != TYPE_EOS)
    if mode == "mean_pts":
        return (t == TYPE_POINT) | (t == TYPE_Q_POINT) | (t == TYPE_A_POINT)
    if mode == "mean_a":
        return (t == TYPE_A_POINT) | (t == TYPE_A_RAY)
    return None


def pool(h_BTD: jax.Array, type_id_BT: jax.Array, mode: str) -> jax.Array:
    """(B,T,D) hidden states -> (B,D). `mode` must be resolved (not `auto`)."""
    if mode == "mean":
        return h_BTD.mean(axis=1)
    if mode == "bos":
        return h_BTD[:, 0]
    if mode == "eos":
        return h_BTD[:, -1]
    mask_BT = pooling_mask(type_id_BT, mode)
    if mask_BT is None:
        raise ValueError(f"cls_pooling={mode!r} is not a resolved pooling mode")
    w_BT1 = mask_BT.astype(h_BTD.dtype)[..., None]
    mean_BD = (h_BTD * w_BT1).sum(axis=1) / jnp.maximum(w_BT1.sum(axis=1), 1.0)
    return jnp.where(mask_BT.any(), mean_BD, h_BTD[:, -1])
