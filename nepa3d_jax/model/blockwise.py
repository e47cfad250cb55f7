"""Memory-lean exact attention for long sequences on CPU (flash-style, custom VJP).

The naive XLA graph materialises the (T, T) score matrix of every head at once and keeps it
for the backward pass, which on CPU means gigabytes of fresh memory per layer. Here the
queries are cut into static blocks; a causal query block [s, e) sees the keys [0, s)
without a mask (one large matmul) plus the diagonal square [s, e) with the causal mask, so
the upper triangle is never computed (about half the FLOPs at large T). Heads are processed
one group at a time, so one block of scores stays cache-sized.

Each block does one exact row softmax over its keys (no online rescaling: the whole key
range is one matmul). The forward keeps the output and the per-row log-sum-exp; the backward
recomputes each tile's probabilities from them (FlashAttention's recipe: memory ~ one block).
Keeping the forward's probabilities for the backward instead (~400 MB per layer at Run-A
shapes) was measured and was not faster on CPU: the extra memory traffic costs what the
saved matmul and exponential gain.

Layout: (B, H, T, D) inside; the public wrapper takes and returns (B, T, H, D) like
`jax.nn.dot_product_attention`.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

DEFAULT_BLOCK = 256
DEFAULT_GROUP = 1


class Tile(NamedTuple):
    """Query rows [qs, qe) against keys [ks, ke); `masked`: the causal diagonal square."""
    qs: int
    qe: int
    ks: int
    ke: int
    masked: bool


def block_edges(t: int, block: int) -> tuple[int, ...]:
    """Static query-block boundaries: ceil(t / block) nearly equal blocks covering [0, t)."""
    n = max(1, math.ceil(t / max(int(block), 1)))
    return tuple(round(i * t / n) for i in range(n + 1))


def tiles(t: int, block: int, causal: bool) -> tuple[tuple[Tile, ...], ...]:
    """The tiles of each query block: all keys unmasked (bidirectional), or the unmasked
    prefix [0, s) and the masked diagonal [s, e) (causal). Nothing above the diagonal."""
    edges = block_edges(t, block)
    out = []
    for s, e in zip(edges[:-1], edges[1:]):
        if not causal:
            out.append((Tile(s, e, 0, t, False),))
        else:
            out.append(((Tile(s, e, 0, s, False),) if s > 0 else ()) + (Tile(s, e, s, e, True),))
    return tuple(out)


def _scores(qs_i, k, tl: Tile):
    """Scores of (already scaled) query rows against one tile's keys, masked on the diagonal."""
    sc = jnp.einsum("...qd,...kd->...qk", qs_i, k[..., tl.ks:tl.ke, :],
                    preferred_element_type=jnp.float32)
    if tl.masked:  # key j visible to row i iff j <= i
        sc = jnp.where(jnp.tril(jnp.ones((tl.qe - tl.qs, tl.ke - tl.ks), bool)), sc, -jnp.inf)
    return sc


def _forward(q, k, v, scale: float, causal: bool, block: int):
    """(out (..., T, D), lse (..., T)) for one head group."""
    qs = q * jnp.asarray(scale, q.dtype)
    outs, lses = [], []
    for blk in tiles(q.shape[-2], block, causal):
        qs_i = qs[..., blk[0].qs:blk[0].qe, :]
        scs = [_scores(qs_i, k, tl) for tl in blk]
        m = functools.reduce(jnp.maximum, [jnp.max(sc, axis=-1, keepdims=True) for sc in scs])
        ps = [jnp.exp(sc - m) for sc in scs]
        denom = functools.reduce(jnp.add, [jnp.sum(p, axis=-1, keepdims=True) for p in ps])
        o = functools.reduce(jnp.add, [
            jnp.einsum("...qk,...kd->...qd", p.astype(v.dtype), v[..., tl.ks:tl.ke, :],
                       preferred_element_type=jnp.float32) for p, tl in zip(ps, blk)])
        outs.append((o / denom).astype(q.dtype))
        lses.append((m + jnp.log(denom))[..., 0])
    return jnp.concatenate(outs, axis=-2), jnp.concatenate(lses, axis=-1)


