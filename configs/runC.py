"""Run C (order ablation vs A): identical to Run A but Morton point order.

Command:      python -m nepa3d_jax.main --config configs/runC.py
PBS (2 nodes): qsub -l rt_QF=2 -l walltime=72:00:00 -v CONFIG=configs/runC.py launch/pretrain_multinode.sh
Expect: same shapes and throughput as Run A (T = 4098).
The original's LR (1.875e-5 at global batch 128, docs/pbs.md): add
  --config.train.base_lr=3.75e-5 --config.train.lr_ref_batch=256
"""

from nepa3d_jax.train import pretrain_defaults


def get_config():
    c = pretrain_defaults.get_config()  # Run A is the base config plus its workdir and seed
    c.workdir = "runs/pretrain_abcd_1024_runC"
    c.seed = 102
    c.data.point_order_mode = "morton"
    return c
