"""The caches' unsigned-distance grid over the [-1, 1] cube.

The UDF is the Euclidean distance transform of the empty space of the occupancy grid, in world
units (float32 while sampling, stored as float16). The grid's own rules (cell of a point,
occupancy, voxel centres, trilinear sampling) belong to `nepa3d_jax.data.grids`, which the
voxel backend and the CPAC mesh metrics share; they are re-exported here for data_prep.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from nepa3d_jax.data.grids import BMAX, BMIN, occupancy_grid, trilinear_sample, voxel_index

__all__ = ["BMAX", "BMIN", "occupancy_grid", "trilinear_sample", "udf_from_occupancy",
           "voxel_index"]


def udf_from_occupancy(occ: np.ndarray) -> np.ndarray:
    """(G, G, G) float32 distance (world units) from each voxel centre to the nearest occupied one."""
    g = occ.shape[0]
    voxel = (BMAX - BMIN) / float(g)
    return ndimage.distance_transform_edt(~occ, sampling=(voxel, voxel, voxel)).astype(np.float32)
