"""Scaled dot-product attention with a selectable implementation.

`attention` (config `model.attention`):
  xla        `jax.nn.dot_product_attention(implementation="xla")`; the only path that takes
             an explicit (allowed) mask, e.g. the training-time dual mask.
  cudnn      cuDNN flash attention on GPU (bf16/f16 inputs, `is_causal` flag, no mask).
  blockwise  `blockwise.blockwise_attention`: exact, memory-lean, skips the upper triangle;
             the fast path on CPU for long sequences.
  auto       cudnn on GPU for bf16/f16 without a mask; blockwise on CPU when T is at least
             `BLOCKWISE_MIN_LEN` and there is no mask; xla otherwise.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nepa3d_jax.model.blockwise import blockwise_attention

IMPLEMENTATIONS = ("auto", "xla", "cudnn", "blockwise")
# From this length on the block loop is faster than the plain XLA graph on CPU, forward and
# backward: attention alone (4 heads of 24), blockwise over xla at T 130 / 258 / 514 was
# 1.3-2.6x / 1.5-3.2x / 1.3-7.2x for batches 1-16 on a 2-core AVX-512 EPYC, and the study-scale
# train step (T 258, batch 16) 1.45x; bidirectional 0.98-2.8x; at T 130 on an AVX2 EPYC the
# whole step was 1.27x (docs/performance.md). At T 66 neither wins (0.82-1.20x): xla there.
BLOCKWISE_MIN_LEN = 128


def check_implementation(name: str) -> str:
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"model.attention={name!r}: choose from {', '.join(IMPLEMENTATIONS)}")
    return name


def resolve_implementation(name: str, *, seq_len: int, dtype, has_mask: bool,
                           backend: str | None = None) -> str:
    """The concrete implementation `auto` stands for (others are returned as given)."""
    check_implementation(name)
    if name != "auto":
        return name
    backend = backend or jax.default_backend()
    if has_mask:
        return "xla"
    if backend == "gpu" and jnp.dtype(dtype) in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)):
        return "cudnn"
    if backend == "cpu" and seq_len >= BLOCKWISE_MIN_LEN:
        return "blockwise"
    return "xla"


def dot_product_attention(q_BTHD: jax.Array, k_BTHD: jax.Array, v_BTHD: jax.Array, *,
                          is_causal: bool, mask_BTT: jax.Array | None = None,
                          implementation: str = "auto") -> jax.Array:
    """softmax(q k^T / sqrt(D) [causal, masked]) v with (B, T, H, D) inputs and output.

    `mask_BTT`: optional bool (B or 1, T, T), True = may attend (combined with causality
    when `is_causal`). Every row must keep at least one key (the original's masks always keep
    the diagonal).
    """
    impl = resolve_implementation(implementation, seq_len=q_BTHD.shape[1], dtype=q_BTHD.dtype,
                                  has_mask=mask_BTT is not None)
    if mask_BTT is not None and impl != "xla":
        raise ValueError(f"attention={impl!r} takes no explicit mask; use attention='xla' "
                         "(or 'auto') for masked attention such as dual masking")
    if impl == "blockwise":
        return blockwise_attention(q_BTHD, k_BTHD, v_BTHD, is_causal=is_causal)
    if impl == "cudnn":
        return jax.nn.dot_product_attention(q_BTHD, k_BTHD, v_BTHD, is_causal=is_causal,
                                            implementation="cudnn")
    mask = None
    if mask_BTT is not None:
        if mask_BTT.ndim != 3 or mask_BTT.shape[-2:] != (q_BTHD.shape[1], k_BTHD.shape[1]):
            raise ValueError(f"attention mask must be (B or 1, T, T) with T={q_BTHD.shape[1]}, "
                             f"got {mask_BTT.shape}")
        mask = mask_BTT.astype(bool)[:, None, :, :]
    return jax.nn.dot_product_attention(q_BTHD, k_BTHD, v_BTHD, mask=mask, is_causal=is_causal,
                                        implementation="xla")
