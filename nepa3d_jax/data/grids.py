"""The [-1, 1] cube and its voxel grid: bounds, ray entry/exit, the cell of a point,
occupancy, voxel centres and trilinear sampling of values stored at the centres.

A G^3 grid has voxel size 2/G; a point falls in cell floor((x + 1) / voxel), clipped to the
grid; occupancy is dilated with the 6-connected cross; values live at the voxel centres
`-1 + (i + 0.5) * 2 / G`. Caches (`data_prep`), the voxel backend and the CPAC mesh metrics
all use these rules, so they live here once. Sampling clamps at the border (a point outside
the outermost centres takes the edge value). Arithmetic stays in float32 like the original,
so cached values made with these functions match the original's bit for bit.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

BMIN, BMAX = -1.0, 1.0
RAY_EPS = 1e-9  # ray direction components smaller than this count as this, sign kept


def ray_box_interval(ray_o: np.ndarray, ray_d: np.ndarray, eps: float = RAY_EPS):
    """Slab test against the cube: (hits (M,) bool, t_entry (M,) f32 >= 0, t_exit (M,) f32)."""
    d = np.where(np.abs(ray_d) < eps, np.sign(ray_d) * eps + (ray_d == 0.0) * eps, ray_d)
    inv = 1.0 / d
    t0 = (BMIN - ray_o) * inv
    t1 = (BMAX - ray_o) * inv
    t_min = np.max(np.minimum(t0, t1), axis=1)
    t_max = np.min(np.maximum(t0, t1), axis=1)
    t_entry = np.maximum(t_min, 0.0)
    return t_max >= t_entry, t_entry.astype(np.float32), t_max.astype(np.float32)


def voxel_index(xyz: np.ndarray, grid: int) -> np.ndarray:
    """(N, 3) int32 cell indices of points (taken as float32), clipped into the grid."""
    voxel = (BMAX - BMIN) / float(grid)
    xyz = np.asarray(xyz).astype(np.float32, copy=False)
    idx = np.floor((xyz - BMIN) / voxel).astype(np.int32)
    return np.clip(idx, 0, grid - 1)


def occupancy_grid(pc_xyz: np.ndarray, grid: int = 64, dilate: int = 1) -> np.ndarray:
    """(G, G, G) bool: cells holding a point, dilated `dilate` times (6-connected)."""
    idx = voxel_index(pc_xyz, grid)
    occ = np.zeros((grid, grid, grid), dtype=bool)
    occ[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    if dilate > 0:
        occ = ndimage.binary_dilation(occ, iterations=int(dilate))
    return occ


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
