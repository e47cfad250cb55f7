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

from nepa3d_jax.eval.cls.cls_defaults import modelnet40 as get_config

__all__ = ["get_config"]
