"""ModelNet40 classification fine-tune (the plan's bundle runs it when the cache exists).

Command:
  python -m nepa3d_jax.main --config configs/cls_modelnet40.py \
      --config.ckpt=runs/pretrain_abcd_1024_runA --config.out_json=results/runA/cls_modelnet40.json
PBS: `launch/eval_bundle.sh` (skips this step with a logged reason when the cache is absent).
Protocol: as configs/cls_scanobjectnn.py except the cache, the `modelnet40` augmentation
preset (scale 0.8-1.25, translation 0.1, no rotation) and global batch 512 (the plan's 128
per process x 4 GPUs).
Expect: the first log lines state the protocol; no numbers from the plan (its runs skipped it).
"""

import ml_collections

from configs import cls_scanobjectnn


def get_config() -> ml_collections.ConfigDict:
  c = cls_scanobjectnn.get_config()
  c.cache_root = "data/modelnet40_cache_v2"
  c.out_json = "results/cls_modelnet40.json"
  c.batch = 512
  c.aug_preset = "modelnet40"
  return c
