"""The `voxel` backend's answers: occupancy from the cached point cloud, distances from a voxel
distance transform, ray hits by a grid walk (DDA) — all rays walked at once.

Same rules as the original's voxel backend (grid over [-1, 1]^3, floor indexing clipped to the
grid, occupancy dilated `dilate` times, first occupied cell along the ray, normal of the nearest
cloud point), with the same float32/float64 arithmetic so hit depths agree bit for bit.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_dilation, distance_transform_edt
from scipy.spatial import cKDTree

from nepa3d_jax.data.grids import BMAX, BMIN

_EPS = 1e-9


def grid_index(xyz: np.ndarray, grid: int) -> np.ndarray:
    """(N,3) world coordinates -> (N,3) int32 cell indices, clipped into the grid."""
    voxel = (BMAX - BMIN) / float(grid)
    idx = np.floor((xyz - BMIN) / voxel).astype(np.int32)
    return np.clip(idx, 0, grid - 1)


def occupancy(pc_xyz: np.ndarray, grid: int = 64, dilate: int = 1) -> np.ndarray:
    """(G,G,G) bool: cells holding a cloud point, dilated `dilate` times (6-connected)."""
    idx = grid_index(pc_xyz, grid)
    occ = np.zeros((grid, grid, grid), dtype=bool)
    occ[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    if dilate > 0:
        occ = binary_dilation(occ, iterations=int(dilate))
    return occ


def point_distance(occ: np.ndarray, pt_xyz: np.ndarray) -> np.ndarray:
    """(P,) float32 distance (world units) from each query's cell to the nearest occupied cell."""
    grid = occ.shape[0]
    dist_vox = distance_transform_edt(~occ).astype(np.float32)
    idx = grid_index(pt_xyz, grid)
    return (dist_vox[idx[:, 0], idx[:, 1], idx[:, 2]] * (2.0 / float(grid))).astype(np.float32)


def _aabb_entry_exit(ray_o: np.ndarray, ray_d: np.ndarray):
    d = np.where(np.abs(ray_d) < _EPS, np.sign(ray_d) * _EPS + (ray_d == 0.0) * _EPS, ray_d)
    inv = 1.0 / d
    t0 = (BMIN - ray_o) * inv
    t1 = (BMAX - ray_o) * inv
    tmin = np.max(np.minimum(t0, t1), axis=1)
    tmax = np.min(np.maximum(t0, t1), axis=1)
    t_entry = np.maximum(tmin, 0.0)
    return tmax >= t_entry, t_entry.astype(np.float32), tmax.astype(np.float32)


def ray_first_hit(occ: np.ndarray, ray_o: np.ndarray, ray_d: np.ndarray,
                  max_steps: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(R,) hit in {0,1} float32 and (R,) depth float32 of the first occupied cell per ray."""
    grid = occ.shape[0]
    voxel = (BMAX - BMIN) / float(grid)
    steps = 3 * grid if max_steps <= 0 else int(max_steps)
    m = ray_o.shape[0]
    hit_out = np.zeros((m,), np.float32)
    t_out = np.zeros((m,), np.float32)

    inside, t_entry, t_exit = _aabb_entry_exit(ray_o, ray_d)
    rays = np.flatnonzero(inside)
    if rays.size == 0:
        return hit_out, t_out
    o, d = ray_o[rays], ray_d[rays]
    t_start = t_entry[rays]
    t_end = t_exit[rays].astype(np.float64)
    p = o + t_start[:, None] * d  # float32, as the original
    cell = grid_index(p, grid).astype(np.int64)  # (n,3)
    d64 = d.astype(np.float64)
    flat = np.abs(d64) < _EPS
    step = np.where(flat, 0, np.where(d64 > 0, 1, -1)).astype(np.int64)
    boundary = BMIN + (cell + (d64 > 0)) * voxel  # float64 next cell face
    with np.errstate(divide="ignore", invalid="ignore"):
        t_max = t_start[:, None].astype(np.float64) + (boundary - p.astype(np.float64)) / d64
        t_delta = voxel / np.abs(d64)
    t_max = np.where(flat, np.inf, t_max)
    t_delta = np.where(flat, np.inf, t_delta)
    t = t_start.astype(np.float64)

    active = np.arange(rays.size)
    for _ in range(steps):
        if active.size == 0:
            break
        c = cell[active]
        occupied = occ[c[:, 0], c[:, 1], c[:, 2]]
        if occupied.any():
            done = active[occupied]
            hit_out[rays[done]] = 1.0
            t_out[rays[done]] = t[done].astype(np.float32)
            active = active[~occupied]
            if active.size == 0:
                break
        tm = t_max[active]
        ax = np.where((tm[:, 0] < tm[:, 1]) & (tm[:, 0] < tm[:, 2]), 0,
                      np.where(tm[:, 1] < tm[:, 2], 1, 2))
        rows = np.arange(active.size)
        t[active] = tm[rows, ax]
        t_max[active, ax] = tm[rows, ax] + t_delta[active, ax]
        cell[active, ax] += step[active, ax]
        c = cell[active]
        gone = (t[active] > t_end[active]) | np.any((c < 0) | (c >= grid), axis=1)
        active = active[~gone]
    return hit_out, t_out


def voxel_pools(pc_xyz: np.ndarray, pc_n: np.ndarray, pt_xyz: np.ndarray, ray_o: np.ndarray,
                ray_d: np.ndarray, *, grid: int = 64, dilate: int = 1,
                max_steps: int = 0) -> dict[str, np.ndarray]:
    """pt_dist, ray_hit, ray_t, ray_n answered from the voxelised point cloud."""
    occ = occupancy(pc_xyz, grid, dilate)
    pt_dist = point_distance(occ, pt_xyz)
    ray_hit, ray_t = ray_first_hit(occ, ray_o, ray_d, max_steps)
    ray_n = np.zeros((ray_o.shape[0], 3), np.float32)
    idx = np.flatnonzero(ray_hit > 0.5)
    if idx.size:
        pts = ray_o[idx] + ray_t[idx][:, None] * ray_d[idx]
        _, nn = cKDTree(pc_xyz).query(pts, k=1)
        ray_n[idx] = pc_n[nn].astype(np.float32)
    return dict(pt_dist=pt_dist, ray_hit=ray_hit, ray_t=ray_t, ray_n=ray_n)
