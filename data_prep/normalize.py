"""Shape normalisation conventions of the original caches (facts of the cache format).

Meshes: centre of the bounding box to the origin, then divide by the largest vertex norm, so
the mesh lies in the unit ball (and the [-1, 1] cube every grid assumes). Point clouds
(ScanObjectNN): centroid to the origin, then the same unit-ball scaling.
"""

from __future__ import annotations

import numpy as np


def unit_ball_mesh_vertices(vertices: np.ndarray) -> np.ndarray:
    """Bounding-box centre at 0, max vertex norm 1 (scale 1 for a point-like mesh)."""
    v = np.asarray(vertices, dtype=np.float64)
    center = (v.max(axis=0) + v.min(axis=0)) * 0.5
    v = v - center
    scale = float(np.max(np.linalg.norm(v, axis=1)))
    if scale < 1e-9:
        scale = 1.0
    return v / scale


def unit_ball_points(pc: np.ndarray) -> np.ndarray:
    """Centroid at 0, max norm 1, in float32 (ScanObjectNN point clouds)."""
    pc = np.asarray(pc).astype(np.float32, copy=False)
    pc = pc - pc.mean(axis=0, keepdims=True)
    scale = np.max(np.linalg.norm(pc, axis=1))
    if not np.isfinite(scale) or scale < 1e-9:
        scale = 1.0
    return pc / scale
