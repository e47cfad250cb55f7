"""Occupancy and unsigned-distance grids over the [-1, 1] cube, and trilinear sampling.

Cache-format facts: a G^3 grid has voxel size 2/G; a point falls in voxel floor((x+1)/voxel)
(clipped to the grid); occupancy is dilated with the 6-connected cross; the UDF is the
Euclidean distance transform of the empty space in world units (float32 while sampling,
stored as float16); values live at voxel centres, sampled trilinearly with edge clamping.
All arithmetic stays in float32 like the original so cached values match bit for bit.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

BMIN, BMAX = -1.0, 1.0


def voxel_index(xyz: np.ndarray, grid: int) -> np.ndarray:
    """(N, 3) int32 voxel indices of float32 points, clipped into the grid."""
    voxel = (BMAX - BMIN) / float(grid)
    xyz = np.asarray(xyz).astype(np.float32, copy=False)
    idx = np.floor((xyz - BMIN) / voxel).astype(np.int32)
    return np.clip(idx, 0, grid - 1)


def occupancy_grid(pc_xyz: np.ndarray, grid: int = 64, dilate: int = 1) -> np.ndarray:
    """(G, G, G) bool: voxels holding a point, dilated `dilate` times (6-connected)."""
    idx = voxel_index(pc_xyz, grid)
    occ = np.zeros((grid, grid, grid), dtype=bool)
    occ[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    if dilate > 0:
        occ = ndimage.binary_dilation(occ, iterations=int(dilate))
    return occ


def udf_from_occupancy(occ: np.ndarray) -> np.ndarray:
    """(G, G, G) float32 distance (world units) from each voxel centre to the nearest occupied one."""
    g = occ.shape[0]
    voxel = (BMAX - BMIN) / float(g)
    return ndimage.distance_transform_edt(~occ, sampling=(voxel, voxel, voxel)).astype(np.float32)


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
