"""Camera ray pools and their answers on a mesh (hit flag, distance t, face normal).

Cameras sit on a radius-2.2 ring whose azimuth sweeps a full turn while the elevation goes
from -0.35*pi to +0.35*pi; each view casts pinhole rays (60 degree field of view, uniform in
the image square) towards the origin. Mesh hits use Embree through trimesh (`embreex`) when
present, trimesh's pure-numpy triangle intersector otherwise; all rays in one call.
"""

from __future__ import annotations

import numpy as np
import trimesh

CAMERA_RADIUS = 2.2
FOV_DEG = 60.0


def camera_positions(n_views: int, radius: float = CAMERA_RADIUS) -> np.ndarray:
    """(V, 3) float32 camera centres."""
    az = np.linspace(0.0, 2.0 * np.pi, n_views, endpoint=False)
    el = np.linspace(-0.35 * np.pi, 0.35 * np.pi, n_views)
    cams = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=1)
    return (radius * cams).astype(np.float32)


def _look_at_rows(cams: np.ndarray) -> np.ndarray:
    """(V, 3, 3) rows (right, up, forward) of a camera looking at the origin, z-up."""
    fwd = -cams / (np.linalg.norm(cams, axis=1, keepdims=True) + 1e-9)
    up_hint = np.broadcast_to(np.array([0.0, 0.0, 1.0], np.float32), fwd.shape).copy()
    right = np.cross(up_hint, fwd)
    flat = np.linalg.norm(right, axis=1) < 1e-6           # looking straight up or down
    up_hint[flat] = (0.0, 1.0, 0.0)
    right = np.cross(up_hint, fwd)
    right /= np.linalg.norm(right, axis=1, keepdims=True) + 1e-9
    up = np.cross(fwd, right)
    return np.stack([right, up, fwd], axis=1).astype(np.float32)


def camera_rays(rng: np.random.Generator, n_views: int, rays_per_view: int,
                ray_pool: int) -> tuple[np.ndarray, np.ndarray]:
    """(ray_o (R, 3) f32, ray_d (R, 3) f32 unit) with R = ray_pool, views in order.

    Each view gets max(rays_per_view, ceil(ray_pool / n_views)) rays, the pool keeps the
    first ray_pool of them (the original's profile semantics).
    """
    n_views = max(int(n_views), 1)
    per_view = max(int(rays_per_view), int(np.ceil(ray_pool / n_views)))
    cams = camera_positions(n_views)
    rows = _look_at_rows(cams)                                       # (V, 3, 3)
    uv = rng.uniform(-1.0, 1.0, size=(n_views, per_view, 2)).astype(np.float32)
    focal = np.float32(1.0 / np.tan(np.deg2rad(FOV_DEG) * 0.5))
    cam_dirs = np.concatenate([uv, np.full(uv.shape[:2] + (1,), focal, np.float32)], axis=2)
    cam_dirs /= np.linalg.norm(cam_dirs, axis=2, keepdims=True) + 1e-9
    world = np.einsum("vnk,vkj->vnj", cam_dirs, rows)                # sum_k dir_k * row_k
    world /= np.linalg.norm(world, axis=2, keepdims=True) + 1e-9
    origins = np.broadcast_to(cams[:, None, :], world.shape)
    return (origins.reshape(-1, 3)[:ray_pool].astype(np.float32),
            world.reshape(-1, 3)[:ray_pool].astype(np.float32))


def intersector(mesh: trimesh.Trimesh):
    """Embree-backed intersector when `embreex` imports, else the numpy triangle one."""
    try:
        from trimesh.ray.ray_pyembree import RayMeshIntersector
        return RayMeshIntersector(mesh)
    except Exception:  # embreex missing or failing to build the scene
        return trimesh.ray.ray_triangle.RayMeshIntersector(mesh)


def mesh_ray_answers(mesh: trimesh.Trimesh, ray_o: np.ndarray, ray_d: np.ndarray):
    """(ray_hit (R,) f32, ray_t (R,) f32, ray_n (R, 3) f32) of the first hit of each ray."""
    m = ray_o.shape[0]
    hit = np.zeros((m,), np.float32)
    t = np.zeros((m,), np.float32)
    n = np.zeros((m, 3), np.float32)
    if m == 0:
        return hit, t, n
    loc, idx_ray, idx_tri = intersector(mesh).intersects_location(
        ray_o, ray_d, multiple_hits=False)
    if len(idx_ray):
        hit[idx_ray] = 1.0
        t[idx_ray] = np.sum((loc - ray_o[idx_ray]) * ray_d[idx_ray], axis=1).astype(np.float32)
        n[idx_ray] = mesh.face_normals[idx_tri].astype(np.float32)
    bad = ~np.isfinite(t) | ~np.isfinite(n).all(axis=1)
    hit[bad], t[bad], n[bad] = 0.0, 0.0, 0.0
    return hit, t, n
