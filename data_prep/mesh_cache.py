"""One mesh -> one cache dict (the keys and dtypes of the original's mesh caches).

Steps: load and check the mesh, normalise it to the unit ball, draw the random parts (point
cloud with normals, point-query pool, camera rays), then derive the rest from them: the FPS
order, mesh / point-cloud / UDF-grid distances, mesh ray hits and point-cloud (DDA) answers.
"""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from data_prep import dda, grids, raycast
from data_prep.distance import MeshDistance, kdtree_distance
from data_prep.fps import fps_order
from data_prep.normalize import unit_ball_mesh_vertices
from data_prep.profile import Profile
from data_prep.runner import BadShape, shape_rng
from data_prep.surface_sampling import fill_nonfinite, query_pool, sample_surface

try:  # libigl: AABB-tree exact distances in C++ (the numpy fallback is exact but slower)
    import igl
except ImportError:  # pragma: no cover - depends on the environment
    igl = None


def load_mesh(path: str) -> trimesh.Trimesh:
    """Load, check and clean a mesh, normalised to the unit ball; BadShape with the reason."""
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as e:
        raise BadShape(f"unreadable mesh ({type(e).__name__}: {e})") from e
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.vertices) == 0 or len(mesh.faces) == 0:
        raise BadShape("empty mesh (no vertices or no faces)")
    bad = ~np.isfinite(mesh.vertices).all(axis=1)
    if bad.any():
        raise BadShape(f"{int(bad.sum())} of {len(bad)} vertices have NaN/Inf coordinates")
    mesh.process()  # merge duplicate vertices, as trimesh.load does by default
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.update_faces(mesh.unique_faces())
    mesh.remove_unreferenced_vertices()
    if len(mesh.faces) == 0 or not float(mesh.area) > 1e-12:
        raise BadShape("degenerate mesh (zero surface area after removing degenerate faces)")
    mesh.vertices = unit_ball_mesh_vertices(mesh.vertices)
    return mesh


