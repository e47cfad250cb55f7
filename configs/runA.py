"""Run A (main / CoT full): mesh + UDF + ScanObjectNN mixture, rays on, Q/A tokens, FPS order.

Command:      python -m nepa3d_jax.main --config configs/runA.py
PBS (2 nodes): qsub -l rt_QF=2 -l walltime=72:00:00 -v CONFIG=configs/runA.py launch/pretrain_multinode.sh
Expect: T = 1 + 2*1024 + 2*1024 + 1 = 4098 tokens, global batch 16 x devices, lr 3e-4 at 8 GPUs.
The original's LR (1.875e-5 at global batch 128, docs/pbs.md): add
  --config.train.base_lr=3.75e-5 --config.train.lr_ref_batch=256
"""

from nepa3d_jax.train import pretrain_defaults


def get_config():
    c = pretrain_defaults.get_config()
    c.workdir = "runs/pretrain_abcd_1024_runA"
    c.seed = 100
    return c
