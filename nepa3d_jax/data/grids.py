"""The voxel-centre grid over the [-1, 1] cube: its bounds, its centres, trilinear sampling.

A G^3 grid has voxel size 2/G and holds values at the voxel centres `-1 + (i + 0.5) * 2 / G`.
Caches (`data_prep`), the voxel backend and the CPAC mesh metrics all use this convention, so
it lives here once. Sampling clamps at the border (a point outside the outermost centres takes
the edge value) and stays in float32 like the original, so cached `pt_dist_udf_pool` values
made with it match the original's bit for bit.
"""

from __future__ import annotations

import numpy as np

BMIN, BMAX = -1.0, 1.0


def grid_centers(grid_res: int) -> np.ndarray:
    """(G, G, G, 3) float32 voxel centres of [-1, 1]^3, index order (i, j, k) = (x, y, z)."""
    g = int(grid_res)
    if g < 1:
        raise ValueError(f"grid_res={grid_res}: a grid needs at least one cell a side")
    axis = (BMIN + (np.arange(g, dtype=np.float32) + 0.5) * ((BMAX - BMIN) / g))
    axis = axis.astype(np.float32)
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1)


def trilinear_sample(grid_GGG: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """(N,) float32 values of a voxel-centre grid at world points (clamped at the border)."""
    g = int(grid_GGG.shape[0])
    voxel = (BMAX - BMIN) / float(g)
    s = (np.asarray(xyz, dtype=np.float32) - BMIN) / voxel - 0.5
    lo = np.floor(s).astype(np.int32)
    w = (s - lo.astype(np.float32)).astype(np.float32)
    hi = np.clip(lo + 1, 0, g - 1)
    lo = np.clip(lo, 0, g - 1)
    x = (lo[:, 0], hi[:, 0])
    y = (lo[:, 1], hi[:, 1])
    z = (lo[:, 2], hi[:, 2])
    wx, wy, wz = w[:, 0], w[:, 1], w[:, 2]

    def lerp_x(j: int, k: int) -> np.ndarray:
        return grid_GGG[x[0], y[j], z[k]] * (1.0 - wx) + grid_GGG[x[1], y[j], z[k]] * wx

    c0 = lerp_x(0, 0) * (1.0 - wy) + lerp_x(1, 0) * wy
    c1 = lerp_x(0, 1) * (1.0 - wy) + lerp_x(1, 1) * wy
    return (c0 * (1.0 - wz) + c1 * wz).astype(np.float32, copy=False)
