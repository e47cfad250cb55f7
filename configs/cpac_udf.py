"""CPAC-UDF: how well a checkpoint's hidden states predict unsigned distances (seed plan section 8).

Command (the seed protocol: 1024 context points, 1024 queries, 800 eval shapes):
  python -m nepa3d_jax.main --config configs/cpac_udf.py \
      --config.ckpt=runs/pretrain_abcd_1024_runA \
      --config.cache_root=data/shapenet_unpaired_cache_v1 \
      --config.out_json=results/cpac_abcd_1024_runA.json
`ckpt` is our run directory or an original `last.pt`. Field names and defaults are the
original's flags (`nepa3d.analysis.completion_cpac_udf`), except `n_context`, `n_query` and
`max_shapes`, set here to the seed protocol (the original's defaults are 256 / 256 / all).

Protocol: per eval shape, context = `n_context` points of the query pool with their
`pointcloud_noray` distances (observed from the point cloud), queries = `n_query` other pool
points; both Morton-sorted. Sampling is seeded per shape from md5(path) + seed, with seed
`eval_seed` for the head-training split and `eval_seed + 999` for the evaluated split (and the
`nn_copy` baseline), so the path strings matter: run from the directory the original ran from
and give `cache_root` the same way. A ridge head (lambda on every diagonal entry, bias column,
float64 normal equations) maps the hidden state `h` at each query token to its UDF distance
(`pt_dist_udf_pool`); it is fitted on `head_train_split` (`train_udf`, contexts from the
`udfgrid` backend: non-transductive) and scored on `split`: MAE, RMSE, IoU@tau (tau 0.03),
the same for queries within `report_near_tau` of the surface, and `nn_copy` (each query copies
its nearest context point's distance) when `baseline="nn_copy"`.

Expect: a JSON with `mae`, `rmse`, `iou@tau`, `near@tau_report`, `baseline`, the settings and
`timing`; the plan's original runs scored mae 0.160-0.204, iou@tau 0.114-0.268 (A best, D worst).
A checkpoint whose positional table is shorter than the CPAC sequence
(1 + 2 * (n_context + n_query) + 1 = 4098 tokens for Q/A checkpoints) stops with an error: set
`max_len` (e.g. 4098) to resize it by linear interpolation, as the original's `--max_len`.
"""

from nepa3d_jax.eval.cpac.cpac_defaults import get_config

__all__ = ["get_config"]
