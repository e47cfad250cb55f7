"""`mesh_eval=1` of the CPAC job: the probe's UDF on a grid, meshed and scored per shape.

For each of the first `mesh_eval_max_shapes` evaluated shapes, the context of the CPAC test
pass is kept and the queries are the G^3 voxel centres (`mesh_grid_res`), fed in chunks of
`mesh_chunk_n_query` (the last chunk padded by repeating its last point) through the same
jitted representation function and ridge head as the point queries. The truth is the cache's
`udf_grid` resampled to G (the original; `mesh_gt="udf_grid"`) or the exact distance to the
cache's `pc_xyz` (`mesh_gt="pc_xyz"`). The geometric baseline `nn_dist` (distance to the
nearest context point, the original's mesh fallback) is meshed and scored beside it.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from nepa3d_jax.eval.cpac import mesh, tokens
from nepa3d_jax.data.records import CheckedRecord
from nepa3d_jax.eval.cpac.shape_sampling import ShapeSample


def validate(c) -> None:
    if not int(c.mesh_eval):
        return
    for name in ("mesh_grid_res", "mesh_chunk_n_query", "mesh_num_samples"):
        if int(c[name]) < (2 if name == "mesh_grid_res" else 1):
            raise ValueError(f"config.{name}={c[name]} is too small")
    if str(c.mesh_gt) not in mesh.MESH_GT_SOURCES:
        raise ValueError(f"config.mesh_gt={c.mesh_gt!r}: choose from "
                         f"{', '.join(mesh.MESH_GT_SOURCES)}")
    if float(c.mesh_mc_level) <= 0 or float(c.mesh_fscore_tau) <= 0:
        raise ValueError("config.mesh_mc_level and config.mesh_fscore_tau must be > 0")


def truth_grid(path: str, grid_res: int, source: str) -> np.ndarray:
    npz = CheckedRecord(path)  # missing keys raise CacheError naming the file and key
    try:
        if source == "udf_grid":
            return mesh.resample_grid(np.asarray(npz["udf_grid"], np.float32), grid_res)
        return mesh.distance_grid(np.asarray(npz["pc_xyz"], np.float32), grid_res)
    finally:
        npz.close()


def predict_grid(sample: ShapeSample, grid_res: int, chunk: int, layout_for: Callable,
                 rep_fn, predict: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """(G, G, G) probe prediction at the voxel centres, context = the sample's."""
    q = mesh.grid_centers(grid_res).reshape(-1, 3)
    chunk = min(int(chunk), q.shape[0])
    n_chunks = -(-q.shape[0] // chunk)
    pad = n_chunks * chunk - q.shape[0]
    q = np.concatenate([q, np.repeat(q[-1:], pad, 0)]).reshape(n_chunks, chunk, 3)
    layout = layout_for(chunk)
    out = []
    for s in range(0, n_chunks, rep_fn.batch_size):
        qs = q[s:s + rep_fn.batch_size]
        b = qs.shape[0]
        feat = tokens.build_features(layout, np.repeat(sample.ctx_xyz[None], b, 0),
                                     np.repeat(sample.ctx_dist[None], b, 0), qs)
        reps = np.asarray(rep_fn(feat, layout.type_id, layout.q_pos))[:b]
        out.append(predict(reps.reshape(-1, reps.shape[-1])))
    vals = np.concatenate(out)[:grid_res ** 3]
    return np.maximum(vals, 0.0).astype(np.float32).reshape((grid_res,) * 3)


def nn_dist_grid(sample: ShapeSample, grid_res: int) -> np.ndarray:
    return mesh.distance_grid(sample.ctx_xyz, grid_res)


def run(c, samples: list[ShapeSample], layout_for: Callable, rep_fn,
        predict: Callable[[np.ndarray], np.ndarray] | None,
        names: tuple[str, ...] = ("probe", "nn_dist"), grids_out: list | None = None,
        n_grids: int = 0) -> dict[str, Any]:
    """The `mesh_eval` block: settings, summary per predictor (probe and nn_dist), per shape.

    The first `n_grids` shapes' grids are appended to `grids_out` (for pictures)."""
    g, level = int(c.mesh_grid_res), float(c.mesh_mc_level)
    kw = dict(level=level, num_samples=int(c.mesh_num_samples),
              fscore_tau=float(c.mesh_fscore_tau))
    save_dir = str(c.mesh_save_dir or "")
    if save_dir:
        os.makedirs(save_dir, exist_ok=True)
    per_shape: dict[str, list[dict[str, Any]]] = {"probe": [], "nn_dist": []}
    for i, s in enumerate(samples):
        gt = truth_grid(s.path, g, str(c.mesh_gt))
        grids = {"nn_dist": nn_dist_grid(s, g)} if "nn_dist" in names else {}
        if rep_fn is not None and predict is not None and "probe" in names:
            grids["probe"] = predict_grid(s, g, int(c.mesh_chunk_n_query),
                                          layout_for, rep_fn, predict)
        if grids_out is not None and i < n_grids:
            grids_out.append({"name": os.path.splitext(os.path.basename(s.path))[0],
                              "gt": gt, "grids": dict(grids)})
        for name, grid in grids.items():
            m, meshes = mesh.mesh_metrics(grid, gt, seed=i, **kw)
            per_shape[name].append({"path": s.path, **m})
            if save_dir and meshes is not None:
                _save(save_dir, s.path, name, meshes)
    out = {"enabled": True, "grid_res": g, "chunk_n_query": int(c.mesh_chunk_n_query),
           "mc_level": level, "num_samples": kw["num_samples"], "fscore_tau": kw["fscore_tau"],
           "gt_source": str(c.mesh_gt), "n_eval_shapes": len(samples),
           "chamfer": "sum of both directions' mean nearest distance (L1) / squared (L2)"}
    for name, rows in per_shape.items():
        if not rows:
            continue
        out[name] = {"summary": mesh.summarize(rows),
                     "fail_count": sum(1 for r in rows if not r["ok"])}
        if int(c.mesh_store_per_shape):
            out[name]["per_shape"] = rows
    return out


def _save(folder: str, path: str, name: str, meshes) -> None:
    import trimesh

    sid = os.path.splitext(os.path.basename(path))[0]
    for tag, (v, f) in zip((name, "gt"), meshes):
        trimesh.Trimesh(vertices=v, faces=f, process=False).export(
            os.path.join(folder, f"{tag}_{sid}.ply"))
