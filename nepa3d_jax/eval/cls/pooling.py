"""Sequence -> vector readouts for classification and the probes (pure jnp); the one owner of
the pooling math (`eval.probe.features` imports it).

Modes (the original's `--cls_pooling`): `mean` (all tokens), `bos` (first), `eos` (last
token), `mean_no_special` (all but BOS/EOS), `mean_pts` (POINT, Q_POINT and A_POINT
tokens), `mean_a` (answer tokens A_POINT and A_RAY), `auto` (`mean_a` for Q/A tokens, else
`eos`). A masked mode whose mask is empty for the *whole batch* falls back to the last
token, as the original does; a single sample with an empty mask inside a non-empty batch
pools to zeros.

Additions (opt-in, issue 24's readouts): `mean_q` (query tokens Q_POINT and Q_RAY; a sequence
without query tokens, the legacy layout, averages its POINT and RAY tokens) and `mean_max`
([mean, max] over the point tokens, 2 x d_model wide, as Point-MAE's head concatenates a mean
and a max; a sample without point tokens gets zeros for the max).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nepa3d_jax.tokenizer.types import (TYPE_A_POINT, TYPE_A_RAY, TYPE_BOS, TYPE_EOS, TYPE_POINT,
                                        TYPE_Q_POINT, TYPE_Q_RAY, TYPE_RAY)

MODES = ("auto", "eos", "bos", "mean", "mean_no_special", "mean_pts", "mean_a", "mean_q",
         "mean_max")


def resolve_pooling(mode: str, qa_tokens: bool) -> str:
    if mode not in MODES:
        raise ValueError(f"cls_pooling={mode!r}: expected one of {MODES}")
    if mode == "auto":
        return "mean_a" if qa_tokens else "eos"
    return mode


def pooled_dim(mode: str, d_model: int) -> int:
    """Width of the pooled vector: `mean_max` concatenates two d_model vectors."""
    return 2 * d_model if mode == "mean_max" else d_model


def point_mask(type_id_BT: jax.Array) -> jax.Array:
    t = type_id_BT
    return (t == TYPE_POINT) | (t == TYPE_Q_POINT) | (t == TYPE_A_POINT)


def query_mask(type_id_BT: jax.Array) -> jax.Array:
    """Query tokens per sample; a sample without any (legacy tokens) takes POINT and RAY."""
    t = type_id_BT
    queries = (t == TYPE_Q_POINT) | (t == TYPE_Q_RAY)
    legacy = (t == TYPE_POINT) | (t == TYPE_RAY)
    return jnp.where(queries.any(axis=1, keepdims=True), queries, legacy)


def pooling_mask(type_id_BT: jax.Array, mode: str) -> jax.Array | None:
    """Boolean (B,T) mask of the tokens a masked mode averages; None for bos/eos/mean."""
    t = type_id_BT
    if mode == "mean_no_special":
        return (t != TYPE_BOS) & (t != TYPE_EOS)
    if mode in ("mean_pts", "mean_max"):
        return point_mask(t)
    if mode == "mean_a":
        return (t == TYPE_A_POINT) | (t == TYPE_A_RAY)
    if mode == "mean_q":
        return query_mask(t)
    return None


def masked_mean(h_BTD: jax.Array, mask_BT: jax.Array) -> jax.Array:
    w_BT1 = mask_BT.astype(h_BTD.dtype)[..., None]
    return (h_BTD * w_BT1).sum(axis=1) / jnp.maximum(w_BT1.sum(axis=1), 1.0)


def masked_max(h_BTD: jax.Array, mask_BT: jax.Array) -> jax.Array:
    out = jnp.where(mask_BT[..., None], h_BTD, -jnp.inf).max(axis=1)
    return jnp.where(mask_BT.any(axis=1, keepdims=True), out, 0.0)


def normalize(x_BD: jax.Array, eps: float) -> jax.Array:
    """LayerNorm over the last axis without affine parameters (two-pass variance)."""
    mu = x_BD.mean(axis=-1, keepdims=True)
    var = ((x_BD - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x_BD - mu) / jnp.sqrt(var + eps)


def pool(h_BTD: jax.Array, type_id_BT: jax.Array, mode: str) -> jax.Array:
    """(B,T,D) hidden states -> (B, pooled_dim). `mode` must be resolved (not `auto`)."""
    if mode == "mean":
        return h_BTD.mean(axis=1)
    if mode == "bos":
        return h_BTD[:, 0]
    if mode == "eos":
        return h_BTD[:, -1]
    mask_BT = pooling_mask(type_id_BT, mode)
    if mask_BT is None:
        raise ValueError(f"cls_pooling={mode!r} is not a resolved pooling mode")
    mean_BD = jnp.where(mask_BT.any(), masked_mean(h_BTD, mask_BT), h_BTD[:, -1])
    if mode == "mean_max":
        return jnp.concatenate([mean_BD, masked_max(h_BTD, mask_BT)], axis=-1)
    return mean_BD