def _backward(q, k, v, out, lse, d_out, scale: float, causal: bool, block: int):
    """(dq, dk, dv) for one head group, recomputing each tile's probabilities."""
    t = q.shape[-2]
    edges = block_edges(t, block)
    qs = q * jnp.asarray(scale, q.dtype)
    # delta_i = rowsum(dO * O): the softmax-Jacobian term shared by every key of row i.
    delta = jnp.sum(d_out.astype(jnp.float32) * out.astype(jnp.float32), axis=-1)
    dk_blocks = [None] * (len(edges) - 1)  # per key block, summed over the query blocks
    dv_blocks = [None] * (len(edges) - 1)
    dqs = []
    for blk in tiles(t, block, causal):
        s, e = blk[0].qs, blk[0].qe
        qs_i, do_i = qs[..., s:e, :], d_out[..., s:e, :]
        dq_i = None
        for tl in blk:
            p = jnp.exp(_scores(qs_i, k, tl) - lse[..., s:e, None])
            dv_t = jnp.einsum("...qk,...qd->...kd", p.astype(v.dtype), do_i,
                              preferred_element_type=jnp.float32)
            dp = jnp.einsum("...qd,...kd->...qk", do_i, v[..., tl.ks:tl.ke, :],
                            preferred_element_type=jnp.float32)
            ds = (p * (dp - delta[..., s:e, None])).astype(q.dtype)
            term = jnp.einsum("...qk,...kd->...qd", ds, k[..., tl.ks:tl.ke, :],
                              preferred_element_type=jnp.float32)
            dq_i = term if dq_i is None else dq_i + term
            dk_t = jnp.einsum("...qk,...qd->...kd", ds, qs_i, preferred_element_type=jnp.float32)
            _add_by_key_block(dk_blocks, dk_t, tl, edges)
            _add_by_key_block(dv_blocks, dv_t, tl, edges)
        dqs.append(dq_i * scale)
    dq = jnp.concatenate(dqs, axis=-2)
    dk = jnp.concatenate(dk_blocks, axis=-2)
    dv = jnp.concatenate(dv_blocks, axis=-2)
    return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype)


def _add_by_key_block(acc: list, g, tl: Tile, edges: tuple[int, ...]) -> None:
    """acc[j] += the rows of g (keys [tl.ks, tl.ke)) that fall in key block j (static)."""
    for j, (s, e) in enumerate(zip(edges[:-1], edges[1:])):
        if s >= tl.ks and e <= tl.ke:
            part = g[..., s - tl.ks:e - tl.ks, :]
            acc[j] = part if acc[j] is None else acc[j] + part


def _map_heads(fn, args, group: int):
    """fn over the leading (batch * heads) axis, `group` heads at a time, so one block of
    scores stays cache-sized; group <= 0 processes all heads at once."""
    n = args[0].shape[0]
    if group <= 0 or group >= n:
        return fn(*args)
    return jax.lax.map(lambda a: fn(*a), args, batch_size=group)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
def _attention(q, k, v, scale: float, causal: bool, block: int, group: int):
    return _map_heads(lambda q, k, v: _forward(q, k, v, scale, causal, block)[0],
                      (q, k, v), group)


def _attention_fwd(q, k, v, scale, causal, block, group):
    out, lse = _map_heads(lambda q, k, v: _forward(q, k, v, scale, causal, block),
                          (q, k, v), group)
    return out, (q, k, v, out, lse)


def _attention_bwd(scale, causal, block, group, res, d_out):
    q, k, v, out, lse = res
    return _map_heads(lambda q, k, v, o, l, do: _backward(q, k, v, o, l, do, scale, causal,
                                                          block),
                      (q, k, v, out, lse, d_out), group)


_attention.defvjp(_attention_fwd, _attention_bwd)


def blockwise_attention(q_BTHD: jax.Array, k_BTHD: jax.Array, v_BTHD: jax.Array, *,
                        is_causal: bool = True, scale: float | None = None,
                        block: int = DEFAULT_BLOCK, group: int = DEFAULT_GROUP) -> jax.Array:
    """Exact softmax attention, (B, T, H, D) in and out, never holding T x T scores at once.

    Same semantics as `jax.nn.dot_product_attention(q, k, v, is_causal=...)` without masks.
    """
    if q_BTHD.ndim != 4 or k_BTHD.shape != q_BTHD.shape or v_BTHD.shape != q_BTHD.shape:
        raise ValueError("blockwise_attention expects q, k, v of one shape (B, T, H, D), got "
                         f"{q_BTHD.shape}, {k_BTHD.shape}, {v_BTHD.shape}")
    scale = 1.0 / math.sqrt(q_BTHD.shape[-1]) if scale is None else float(scale)
    b, t, h, d = q_BTHD.shape

    def heads_first(x):  # (B, T, H, D) -> (B * H, T, D)
        return jnp.swapaxes(x, 1, 2).reshape(b * h, t, d)

    out = _attention(heads_first(q_BTHD), heads_first(k_BTHD), heads_first(v_BTHD), scale,
                     bool(is_causal), int(block), int(group))
    return jnp.swapaxes(out.reshape(b, h, t, d), 1, 2)
