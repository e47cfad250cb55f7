"""Monte-Carlo test-time resampling: each evaluated shape is tokenized `k` times with
deterministic per-shape keys and the classifier's logits are averaged over the resamples
(the original's `--mc_eval_k`). Keys derive from the per-path seed so a shape's resamples do
not depend on batch composition, device count or order.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def resample_keys(seed_B: jax.Array, i: jax.Array | int) -> jax.Array:
    """(B,) typed keys for resample `i` of shapes with per-path seeds `seed_B` (uint32)."""
    base = jax.random.key(0)
    return jax.vmap(lambda s: jax.random.fold_in(jax.random.fold_in(base, s), i))(seed_B)


def mc_logits(logits_fn: Callable[[jax.Array], jax.Array], seed_B: jax.Array,
              k: int | jax.Array) -> jax.Array:
    """Mean over `k` resamples of `logits_fn(keys_B) -> (B,C)`. A loop keeps one resample's
    activations live at a time (memory does not grow with k), and `k` may be a traced
    scalar, so validation (k=1) and test (k=10) share one compiled function."""
    if isinstance(k, int) and k < 1:
        raise ValueError(f"MC resample count must be >= 1, got {k}")

    def body(i, total_BC):
        return total_BC + logits_fn(resample_keys(seed_B, i))

    first_BC = logits_fn(resample_keys(seed_B, 0))
    total_BC = jax.lax.fori_loop(1, k, body, first_BC)
    return total_BC / jnp.asarray(k, first_BC.dtype)
