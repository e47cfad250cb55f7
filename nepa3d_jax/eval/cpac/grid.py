"""CPAC queries drawn from a shape's UDF grid (`query_source` grid / hybrid), as the original.

A query is the centre of a grid cell, `-1 + (ijk + 0.5) * 2 / G`, and its target the cell's
value. Modes (all draws from the shape's own RandomState, after its context draws):
  uniform       `n` distinct cells;
  near_surface  a `near_frac` share of cells with UDF <= `near_tau`, the rest above it, topped
                up from whichever group still has cells, shuffled together;
  stratified    equal shares of the five UDF quintile bins, shuffled together.
The original's `coarse_to_fine` mode is not implemented.
"""

from __future__ import annotations

import numpy as np

GRID_MODES = ("uniform", "near_surface", "stratified")


def _near_surface(udf_flat: np.ndarray, n: int, rng, near_tau: float, near_frac: float):
    near = np.nonzero(udf_flat <= near_tau)[0]
    far = np.nonzero(udf_flat > near_tau)[0]
    k_near = max(0, min(int(round(float(n) * min(max(near_frac, 0.0), 1.0))), n))
    if near.size == 0:
        k_near = 0
    if far.size == 0:
        k_near = n
    k_near = min(k_near, int(near.size))
    k_far = min(n - k_near, int(far.size))
    missing = n - k_near - k_far
    if missing > 0:  # top up from the near group first, then the far group
        extra = min(missing, int(near.size) - k_near)
        k_near, missing = k_near + extra, missing - extra
        k_far += min(missing, int(far.size) - k_far)
    if k_near + k_far < n:
        return rng.choice(udf_flat.size, size=n, replace=True).astype(np.int64)
    parts = []
    if k_near > 0:
        parts.append(rng.choice(near, size=k_near, replace=False).astype(np.int64))
    if k_far > 0:
        parts.append(rng.choice(far, size=k_far, replace=False).astype(np.int64))
    lin = np.concatenate(parts)
    rng.shuffle(lin)
    return lin


def _stratified(udf_flat: np.ndarray, n: int, rng):
    total = udf_flat.size
    edges = np.quantile(udf_flat, [0.2, 0.4, 0.6, 0.8]).astype(np.float32)
    bins = np.digitize(udf_flat, edges, right=True)
    per, extra = divmod(n, 5)
    parts = []
    for b in range(5):
        k = per + (1 if b < extra else 0)
        if k <= 0:
            continue
        members = np.nonzero(bins == b)[0]
        pool = members if members.size >= k else total
        parts.append(rng.choice(pool, size=k, replace=False).astype(np.int64))
    if not parts:
        return rng.choice(total, size=n, replace=False).astype(np.int64)
    lin = np.concatenate(parts)[:n]
    if lin.size < n:
        lin = np.concatenate([lin, rng.choice(total, size=n - lin.size,
                                              replace=False).astype(np.int64)])
    rng.shuffle(lin)
    return lin


def sample_grid_queries(udf_grid: np.ndarray, rng: np.random.RandomState, n_query: int,
                        mode: str = "uniform", near_tau: float = 0.05,
                        near_frac: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """(xyz (n, 3) float32, udf (n,) float32) of `min(n_query, G**3)` grid cells."""
    if mode not in GRID_MODES:
        raise ValueError(f"grid_sample_mode={mode!r}: choose from {', '.join(GRID_MODES)} "
                         "(coarse_to_fine is not implemented)")
    udf = np.asarray(udf_grid).astype(np.float32)
    if udf.ndim != 3 or len(set(udf.shape)) != 1:
        raise ValueError(f"udf_grid must be a cube (G, G, G), got shape {udf.shape}")
    g = udf.shape[0]
    flat = udf.reshape(-1)
    n = min(int(n_query), flat.size)
    if n <= 0:
        return np.zeros((0, 3), np.float32), np.zeros((0,), np.float32)
    if mode == "uniform":
        lin = rng.choice(flat.size, size=n, replace=False).astype(np.int64)
    elif mode == "near_surface":
        lin = _near_surface(flat, n, rng, float(near_tau), float(near_frac))
    else:
        lin = _stratified(flat, n, rng)
    ijk = np.stack([lin // (g * g), (lin // g) % g, lin % g], axis=1).astype(np.float32)
    xyz = (np.float32(-1.0) + (ijk + np.float32(0.5)) * np.float32(2.0 / float(g)))
    return xyz.astype(np.float32), flat[lin]
