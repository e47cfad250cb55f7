"""CPAC-UDF host-side sampling: which pool points of a shape are context and which are queries.

The original protocol, reproduced exactly so results match it shape by shape:
  * one `np.random.RandomState` per shape, seeded with `(int(md5(path)[:8], 16) + seed) mod 2**32`
    where `path` is the globbed path string (`<cache_root>/<split>/*/*.npz`, sorted);
  * normal context with disjoint sets: one draw of `n_context + n_query` indices over
    `pt_xyz_pool` (with replacement only when the pool is smaller), context first; otherwise
    two independent draws (context, then queries);
  * context distances come from the context backend's point pool; a mismatched context
    (another shape's backend pools) or a pool too short for the drawn indices re-draws them;
  * query targets are `pt_dist_udf_pool` (`pt_dist_pool` when a cache lacks it: the original's
    fallback, reported by `ShapeSample.target_key`); `grid` queries are cells of `udf_grid`
    (`cpac_grid`), `hybrid` puts `round(n_query * query_pool_frac)` pool queries first;
  * context and queries are each sorted by their 10-bit Morton code (numpy's default argsort,
    as the original, so ties land identically).
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from nepa3d_jax.data.backends import backend_pools
from nepa3d_jax.data.paths import path_seed
from nepa3d_jax.data.records import CheckedRecord, flattened_link_hint
from nepa3d_jax.data.schema import BACKEND_REQUIRED_KEYS, CacheError, check_cache_file
from nepa3d_jax.eval.cpac.grid import sample_grid_queries
from nepa3d_jax.tokenizer.ordering import morton_codes_np

CONTEXT_MODES = ("normal", "none", "mismatch")
QUERY_SOURCES = ("pool", "grid", "hybrid")
TARGET_KEYS = ("pt_dist_udf_pool", "pt_dist_pool")


def list_shapes(cache_root: str, split: str) -> list[str]:
    """Sorted `<cache_root>/<split>/*/*.npz`, spelled exactly as glob does (seeds hash them)."""
    return sorted(glob.glob(os.path.join(cache_root, split, "*", "*.npz")))


def choose(rng: np.random.RandomState, n: int, k: int) -> np.ndarray:
    """`k` indices in [0, n), without replacement unless n < k; no draw at all for k <= 0."""
    k = int(k)
    if k <= 0:
        return np.zeros((0,), np.int64)
    return rng.choice(int(n), size=k, replace=int(n) < k).astype(np.int64)


# The CPAC protocol orders context and queries by Morton code, whatever order the checkpoint
# pretrained with (the original does the same); the result records both (`point_order`).
POINT_ORDER = "morton"


def morton_argsort(xyz_N3: np.ndarray) -> np.ndarray:
    """numpy's default (introsort) argsort of the Morton codes: the original's tie order."""
    return np.argsort(morton_codes_np(xyz_N3))


def mismatch_partners(paths: list[str], shift: int) -> list[str | None]:
    """Context donor of each shape in `mismatch` mode: the shape `shift` places later (cyclic)."""
    if len(paths) <= 1:
        return [None] * len(paths)
    s = int(shift) % len(paths) or 1
    return [paths[(i + s) % len(paths)] for i in range(len(paths))]


@dataclasses.dataclass(frozen=True)
class ShapeSample:
    """One shape's CPAC inputs, each set Morton-sorted."""
    path: str
    ctx_xyz: np.ndarray   # (C, 3) float32
    ctx_dist: np.ndarray  # (C,) float32, from the context backend
    q_xyz: np.ndarray     # (M, 3) float32
    q_dist: np.ndarray    # (M,) float32, the UDF target
    target_key: str       # cache key the targets came from


def check_shapes(paths: list[str], backend: str | None, query_source: str = "pool") -> list[str]:
    """Header-level problems of CPAC inputs (keys the context backend and the targets need;
    backend None: no context), cheap: nothing is decompressed. Each names the file and key."""
    targets = {"pool": (TARGET_KEYS,), "grid": ("udf_grid",),
               "hybrid": (TARGET_KEYS, "udf_grid")}[query_source]
    required = (*BACKEND_REQUIRED_KEYS.get(backend, ("pt_xyz_pool",)), *targets)
    problems = []
    for path in paths:
        found = check_cache_file(path, required, check_values=False)
        if found and "not a readable" in found[0]:
            found[0] += flattened_link_hint(path)
        problems.extend(found)
    return problems


