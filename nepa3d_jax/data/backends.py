"""Backends: which cached arrays a shape exposes as its point pool, distances and ray pools.

Rules (facts of the original's backends and dataset):
  mesh                mesh distances `pt_dist_pool`, mesh ray answers, rays available.
  pointcloud          distances observed from the cloud: `pt_dist_pc_pool` (recomputed by
                      nearest-neighbour search when it holds NaN/negative markers), else
                      `pt_dist_pool` (old caches), else computed; ray answers rendered from the
                      cloud (`ray_*_pc_pool`) when all three exist, else the mesh ones.
  pointcloud_noray    as `pointcloud`, rays marked missing.
  pointcloud_meshray  `pointcloud` distances with the mesh ray answers.
  udfgrid             `pt_dist_udf_pool` (else `pt_dist_pool`), ray answers zero, rays missing.
  voxel               distances and ray answers recomputed from the voxelised `pc_xyz`.
Then the dataset options: `pt_xyz_key` picks the point pool among the backend's pools (falling
back to `pt_xyz_pool`, then `pc_xyz`), `pt_dist_key` the distances (zeros when absent or of
another length), `ablate_point_dist` zeroes them, `pt_fps_key` picks a pre-computed FPS order
("auto": `<pt_xyz_key>_fps_order`, then `pc_fps_order` for `pc_*` pools, then `pt_fps_order`),
`force_missing_ray` marks rays missing.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from nepa3d_jax.data import voxel as voxel_lib
from nepa3d_jax.data.schema import BACKENDS

# The original dataset's voxel backend defaults (grid cells per side, occupancy dilation, ray
# walk step limit with 0 = none). Pretraining configs state theirs (`data.voxel_*`).
VOXEL_GRID = 64
VOXEL_DILATE = 1
VOXEL_MAX_STEPS = 0

_RAY_KEYS = ("ray_o", "ray_d", "ray_hit", "ray_t", "ray_n")


def _f32(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def _nn_dist(pc_xyz: np.ndarray, pt_xyz: np.ndarray) -> np.ndarray:
    dist, _ = cKDTree(pc_xyz).query(pt_xyz, k=1)
    return dist.astype(np.float32)


def _pc_dist(npz: Mapping[str, Any], pt_xyz: np.ndarray, pc_xyz: np.ndarray) -> np.ndarray:
    if "pt_dist_pc_pool" in npz:
        dist = _f32(npz["pt_dist_pc_pool"])
        if not np.isfinite(dist).all() or np.any(dist < 0):
            dist = _nn_dist(pc_xyz, pt_xyz)
        return dist
    if "pt_dist_pool" in npz:
        return _f32(npz["pt_dist_pool"])
    return _nn_dist(pc_xyz, pt_xyz)


def _ray_answers(npz: Mapping[str, Any], suffix: str) -> dict[str, np.ndarray]:
    return {k: _f32(npz[f"{k}{suffix}"]) for k in ("ray_hit", "ray_t", "ray_n")}


def backend_pools(npz: Mapping[str, Any], backend: str, *, voxel_grid: int = VOXEL_GRID,
                  voxel_dilate: int = VOXEL_DILATE, voxel_max_steps: int = VOXEL_MAX_STEPS
                  ) -> dict[str, Any]:
    """The original backend's pool dict, keyed by the original's names.

    `npz` may be a lazy `data.npz.Npz`: only the keys the backend reads are decompressed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend '{backend}' (choose from {', '.join(BACKENDS)})")
    pools: dict[str, Any] = {"pt_xyz_pool": _f32(npz["pt_xyz_pool"])}
    ray_o, ray_d = _f32(npz["ray_o_pool"]), _f32(npz["ray_d_pool"])
    pools.update(ray_o_pool=ray_o, ray_d_pool=ray_d, ray_available=True)
    pt_xyz = pools["pt_xyz_pool"]
    if backend == "mesh":
        pools["pt_dist_pool"] = _f32(npz["pt_dist_pool"])
        answers = _ray_answers(npz, "_pool")
    elif backend.startswith("pointcloud"):
        pc_xyz = _f32(npz["pc_xyz"])
        pools["pc_xyz"] = pc_xyz
        pools["pt_dist_pool"] = _pc_dist(npz, pt_xyz, pc_xyz)
        have_pc_rays = all(f"ray_{k}_pc_pool" in npz for k in ("hit", "t", "n"))
        if backend in ("pointcloud", "pointcloud_noray") and have_pc_rays:
            answers = _ray_answers(npz, "_pc_pool")
        else:
            answers = _ray_answers(npz, "_pool")
        if backend == "pointcloud_noray":
            pools["ray_available"] = False
        if "pc_fps_order" in npz:
            pools["pc_fps_order"] = pools["pc_xyz_fps_order"] = np.asarray(
                npz["pc_fps_order"], np.int32)
    elif backend == "udfgrid":
        key = "pt_dist_udf_pool" if "pt_dist_udf_pool" in npz else "pt_dist_pool"
        pools["pt_dist_pool"] = _f32(npz[key])
        m = ray_o.shape[0]
        answers = dict(ray_hit=np.zeros((m,), np.float32), ray_t=np.zeros((m,), np.float32),
                       ray_n=np.zeros((m, 3), np.float32))
        pools["ray_available"] = False
    else:  # voxel
        vox = voxel_lib.voxel_pools(_f32(npz["pc_xyz"]), _f32(npz["pc_n"]), pt_xyz, ray_o, ray_d,
                                    grid=voxel_grid, dilate=voxel_dilate,
                                    max_steps=voxel_max_steps)
        pools["pt_dist_pool"] = vox.pop("pt_dist")
        answers = vox
    pools.update({f"{k}_pool": v for k, v in answers.items()})
    if "pt_fps_order" in npz:
        pools["pt_fps_order"] = np.asarray(npz["pt_fps_order"], np.int32)
        if backend.startswith("pointcloud"):
            pools["pt_xyz_pool_fps_order"] = pools["pt_fps_order"]
    return pools


