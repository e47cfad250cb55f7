"""Post-pretrain evaluation bundle for one checkpoint (the seed plan's section 8).

Command:
  python -m nepa3d_jax.main --config configs/eval_bundle.py \
      --config.ckpt=runs/pretrain_abcd_1024_runA --config.run_tag=runA
PBS (one GPU node per checkpoint):
  qsub -v "OVERRIDES='ckpt=runs/pretrain_abcd_1024_runA run_tag=runA'" launch/eval_bundle.sh
Runs, in this order (the job registry's, nepa3d_jax/jobs.py), ScanObjectNN classification
(configs/cls_scanobjectnn.py), ModelNet40 classification (configs/cls_modelnet40.py) only
when `modelnet.cache_root` exists, and CPAC-UDF (configs/cpac_udf.py: 1024 context / 1024
queries, 800 eval shapes, ridge head on `train_udf`). Sub-settings are overridable as `--config.scan.epochs=50`,
`--config.cpac.max_shapes=200`; `ckpt` is copied into every step.
Expect: results/<run_tag>/{cls_scanobjectnn,cpac_udf,cls_modelnet40}.json, their logs and
bundle.json (status, summary and verdict of each step, a skip reason for ModelNet40 when
absent). Compare runs:
  python -m nepa3d_jax.eval.compare results/runA results/runB results/runC results/runD
"""

from nepa3d_jax.eval.bundle_defaults import get_config

__all__ = ["get_config"]
