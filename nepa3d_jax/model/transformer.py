"""Pre-LN transformer encoder layers, the math of torch `nn.TransformerEncoderLayer(
norm_first=True, activation="gelu", batch_first=True, dropout=0)` as the original builds them.

One layer:  x = x + out_proj(MHA(norm1(x)));  x = x + linear2(gelu(linear1(norm2(x)))).
LayerNorm eps 1e-5 with the two-pass variance, exact (erf) GELU, biases everywhere, no final
norm after the stack. Parameter names mirror the torch state dict
(`self_attn.in_proj_weight` -> `self_attn/in_proj_kernel`, transposed; see
`checkpoint/torch_import.py`). Initialisers follow torch's defaults so a fresh model starts
from the same distributions as the original.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from nepa3d_jax.model import attention

LN_EPS = 1e-5  # torch nn.LayerNorm default


def torch_uniform(fan_in: int):
    """torch nn.Linear default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (weights and biases)."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)
    return init


def xavier_uniform_packed(d_model: int):
    """torch MHA `in_proj_weight` init: Xavier uniform over the whole (3d, d) matrix."""
    bound = math.sqrt(6.0 / (d_model + 3 * d_model))

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)
    return init


def dense(features: int, fan_in: int, dtype: Any, name: str | None = None,
          zero_bias: bool = False) -> nn.Dense:
    return nn.Dense(features, dtype=dtype, param_dtype=jnp.float32, name=name,
                    kernel_init=torch_uniform(fan_in),
                    bias_init=nn.initializers.zeros if zero_bias else torch_uniform(fan_in))


def layer_norm(dtype: Any, name: str) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=LN_EPS, use_fast_variance=False, dtype=dtype,
                        param_dtype=jnp.float32, name=name)


class SelfAttention(nn.Module):
    """Multi-head self-attention with torch's packed q/k/v in-projection."""
    d_model: int
    heads: int
    is_causal: bool
    attention: str = "auto"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_BTD: jax.Array, mask_BTT: jax.Array | None,
                 rows_M: jax.Array | None = None) -> jax.Array:
        """(B, T, D) -> (B, T, D); with `rows_M`, only the outputs of those positions
        (B, M, D): queries of those rows against every key (see `Encoder`)."""
        d, h = self.d_model, self.heads
        w = self.param("in_proj_kernel", xavier_uniform_packed(d), (d, 3 * d), jnp.float32)
        b = self.param("in_proj_bias", nn.initializers.zeros, (3 * d,), jnp.float32)
        w, b = w.astype(self.dtype), b.astype(self.dtype)
        bsz, t, _ = x_BTD.shape
        if rows_M is None:
            qkv_BTE = jnp.dot(x_BTD, w) + b
            q, k, v = (a.reshape(bsz, t, h, d // h) for a in jnp.split(qkv_BTE, 3, axis=-1))
            o_BTHD = attention.dot_product_attention(q, k, v, is_causal=self.is_causal,
                                                     mask_BTT=mask_BTT,
                                                     implementation=self.attention)
            return dense(d, d, self.dtype, "out_proj", zero_bias=True)(o_BTHD.reshape(bsz, t, d))
        m = rows_M.shape[0]
        q = (jnp.dot(jnp.take(x_BTD, rows_M, axis=1), w[:, :d]) + b[:d]).reshape(bsz, m, h, d // h)
        kv_BTE = jnp.dot(x_BTD, w[:, d:]) + b[d:]
        k, v = (a.reshape(bsz, t, h, d // h) for a in jnp.split(kv_BTE, 2, axis=-1))
        # Row i sees key j iff j <= rows[i] (causal) or always (bidirectional).
        allowed_MT = (jnp.arange(t)[None, :] <= rows_M[:, None]) if self.is_causal else \
            jnp.ones((m, t), bool)
        allowed = allowed_MT[None, None]
        if mask_BTT is not None:  # the extra allowed mask, its rows `rows_M` only
            allowed = allowed & jnp.take(mask_BTT, rows_M, axis=1)[:, None]
        o_BMHD = jax.nn.dot_product_attention(q, k, v, mask=allowed, implementation="xla")
        return dense(d, d, self.dtype, "out_proj", zero_bias=True)(o_BMHD.reshape(bsz, m, d))


class EncoderLayer(nn.Module):
    d_model: int
    heads: int
    mlp_dim: int
    is_causal: bool
    attention: str = "auto"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_BTD: jax.Array, mask_BTT: jax.Array | None,
                 rows_M: jax.Array | None = None) -> jax.Array:
        y = layer_norm(self.dtype, "norm1")(x_BTD)
        a = SelfAttention(self.d_model, self.heads, self.is_causal, self.attention, self.dtype,
                          name="self_attn")(y, mask_BTT, rows_M)
        x_BTD = (x_BTD if rows_M is None else jnp.take(x_BTD, rows_M, axis=1)) + a
        y = layer_norm(self.dtype, "norm2")(x_BTD)
        y = dense(self.mlp_dim, self.d_model, self.dtype, "linear1")(y)
        y = nn.gelu(y, approximate=False)
        y = dense(self.d_model, self.mlp_dim, self.dtype, "linear2")(y)
        return x_BTD + y


class Encoder(nn.Module):
    """`layers` pre-LN encoder layers, no final norm (`backbone.enc` of the original)."""
    d_model: int
    layers: int
    heads: int
    mlp_dim: int
    attention: str = "auto"
    dtype: Any = jnp.float32
    remat: bool = False

    @nn.compact
    def __call__(self, x_BTD: jax.Array, mask_BTT: jax.Array | None,
                 is_causal: bool, rows_M: jax.Array | None = None) -> jax.Array:
        """(B, T, D) hidden states; with `rows_M` (M,) int positions, only those rows
        (B, M, D) of the output. Every layer but the last needs all positions (they are the
        last layer's keys), so only the last layer is cut down: its queries, out-projection
        and MLP run on the M rows (inference, e.g. CPAC reads the query positions only)."""
        layer_cls = nn.remat(EncoderLayer) if self.remat else EncoderLayer
        for i in range(self.layers):
            last = i == self.layers - 1
            x_BTD = layer_cls(self.d_model, self.heads, self.mlp_dim, bool(is_causal),
                              self.attention, self.dtype, name=f"layers_{i}")(
                                  x_BTD, mask_BTT, rows_M if last else None)
        return x_BTD
