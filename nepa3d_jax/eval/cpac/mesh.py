"""CPAC mesh metrics: marching cubes of a UDF grid, Chamfer-L1/L2 and F-score@tau.

A UDF has no inside, so its level set at `level` > 0 is a thin shell at distance `level`
around the surface (two sheets). Prediction and ground truth are meshed the same way (the
original's `--mesh_eval`: both grids at `mesh_mc_level`, default 0.03), surface points are
sampled uniformly on each mesh, and

  chamfer_l1 = mean_p min_q |p - q| + mean_q min_p |q - p|        (sum of both directions)
  chamfer_l2 = the same with squared distances
  precision / recall = share of points within `tau` of the other set; fscore = their
  harmonic mean (0 when both are 0).

Grid values live at voxel centres `-1 + (i + 0.5) * 2 / G` (the same points the prediction
is queried at); the original meshes them with spacing 2/(G-1) from -1, which stretches both
meshes by G/(G-1); we place the vertices at the coordinates that were queried.
Marching cubes is scikit-image's; nearest neighbours are scipy's cKDTree.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nepa3d_jax.data.grids import grid_centers, trilinear_sample

# Truth sources of the mesh evaluation (its options and defaults: eval/cpac/cpac_defaults.py).
MESH_GT_SOURCES = ("udf_grid", "pc_xyz")
SUMMARY_KEYS = ("chamfer_l1", "chamfer_l2", "fscore", "precision", "recall")


def resample_grid(udf_grid: np.ndarray, grid_res: int) -> np.ndarray:
    """A cache's native (N, N, N) UDF grid sampled trilinearly (edge-clamped) at the centres
    of a G grid, clipped at 0: the sampler that made the cache's `pt_dist_udf_pool`."""
    src = np.asarray(udf_grid, np.float32)
    if src.ndim != 3 or len(set(src.shape)) != 1:
        raise ValueError(f"udf_grid must be a cube (N, N, N), got shape {src.shape}")
    vals = trilinear_sample(src, grid_centers(grid_res).reshape(-1, 3))
    return np.maximum(vals, 0.0).astype(np.float32).reshape((grid_res,) * 3)


def distance_grid(points: np.ndarray, grid_res: int) -> np.ndarray:
    """Exact UDF of a point set (distance to the nearest point) at the centres of a G grid."""
    from scipy.spatial import cKDTree

    d, _ = cKDTree(np.asarray(points, np.float64)).query(grid_centers(grid_res).reshape(-1, 3))
    return d.astype(np.float32).reshape((grid_res,) * 3)


def marching_cubes(values_GGG: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3) float32 in world coordinates, faces (F, 3) int64) of the `level` set.

    Raises ValueError when the level set is empty (the grid never crosses `level`)."""
    from skimage import measure

    vol = np.asarray(values_GGG, np.float32)
    if vol.ndim != 3 or len(set(vol.shape)) != 1:
        raise ValueError(f"UDF grid must be a cube (G, G, G), got shape {vol.shape}")
    g = vol.shape[0]
    if not (float(vol.min()) < level < float(vol.max())):
        raise ValueError(f"level {level} is outside the grid's range "
                         f"[{float(vol.min()):.4g}, {float(vol.max()):.4g}]: no surface")
    step = 2.0 / g
    verts, faces, _, _ = measure.marching_cubes(vol, level=float(level),
                                                spacing=(step, step, step))
    verts = verts + np.float32(-1.0 + 0.5 * step)
    return verts.astype(np.float32), faces.astype(np.int64)


def sample_surface(verts: np.ndarray, faces: np.ndarray, n: int, seed: int) -> np.ndarray:
    """`n` points uniform over the mesh area (trimesh), reproducible from `seed`."""
    import trimesh

    mesh = trimesh.Trimesh(vertices=verts, faces=faces, process=False)
    pts, _ = trimesh.sample.sample_surface(mesh, int(n), seed=int(seed))
    return np.asarray(pts, np.float32)


def point_metrics(p: np.ndarray, q: np.ndarray, tau: float) -> dict[str, float]:
    """Chamfer-L1 / L2 (both directions summed), precision, recall and F-score at `tau`."""
    from scipy.spatial import cKDTree

    d_pq, _ = cKDTree(q).query(p)
    d_qp, _ = cKDTree(p).query(q)
    precision, recall = float(np.mean(d_pq < tau)), float(np.mean(d_qp < tau))
    f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {"chamfer_l1": float(d_pq.mean() + d_qp.mean()),
            "chamfer_l2": float(np.mean(d_pq ** 2) + np.mean(d_qp ** 2)),
            "precision": precision, "recall": recall, "fscore": float(f)}


def mesh_metrics(pred_GGG: np.ndarray, gt_GGG: np.ndarray, *, level: float, num_samples: int,
                 fscore_tau: float, seed: int = 0) -> tuple[dict[str, Any], tuple | None]:
    """(metrics, (pred mesh, gt mesh)) of one shape; metrics `{"ok": False, "error": ...}`
    (and no meshes) when either grid has no surface at `level`."""
    try:
        pred = marching_cubes(pred_GGG, level)
        gt = marching_cubes(gt_GGG, level)
    except ValueError as err:
        return {"ok": False, "error": str(err)}, None
    p = sample_surface(*pred, num_samples, seed)
    q = sample_surface(*gt, num_samples, seed + 1)
    return {"ok": True, **point_metrics(p, q, float(fscore_tau))}, (pred, gt)


def summarize(per_shape: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean / std / count of each metric over the shapes that meshed (None when none did)."""
    out: dict[str, Any] = {}
    for key in SUMMARY_KEYS:
        vals = np.array([r[key] for r in per_shape if r.get("ok")], np.float64)
        out[f"{key}_mean"] = float(vals.mean()) if vals.size else None
        out[f"{key}_std"] = float(vals.std()) if vals.size else None
        out[f"{key}_n"] = int(vals.size)
    return out
