"""Run B (SOTA-fair XYZ-only): point-cloud mixture, no rays, legacy tokens, Morton order.

Command:      python -m nepa3d_jax.main --config configs/runB.py
PBS (2 nodes): qsub -l rt_QF=2 -l walltime=72:00:00 -v CONFIG=configs/runB.py launch/pretrain_multinode.sh
Expect: T = 1 + 1024 + 1 = 1026 tokens (max_len 2500 leaves the positional table larger).
The original's LR (1.875e-5 at global batch 128, docs/pbs.md): add
  --config.train.base_lr=3.75e-5 --config.train.lr_ref_batch=256
"""

from nepa3d_jax.train import pretrain_defaults


def get_config():
    c = pretrain_defaults.get_config()
    c.workdir = "runs/pretrain_abcd_1024_runB"
    c.seed = 101
    c.data.mix = pretrain_defaults.mix_scan_pointcloud()
    c.data.n_ray = 0
    c.data.qa_tokens = 0
    c.data.max_len = 2500
    c.data.pt_xyz_key = "pc_xyz"
    c.data.ablate_point_dist = 1
    c.data.point_order_mode = "morton"
    return c
