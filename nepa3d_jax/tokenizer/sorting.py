"""Stable lexicographic argsort with one semantics on every backend.

The order is numpy's `lexsort` (stable, -0.0 == 0.0): keys compare primary first, ties go
to the lower index. On GPU/TPU this is `lax.sort`; on CPU, where XLA's comparator-driven
sort costs ~0.25 ms for 1024 keys, an unrolled bitonic network of vectorised
compare-exchange steps is about 2x faster (it compiles slower: ~4 s at n = 1024).
"""

import jax
import jax.numpy as jnp
from jax import lax


def _canonical(key: jax.Array) -> jax.Array:
    if jnp.issubdtype(key.dtype, jnp.floating):
        return jnp.where(key == 0, jnp.zeros_like(key), key)  # -0.0 -> 0.0
    return key


def _pad_value(dtype):
    if jnp.issubdtype(dtype, jnp.floating):
        return jnp.inf
    return jnp.iinfo(dtype).max


def _less(a: tuple, b: tuple) -> jax.Array:
    """a < b lexicographically; the last entry (the index) is unique, so this is total."""
    lt = a[-1] < b[-1]
    for x, y in zip(reversed(a[:-1]), reversed(b[:-1])):
        lt = (x < y) | ((x == y) & lt)
    return lt


def _compare_exchange(a: tuple, b: tuple) -> tuple[tuple, tuple]:
    swap = _less(b, a)
    lo = tuple(jnp.where(swap, y, x) for x, y in zip(a, b))
    hi = tuple(jnp.where(swap, x, y) for x, y in zip(a, b))
    return lo, hi


@jax.jit  # one dispatch when called eagerly (hundreds of tiny ops otherwise)
def _bitonic(arrays: tuple) -> tuple:
    """Sort a tuple of (N,) arrays, N a power of two, by `_less` (all stages ascending:
    each merge starts by comparing mirrored positions, then halves)."""
    n = arrays[0].shape[0]
    size = 2
    while size <= n:
        h = size // 2
        r = tuple(v.reshape(n // size, size) for v in arrays)
        lo, hi = _compare_exchange(tuple(v[:, :h] for v in r),
                                   tuple(v[:, h:][:, ::-1] for v in r))
        arrays = tuple(jnp.concatenate([x, y[:, ::-1]], axis=1).reshape(n)
                       for x, y in zip(lo, hi))
        half = h // 2
        while half >= 1:
            r = tuple(v.reshape(n // (2 * half), 2, half) for v in arrays)
            lo, hi = _compare_exchange(tuple(v[:, 0] for v in r), tuple(v[:, 1] for v in r))
            arrays = tuple(jnp.stack([x, y], axis=1).reshape(n) for x, y in zip(lo, hi))
            half //= 2
        size *= 2
    return arrays


def lex_argsort(*keys: jax.Array, method: str = "auto") -> jax.Array:
    """int32 permutation sorting by keys[0], then keys[1], ..., then index (stable).

    method: "auto" (bitonic on CPU, lax.sort elsewhere), "bitonic" or "lax".
    """
    if not keys:
        raise ValueError("lex_argsort needs at least one key")
    n = keys[0].shape[0]
    if any(k.shape != (n,) for k in keys):
        raise ValueError(f"lex_argsort: keys must be 1-D of one length, got "
                         f"{[k.shape for k in keys]}")
    if method == "auto":
        method = "bitonic" if jax.default_backend() == "cpu" else "lax"
    keys = tuple(_canonical(k) for k in keys)
    iota = lax.iota(jnp.int32, n)
    if method == "lax":
        return lax.sort(keys + (iota,), num_keys=len(keys), is_stable=True)[-1]
    if method != "bitonic":
        raise ValueError(f"unknown lex_argsort method {method!r}")
    if n <= 1:
        return iota
    n_pad = 1 << (n - 1).bit_length()
    padded = tuple(jnp.concatenate([k, jnp.full((n_pad - n,), _pad_value(k.dtype), k.dtype)])
                   for k in keys)
    # The barrier materialises the keys: otherwise XLA fuses their producers (gathers,
    # atan2, ...) into the compare-exchange stages and recomputes them in every stage.
    padded = lax.optimization_barrier(padded)
    return _bitonic(padded + (lax.iota(jnp.int32, n_pad),))[-1][:n]
