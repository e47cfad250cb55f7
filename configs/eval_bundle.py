"""Post-pretrain evaluation bundle for one checkpoint (the seed plan's section 8).

Command:
  python -m nepa3d_jax.main --config configs/eval_bundle.py \
      --config.ckpt=runs/pretrain_abcd_1024_runA --config.run_tag=runA
PBS (one GPU node per checkpoint):
  qsub -v "OVERRIDES='ckpt=runs/pretrain_abcd_1024_runA run_tag=runA'" launch/eval_bundle.sh
Runs ScanObjectNN classification (configs/cls_scanobjectnn.py), CPAC-UDF
(configs/cpac_udf.py: 1024 context / 1024 queries, 800 eval shapes, ridge head on
`train_udf`) and ModelNet40 classification (configs/cls_modelnet40.py) only when
`modelnet.cache_root` exists. Sub-settings are overridable as `--config.scan.epochs=50`,
`--config.cpac.max_shapes=200`; `ckpt` is copied into every step.
Expect: results/<run_tag>/{cls_scanobjectnn,cpac_udf,cls_modelnet40}.json, their logs and
bundle.json (status of each step, a skip reason for ModelNet40 when absent). Compare runs:
  python -m nepa3d_jax.eval.compare results/runA results/runB results/runC results/runD
"""

import ml_collections

from configs import cls_modelnet40, cls_scanobjectnn, cpac_udf


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.job = "eval_bundle"
  c.ckpt = ""                  # our run directory or an original last.pt (required)
  c.run_tag = ""               # "" = the run directory's name
  c.results_root = "results"
  c.run_scan = True
  c.run_cpac = True
  c.run_modelnet = True        # still skipped (logged) when modelnet.cache_root is absent
  # Evaluation seeds for every step ("0,1,2"; "" = each step's own `seeds`): CPAC draws,
  # fine-tune seeds (docs/evaluation.md).
  c.seeds = ""
  c.scan = cls_scanobjectnn.get_config()
  c.modelnet = cls_modelnet40.get_config()
  c.cpac = cpac_udf.get_config()
  return c
