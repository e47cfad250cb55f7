"""Pooled hidden states of a frozen backbone, per layer and per pooling, for every shape of a
loaded split (`eval.cls.data.load_splits`): the inputs of the study's probes.

Tokenisation is deterministic per shape (keys from the per-path seed, as classification's
evaluation), so the pretrained model and its random init see the same sequences. Layers are
numbered 0..L-1 (the output of encoder layer i, before any final norm) and -1 (the model's `h`,
after `model.final_norm` when the model has one).

Poolings (`READOUTS`; a `_ln` suffix applies a LayerNorm without affine parameters to the pooled
vector, which removes the offset and scale shared by every shape):
  mean_pts   mean over point tokens (POINT, Q_POINT, A_POINT): the classification protocol's
  mean_q     mean over query tokens (Q_POINT, Q_RAY); legacy sequences: over POINT and RAY
  mean_max   [mean, max] over point tokens (2 x d_model)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from nepa3d_jax.eval.cls import mc as cls_mc
from nepa3d_jax.model.transformer import EncoderLayer
from nepa3d_jax.tokenizer.types import TYPE_A_POINT, TYPE_POINT, TYPE_Q_POINT, TYPE_Q_RAY, TYPE_RAY
from nepa3d_jax.tokenizer.options import TokenOptions
from nepa3d_jax.tokenizer.sequence import build_batch

POOLINGS = ("mean_pts", "mean_q", "mean_max")
READOUTS = POOLINGS + tuple(f"{p}_ln" for p in POOLINGS)


def check_readouts(names: Sequence[str], field: str = "readouts") -> tuple[str, ...]:
    bad = [n for n in names if n not in READOUTS]
    if bad or not names:
        raise ValueError(f"config.{field}={','.join(names)!r}: each must be one of "
                         f"{', '.join(READOUTS)}")
    return tuple(names)


def _masked_mean(h_BTD: jax.Array, mask_BT: jax.Array) -> jax.Array:
    w = mask_BT.astype(h_BTD.dtype)[..., None]
    return (h_BTD * w).sum(axis=1) / jnp.maximum(w.sum(axis=1), 1.0)


def _masked_max(h_BTD: jax.Array, mask_BT: jax.Array) -> jax.Array:
    out = jnp.where(mask_BT[..., None], h_BTD, -jnp.inf).max(axis=1)
    return jnp.where(mask_BT.any(axis=1, keepdims=True), out, 0.0)


def _plain_ln(x_BD: jax.Array) -> jax.Array:
    mu = x_BD.mean(axis=-1, keepdims=True)
    var = ((x_BD - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x_BD - mu) / jnp.sqrt(var + 1e-6)


def pool(h_BTD: jax.Array, type_id_BT: jax.Array, readout: str) -> jax.Array:
    """(B, T, D) -> (B, D) or (B, 2D) for one name of `READOUTS`."""
    base = readout[:-3] if readout.endswith("_ln") else readout
    t = type_id_BT
    points = (t == TYPE_POINT) | (t == TYPE_Q_POINT) | (t == TYPE_A_POINT)
    if base == "mean_pts":
        out = _masked_mean(h_BTD, points)
    elif base == "mean_q":
        queries = (t == TYPE_Q_POINT) | (t == TYPE_Q_RAY)
        legacy = (t == TYPE_POINT) | (t == TYPE_RAY)
        out = _masked_mean(h_BTD, jnp.where(queries.any(axis=1, keepdims=True), queries, legacy))
    elif base == "mean_max":
        out = jnp.concatenate([_masked_mean(h_BTD, points), _masked_max(h_BTD, points)], -1)
    else:
        raise ValueError(f"unknown readout {readout!r}: one of {', '.join(READOUTS)}")
    return _plain_ln(out) if readout.endswith("_ln") else out


def _is_layer(module: nn.Module, method: str) -> bool:
    return isinstance(module, EncoderLayer) and method == "__call__"


def hidden_layers(model: Any, params: Any, feat: jax.Array, type_id: jax.Array,
                  is_causal: bool) -> list[jax.Array]:
    """[layer 0, ..., layer L-1, h]: every encoder layer's output and the model's `h`."""
    (_, _, h), state = model.apply({"params": params}, feat, type_id, is_causal=is_causal,
                                   capture_intermediates=_is_layer, mutable=["intermediates"])
    inter = state["intermediates"]["backbone"]
    return [inter[f"layers_{i}"]["__call__"][0] for i in range(model.layers)] + [h]


def make_extract_fn(model: Any, tok: TokenOptions, layers: Sequence[int],
                    readouts: Sequence[str], is_causal: bool):
    """jit: (params, pools batch, seed (B,)) -> {(layer, readout): (B, F)} float32."""
    n = int(model.layers)
    for layer in layers:
        if not -1 <= int(layer) < n:
            raise ValueError(f"probe layer {layer} out of range: -1 (h) or 0..{n - 1}")

    def fn(params, pools, seed_B):
        keys_B = cls_mc.resample_keys(seed_B, 0)
        feat, type_id = build_batch(pools, keys_B, **tok.kwargs())
        hs = hidden_layers(model, params, feat, type_id, is_causal)
        out = {}
        for layer in layers:
            h = hs[int(layer)].astype(jnp.float32)
            for r in readouts:
                out[(int(layer), r)] = pool(h, type_id, r)
        return out
    return jax.jit(fn)


def extract(fn: Any, params: Any, split: dict, batch: int) -> dict[tuple[int, str], np.ndarray]:
    """Features of every shape of a loaded split, in the split's order."""
    arrays, seeds = split["arrays"], split["seed"]
    n = len(split["label"])
    chunks: dict[tuple[int, str], list[np.ndarray]] = {}
    for start in range(0, n, batch):
        idx = np.arange(start, min(start + batch, n))
        full = np.concatenate([idx, np.full((batch - len(idx),), idx[0])]) if len(idx) < batch \
            else idx
        pools = {k: v[full] for k, v in arrays.items()}
        out = jax.device_get(fn(params, pools, seeds[full]))
        for key, value in out.items():
            chunks.setdefault(key, []).append(np.asarray(value)[:len(idx)])
    return {k: np.concatenate(v) for k, v in chunks.items()}
