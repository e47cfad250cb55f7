"""The `voxel` backend's answers: occupancy from the cached point cloud, distances from a voxel
distance transform, ray hits by a grid walk (DDA) — all rays walked at once.

Same rules as the original's voxel backend (grid over [-1, 1]^3, floor indexing clipped to the
grid, occupancy dilated `dilate` times, first occupied cell along the ray, normal of the nearest
cloud point), with the same float32/float64 arithmetic so hit depths agree bit for bit.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import distance_transform_edt
from scipy.spatial import cKDTree

from nepa3d_jax.data.grids import (BMAX, BMIN, RAY_EPS, occupancy_grid, ray_box_interval,
                                   voxel_index)


def point_distance(occ: np.ndarray, pt_xyz: np.ndarray) -> np.ndarray:
    """(P,) float32 distance (world units) from each query's cell to the nearest occupied cell."""
    grid = occ.shape[0]
    dist_vox = distance_transform_edt(~occ).astype(np.float32)
    idx = voxel_index(pt_xyz, grid)
    return (dist_vox[idx[:, 0], idx[:, 1], idx[:, 2]] * (2.0 / float(grid))).astype(np.float32)


def ray_first_hit(occ: np.ndarray, ray_o: np.ndarray, ray_d: np.ndarray,
                  max_steps: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(R,) hit in {0,1} float32 and (R,) depth float32 of the first occupied cell per ray."""
    grid = occ.shape[0]
    voxel = (BMAX - BMIN) / float(grid)
    steps = 3 * grid if max_steps <= 0 else int(max_steps)
    m = ray_o.shape[0]
    hit_out = np.zeros((m,), np.float32)
    t_out = np.zeros((m,), np.float32)

    inside, t_entry, t_exit = ray_box_interval(ray_o, ray_d)
    rays = np.flatnonzero(inside)
    if rays.size == 0:
        return hit_out, t_out
    o, d = ray_o[rays], ray_d[rays]
    t_start = t_entry[rays]
    t_end = t_exit[rays].astype(np.float64)
    p = o + t_start[:, None] * d  # float32, as the original
    cell = voxel_index(p, grid).astype(np.int64)  # (n,3)
    d64 = d.astype(np.float64)
    flat = np.abs(d64) < RAY_EPS
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
    occ = occupancy_grid(pc_xyz, grid, dilate)
    pt_dist = point_distance(occ, pt_xyz)
    ray_hit, ray_t = ray_first_hit(occ, ray_o, ray_d, max_steps)
    ray_n = np.zeros((ray_o.shape[0], 3), np.float32)
    idx = np.flatnonzero(ray_hit > 0.5)
    if idx.size:
        pts = ray_o[idx] + ray_t[idx][:, None] * ray_d[idx]
        _, nn = cKDTree(pc_xyz).query(pts, k=1)
        ray_n[idx] = pc_n[nn].astype(np.float32)
    return dict(pt_dist=pt_dist, ray_hit=ray_hit, ray_t=ray_t, ray_n=ray_n)