def mesh_distances(mesh: trimesh.Trimesh, xyz: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Exact unsigned distance from points to the mesh surface, float32."""
    if igl is not None:
        d2 = igl.point_mesh_squared_distance(
            np.asarray(xyz, np.float64), np.asarray(mesh.vertices, np.float64),
            np.asarray(mesh.faces, np.int64))[0]
        return np.sqrt(d2).astype(np.float32)
    return MeshDistance(mesh.vertices, mesh.faces)(xyz, chunk=max(chunk, 1))


# Keys drawn at random (cannot be reproduced) and keys derived from them and the mesh.
RANDOM_KEYS = ("pc_xyz", "pc_n", "pt_xyz_pool", "ray_o_pool", "ray_d_pool")
DERIVED_KEYS = ("pc_fps_order", "pt_dist_pool", "pt_dist_pc_pool", "pt_dist_udf_pool",
                "udf_grid", "occ_grid", "df_grid", "df_dilate", "ray_hit_pool", "ray_t_pool",
                "ray_n_pool", "ray_hit_pc_pool", "ray_t_pc_pool", "ray_n_pc_pool")


def random_parts(mesh: trimesh.Trimesh, profile: Profile,
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The random draws of one cache: surface samples, query pool, camera rays.

    For `pt_dist_mode=kdtree` with fewer cloud points than `dist_ref_points`, the extra
    surface samples the distances are measured to come back as `dist_ref` (not a cache key).
    """
    p = profile
    pc_xyz, face = sample_surface(mesh.vertices, mesh.faces, p.pc_points, rng)
    pc_n = np.asarray(mesh.face_normals, np.float64)[face].astype(np.float32)
    pt_xyz = query_pool(pc_xyz, p.pt_pool, rng, p.pt_surface_ratio, p.pt_surface_sigma)
    out = {"pc_xyz": pc_xyz, "pc_n": pc_n, "pt_xyz_pool": pt_xyz}
    if p.pt_dist_mode == "kdtree" and pc_xyz.shape[0] < p.dist_ref_points:
        out["dist_ref"] = sample_surface(mesh.vertices, mesh.faces,
                                         max(1, p.dist_ref_points), rng)[0]
    out["ray_o_pool"], out["ray_d_pool"] = raycast.camera_rays(
        rng, p.n_views, p.rays_per_view, p.ray_pool)
    return out


def derived_fields(mesh: trimesh.Trimesh, parts: dict[str, np.ndarray],
                   profile: Profile) -> dict[str, np.ndarray]:
    """Every deterministic cache field (DERIVED_KEYS) of a normalised mesh and its random parts.

    This is what the pipeline writes, so golden tests feed it the random parts of a
    reference cache and compare the rest.
    """
    p = profile
    pc_xyz, pc_n, pt_xyz = parts["pc_xyz"], parts["pc_n"], parts["pt_xyz_pool"]
    ray_o, ray_d = parts["ray_o_pool"], parts["ray_d_pool"]
    pc_fps = fps_order(pc_xyz, pc_xyz.shape[0])
    if p.pt_dist_mode == "kdtree":
        pt_dist = kdtree_distance(parts.get("dist_ref", pc_xyz), pt_xyz)
    else:
        pt_dist = mesh_distances(mesh, pt_xyz, p.pt_query_chunk)
    pt_dist = fill_nonfinite(pt_dist)
    pc_tree = cKDTree(pc_xyz)
    pt_dist_pc = fill_nonfinite(pc_tree.query(pt_xyz, k=1)[0])

    if p.udf and p.df_grid > 0:
        occ = grids.occupancy_grid(pc_xyz, grid=p.df_grid, dilate=p.df_dilate)
        udf = grids.udf_from_occupancy(occ)
        pt_dist_udf = fill_nonfinite(grids.trilinear_sample(udf, pt_xyz))
        udf16, occ8 = udf.astype(np.float16), occ.astype(np.uint8)
    else:  # the keys stay, as placeholders the backends tolerate
        pt_dist_udf = pt_dist
        udf16, occ8 = np.zeros((1, 1, 1), np.float16), np.zeros((1, 1, 1), np.uint8)

    ray_hit, ray_t, ray_n = raycast.mesh_ray_answers(mesh, ray_o, ray_d)
    if len(ray_hit) and not np.any(ray_hit):
        raise BadShape(f"none of the {len(ray_hit)} rays hits the normalised surface (an "
                       "outlier vertex shrinks the shape to a point?)")
    if p.pc_rays:
        hit_pc, t_pc, n_pc = dda.pointcloud_ray_answers(
            ray_o, ray_d, pc_xyz, pc_n, grid=p.pc_grid, dilate=p.pc_dilate,
            max_steps=p.pc_max_steps, tree=pc_tree)
    else:
        hit_pc, t_pc, n_pc = np.zeros_like(ray_hit), np.zeros_like(ray_t), np.zeros_like(ray_n)
    return {
        "pc_fps_order": pc_fps, "pt_dist_pool": pt_dist, "pt_dist_pc_pool": pt_dist_pc,
        "pt_dist_udf_pool": pt_dist_udf, "udf_grid": udf16, "occ_grid": occ8,
        "df_grid": np.array([p.df_grid], np.int32), "df_dilate": np.array([p.df_dilate], np.int32),
        "ray_hit_pool": ray_hit, "ray_t_pool": ray_t, "ray_n_pool": ray_n,
        "ray_hit_pc_pool": hit_pc, "ray_t_pc_pool": t_pc, "ray_n_pc_pool": n_pc,
    }


def mesh_cache(mesh: trimesh.Trimesh, profile: Profile, rng: np.random.Generator) -> dict:
    """All cache arrays of a normalised mesh: random parts, then the fields derived from them."""
    parts = random_parts(mesh, profile, rng)
    out = {k: parts[k] for k in RANDOM_KEYS}
    out.update(derived_fields(mesh, parts, profile))
    return out


def mesh_file_to_cache(path: str, profile: Profile, seed: int, shape_id: str) -> dict:
    """Job entry point (picklable): load `path` and build its cache with a per-shape RNG."""
    return mesh_cache(load_mesh(path), profile, shape_rng(seed, shape_id))
