"""Occupancy and unsigned-distance grids over the [-1, 1] cube, and trilinear sampling.

Cache-format facts: a G^3 grid has voxel size 2/G; a point falls in voxel floor((x+1)/voxel)
(clipped to the grid); occupancy is dilated with the 6-connected cross; the UDF is the
Euclidean distance transform of the empty space in world units (float32 while sampling,
stored as float16); values live at voxel centres, sampled trilinearly with edge clamping
(`nepa3d_jax.data.grids.trilinear_sample`, shared with the CPAC mesh metrics).
All arithmetic stays in float32 like the original so cached values match bit for bit.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# The cube's bounds and the sampler belong to the package (data_prep imports it, never the
# other way round); re-exported here for this package's modules (dda, mesh_cache).
from nepa3d_jax.data.grids import BMAX, BMIN, trilinear_sample

__all__ = ["BMAX", "BMIN", "occupancy_grid", "trilinear_sample", "udf_from_occupancy",
           "voxel_index"]


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