def split_queries(n_query: int, query_source: str, query_pool_frac: float) -> tuple[int, int]:
    """(pool queries, grid queries) of a shape."""
    if query_source == "pool":
        return n_query, 0
    if query_source == "grid":
        return 0, n_query
    frac = min(max(float(query_pool_frac), 0.0), 1.0)
    n_pool = max(0, min(int(round(float(n_query) * frac)), n_query))
    return n_pool, n_query - n_pool


def _context_pools(path: str, backend: str, npz: CheckedRecord | None,
                   backend_opts: Mapping[str, Any]):
    own = npz is None
    npz = CheckedRecord(path) if own else npz
    try:
        pools = backend_pools(npz, backend, **backend_opts)
    except KeyError as e:  # a key some backend reads without checking
        raise CacheError(f"{path} [{e.args[0]}]: missing key needed by backend '{backend}'") from e
    finally:
        if own:
            npz.close()
    return (np.asarray(pools["pt_xyz_pool"], np.float32),
            np.asarray(pools["pt_dist_pool"], np.float32))


def sample_shape(path: str, *, seed: int, context_backend: str, n_context: int, n_query: int,
                 context_mode: str = "normal", disjoint_context_query: bool = True,
                 mismatch_path: str | None = None,
                 backend_opts: Mapping[str, Any] | None = None, query_source: str = "pool",
                 query_pool_frac: float = 0.5,
                 grid_opts: Mapping[str, Any] | None = None) -> ShapeSample:
    """Context and query sets of one shape, exactly as the original draws them.

    grid_opts: `mode`, `near_tau`, `near_frac` of `cpac_grid.sample_grid_queries`.
    """
    if context_mode not in CONTEXT_MODES:
        raise ValueError(f"context_mode={context_mode!r}: choose from {', '.join(CONTEXT_MODES)}")
    if query_source not in QUERY_SOURCES:
        raise ValueError(f"query_source={query_source!r}: choose from {', '.join(QUERY_SOURCES)}")
    n_grid = split_queries(int(n_query), query_source, query_pool_frac)[1]
    n_query = int(n_query) - n_grid  # from the pool
    backend_opts = dict(backend_opts or {})
    rng = np.random.RandomState(path_seed(path, seed))
    npz = CheckedRecord(path)
    try:
        pt_xyz = np.asarray(npz["pt_xyz_pool"], np.float32)
        n_pool = int(pt_xyz.shape[0])
        if n_pool == 0:
            raise CacheError(f"{path} [pt_xyz_pool]: empty point pool")
        if context_mode == "normal" and disjoint_context_query:
            idx = choose(rng, n_pool, int(n_context) + int(n_query))
            cidx, qidx = idx[:int(n_context)], idx[int(n_context):]
        else:
            cidx = choose(rng, n_pool, n_context)
            qidx = choose(rng, n_pool, n_query)

        if context_mode == "none":
            ctx_xyz = np.zeros((0, 3), np.float32)
            ctx_dist = np.zeros((0,), np.float32)
        else:
            ctx_path = mismatch_path if (context_mode == "mismatch" and mismatch_path) else path
            same = ctx_path == path
            c_xyz, c_dist = _context_pools(ctx_path, context_backend, npz if same else None,
                                           backend_opts)
            if not same or (cidx.size and int(cidx.max()) >= c_xyz.shape[0]):
                cidx = choose(rng, c_xyz.shape[0], n_context)
            ctx_xyz, ctx_dist = c_xyz[cidx], c_dist[cidx]
            if ctx_xyz.shape[0]:
                order = morton_argsort(ctx_xyz)
                ctx_xyz, ctx_dist = ctx_xyz[order], ctx_dist[order]

        target_key = next((k for k in TARGET_KEYS if k in npz), None) if n_query else "udf_grid"
        if target_key is None:
            raise CacheError(f"{path} [pt_dist_udf_pool]: missing key (CPAC query targets; "
                             "pt_dist_pool is not there either)")
        q_xyz = pt_xyz[qidx]
        q_dist = (np.asarray(npz[target_key], np.float32)[qidx] if n_query
                  else np.zeros((0,), np.float32))
        if query_source != "pool":
            g_xyz, g_dist = sample_grid_queries(npz["udf_grid"], rng, n_grid, **(grid_opts or {}))
            q_xyz = np.concatenate([q_xyz, g_xyz])
            q_dist = np.concatenate([q_dist, g_dist])
        if q_xyz.shape[0]:
            order = morton_argsort(q_xyz)
            q_xyz, q_dist = q_xyz[order], q_dist[order]
    finally:
        npz.close()
    return ShapeSample(path, ctx_xyz, ctx_dist, q_xyz, q_dist, target_key)
