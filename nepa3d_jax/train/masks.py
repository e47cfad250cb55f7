"""Training-time masks: PointGPT-style dual masking of past tokens and the MAE token mask.

Both are pure jnp functions of an explicit key. Attention masks here are *allowed* masks
(True = may attend), the convention of `jax.nn.dot_product_attention` and Flax.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nepa3d_jax.tokenizer.types import (TYPE_BOS, TYPE_EOS, TYPE_POINT, TYPE_Q_POINT, TYPE_Q_RAY,
                                        TYPE_RAY)

_QUERY_LIKE = (TYPE_Q_POINT, TYPE_Q_RAY, TYPE_POINT, TYPE_RAY)


def dual_mask(key: jax.Array, type_id_BT: jax.Array, *, near, far, window: int,
              type_aware: bool = False) -> jax.Array:
    """(1, T, T) allowed mask: causal, minus randomly dropped past edges (shared by the batch).

    A past edge (i attends j < i) is dropped with probability `near` when i - j <= window and
    `far` otherwise (`far` everywhere when window <= 0). With `type_aware`, only edges between
    query-like positions (a query-like type anywhere in the batch at that position) are
    eligible, so answers stay visible. One draw per (i, j) for the whole batch, as the original.
    """
    t = type_id_BT.shape[-1]
    i = jnp.arange(t)[:, None]
    j = jnp.arange(t)[None, :]
    rel = i - j
    eligible = rel > 0
    if type_aware:
        query_pos = jnp.isin(type_id_BT, jnp.asarray(_QUERY_LIKE)).any(axis=0)
        eligible = eligible & query_pos[:, None] & query_pos[None, :]
    near = jnp.clip(jnp.asarray(near, jnp.float32), 0.0, 1.0)
    far = jnp.clip(jnp.asarray(far, jnp.float32), 0.0, 1.0)
    if window > 0:
        prob = jnp.where(rel <= window, near, far)
    else:
        prob = jnp.broadcast_to(far, (t, t))
    prob = jnp.where(eligible, prob, 0.0)
    dropped = eligible & (jax.random.uniform(key, (t, t)) < prob)
    allowed = (rel >= 0) & ~dropped
    return allowed[None]


def mae_token_mask(key: jax.Array, type_id_T: jax.Array, ratio: float) -> jax.Array:
    """(T,) bool: int(n * ratio) positions chosen uniformly among the n non-BOS/EOS tokens.

    Ranks of uniform scores pick the positions (a random permutation, as the original).
    """
    t = type_id_T.shape[0]
    valid = (type_id_T != TYPE_BOS) & (type_id_T != TYPE_EOS)
    scores = jnp.where(valid, jax.random.uniform(key, (t,)), jnp.inf)
    rank = jnp.argsort(jnp.argsort(scores))
    n = valid.sum()
    k = jnp.floor(n.astype(jnp.float32) * jnp.float32(ratio)).astype(jnp.int32)
    return valid & (rank < k)