def resolve_fps_key(pools: Mapping[str, Any], pt_xyz_key: str, pt_fps_key: str) -> str | None:
    """The pool key of the pre-computed FPS order to use, or None (on-the-fly FPS)."""
    if str(pt_fps_key).lower() != "auto":
        return pt_fps_key if pt_fps_key in pools else None
    candidates = [f"{pt_xyz_key}_fps_order"]
    if str(pt_xyz_key).startswith("pc_"):
        candidates.append("pc_fps_order")
    candidates.append("pt_fps_order")
    return next((k for k in candidates if k in pools), None)


def apply_backend(npz: Mapping[str, Any], backend: str, *, pt_xyz_key: str = "pt_xyz_pool",
                  pt_dist_key: str | None = "pt_dist_pool", pt_fps_key: str = "auto",
                  ablate_point_dist: bool = False, force_missing_ray: bool = False,
                  voxel_grid: int = VOXEL_GRID, voxel_dilate: int = VOXEL_DILATE,
                  voxel_max_steps: int = VOXEL_MAX_STEPS, path: str = "") -> dict[str, Any]:
    """Pools one sample feeds to the tokenizer (unpadded).

    Returns `pt_xyz (P,3) f32`, `pt_dist (P,) f32`, `pt_fps_order (K,) i32 | None`, `ray_o`,
    `ray_d`, `ray_n (R,3) f32`, `ray_hit`, `ray_t (R,) f32`, `ray_available bool`.
    A pre-computed order whose indices fall outside the pool is dropped (None), as the
    original tokenizer then falls back to on-the-fly FPS.
    """
    pools = backend_pools(npz, backend, voxel_grid=voxel_grid, voxel_dilate=voxel_dilate,
                          voxel_max_steps=voxel_max_steps)
    pt_xyz = next((pools[k] for k in (pt_xyz_key, "pt_xyz_pool", "pc_xyz")
                   if k in pools and isinstance(pools[k], np.ndarray)), None)
    if pt_xyz is None:  # unreachable with the known backends; kept for clear errors
        raise KeyError(f"{path}: point pool '{pt_xyz_key}' not found")
    n = pt_xyz.shape[0]
    pt_dist = pools.get(pt_dist_key) if pt_dist_key else None
    dist_ok = pt_dist is not None and np.ndim(pt_dist) >= 1 and np.shape(pt_dist)[0] == n \
        and np.size(pt_dist) == n
    if not dist_ok:
        if not ablate_point_dist:
            warnings.warn(f"pt_dist_key='{pt_dist_key}' is missing or does not match "
                          f"pt_xyz_key='{pt_xyz_key}' ({path}); using zero distances",
                          stacklevel=2)
        pt_dist = np.zeros((n,), np.float32)
    pt_dist = _f32(pt_dist).reshape(n)
    if ablate_point_dist:
        pt_dist = np.zeros_like(pt_dist)

    fps_key = resolve_fps_key(pools, pt_xyz_key, pt_fps_key)
    order = None
    if fps_key is not None:
        order = np.asarray(pools[fps_key]).reshape(-1).astype(np.int32)
        if order.size == 0 or order.min() < 0 or order.max() >= n:
            order = None
    out = dict(pt_xyz=pt_xyz, pt_dist=pt_dist, pt_fps_order=order,
               ray_available=bool(pools["ray_available"]) and not force_missing_ray)
    for k in _RAY_KEYS:
        out[k] = pools[f"{k}_pool"]
    return out
