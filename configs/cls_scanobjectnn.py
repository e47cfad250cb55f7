"""ScanObjectNN classification fine-tune with the seed plan's protocol (section 8).

Command:
  python -m nepa3d_jax.main --config configs/cls_scanobjectnn.py \
      --config.ckpt=runs/pretrain_abcd_1024_runA --config.out_json=results/runA/cls_scanobjectnn.json
  (`ckpt` is our run directory or an original `last.pt`; empty = from scratch, then set
  `scratch.*` and `n_point`.)
PBS (with CPAC and ModelNet40, one job per checkpoint):
  qsub -v CKPT=runs/pretrain_abcd_1024_runA,RUN_TAG=runA launch/eval_bundle.sh
Protocol: `pointcloud_noray`, 1024 FPS points of `pc_xyz` (pre-computed `pc_fps_order`),
distances zeroed and no rays (xyz-only), Morton order, bidirectional attention, `mean_pts`
pooling, z-rotation augmentation, stratified 10% validation split (seed 0), AdamW 1e-4 /
wd 0.05 constant, 100 epochs, global batch 384 (the plan's 96 per process x 4 GPUs), best
validation epoch scored on test with 10 MC resamples. `--config.full_spec_readout=True`
keeps the query pool's distances and the pretrain ray count instead (section 12).
Expect: the first log lines state this protocol; the plan's original runs reached
test_acc 0.22-0.32 (A 0.3157, B 0.2230, C 0.2383, D 0.2260) with their LR-starved
pretraining. The log sits beside `out_json` (`.log`).
"""

from nepa3d_jax.eval.cls.cls_defaults import scanobjectnn as get_config

__all__ = ["get_config"]
