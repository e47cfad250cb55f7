"""Batched, jit-compiled representation extraction for CPAC (one compilation per sequence shape).

Every shape of a CPAC pass has the same token layout, so batches have one fixed shape: the last
batch is padded (by repeating its last sample) up to the batch size, which is itself a multiple
of the device count. Batches are split over the `data` axis of a mesh of this process's devices;
parameters are replicated. Only the representation at the query positions is computed in the
last layer (`QueryNepa.represent`) and leaves the device.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

REP_SOURCES = ("h", "zhat")
_OUTPUT_INDEX = {"zhat": 1, "h": 2}  # forward returns (z, z_hat, h)


def checkpoint_max_len(pretrained: Any) -> int | None:
    """Positional-embedding length of a loaded checkpoint (None when it cannot be told)."""
    model = getattr(pretrained, "model", None)
    if model is not None and getattr(model, "max_len", None):
        return int(model.max_len)
    params = getattr(pretrained, "params", None)
    if params is not None:
        for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
            if "pos_emb" in jax.tree_util.keystr(path) and np.ndim(leaf) == 3:
                return int(np.shape(leaf)[1])
    try:
        return int(pretrained.config.data.max_len)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def isolation_mask(seq_len: int, q_pos_M: jax.Array) -> jax.Array:
    """(1, T, T) allowed mask of CPAC's opt-in query isolation: every token at or after the first
    query (the queries and their fake zero answers, in every layout) is hidden from the others,
    so a query attends to BOS, the context and itself. Rows before the first query are
    unchanged; causality is applied by the model on top."""
    ar = jnp.arange(seq_len)
    first = jnp.min(q_pos_M)
    return ((ar[None, :] < first) | (ar[:, None] == ar[None, :]))[None]


class RepresentationFn:
    """(feat (b,T,F), type_id (T,), q_pos (M,)) -> float32 (b, M, D) representations."""

    def __init__(self, pretrained: Any, *, rep_source: str = "h", batch_size: int = 8,
                 devices: list | None = None, query_isolation: bool = False):
        if rep_source not in REP_SOURCES:
            raise ValueError(f"rep_source={rep_source!r}: choose from {', '.join(REP_SOURCES)}")
        devices = list(devices) if devices else jax.local_devices()
        n_dev = len(devices)
        self.batch_size = max(1, math.ceil(int(batch_size) / n_dev)) * n_dev
        mesh = Mesh(np.asarray(devices), ("data",))
        self._data = NamedSharding(mesh, P("data"))
        self._replicated = NamedSharding(mesh, P())
        out_index = _OUTPUT_INDEX[rep_source]
        model, params = getattr(pretrained, "model", None), getattr(pretrained, "params", None)
        if model is not None and params is not None:
            self._params = jax.device_put(params, self._replicated)

            def fn(params, feat, type_id, q_pos):  # last layer for the query rows only
                mask = isolation_mask(feat.shape[1], q_pos) if query_isolation else None
                z_hat, h = model.apply({"params": params}, feat, type_id, q_pos, is_causal=True,
                                       attn_mask_BTT=mask, method=type(model).represent)
                return (z_hat if rep_source == "zhat" else h).astype(jnp.float32)
        else:  # only a forward function: parameters travel inside it
            if query_isolation:
                raise ValueError("query_isolation=1 needs a loaded model, not a forward function")
            self._params = None
            forward = pretrained.forward

            def fn(params, feat, type_id, q_pos):
                del params
                out = forward(feat, type_id, is_causal=True)
                return jnp.take(out[out_index], q_pos, axis=1).astype(jnp.float32)

        self._fn = jax.jit(fn, out_shardings=self._data)
        self._compiled: dict[tuple[int, int], Any] = {}
        self.compile_seconds = 0.0

    def with_params(self, params: Any) -> "RepresentationFn":
        """The same compiled programs on other parameters of the same shapes (e.g. the
        random-init baseline): no recompilation."""
        if self._params is None:
            raise ValueError("this representation function has no separate parameters")
        other = copy.copy(self)
        other._params = jax.device_put(params, self._replicated)
        return other

    def _inputs(self, feat: np.ndarray, type_id: np.ndarray, q_pos: np.ndarray):
        b = feat.shape[0]
        if b > self.batch_size:
            raise ValueError(f"batch of {b} exceeds batch_size {self.batch_size}")
        if b < self.batch_size:  # pad with copies of the last sample; results are dropped
            feat = np.concatenate([feat, np.repeat(feat[-1:], self.batch_size - b, 0)], 0)
        tid = np.broadcast_to(np.asarray(type_id, np.int32), feat.shape[:2])
        return (self._params,
                jax.device_put(np.ascontiguousarray(feat, np.float32), self._data),
                jax.device_put(np.ascontiguousarray(tid), self._data),
                jax.device_put(np.asarray(q_pos, np.int32), self._replicated))

    def compile(self, seq_len: int, n_query: int, feat_dim: int = 15) -> None:
        """Ahead-of-time compilation for (T, M); timed separately from the extraction."""
        key = (int(seq_len), int(n_query))
        if key in self._compiled:
            return
        t0 = time.perf_counter()
        args = self._inputs(np.zeros((1, seq_len, feat_dim), np.float32),
                            np.zeros((seq_len,), np.int32), np.zeros((n_query,), np.int32))
        self._compiled[key] = self._fn.lower(*args).compile()
        self.compile_seconds += time.perf_counter() - t0

    def __call__(self, feat: np.ndarray, type_id: np.ndarray, q_pos: np.ndarray) -> jax.Array:
        """Dispatch one batch (asynchronous); the result keeps the padded rows."""
        self.compile(feat.shape[1], q_pos.shape[0], feat.shape[2])
        return self._compiled[(feat.shape[1], q_pos.shape[0])](*self._inputs(feat, type_id, q_pos))
