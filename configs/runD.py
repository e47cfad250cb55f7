"""Run D (ray ablation vs A): identical to Run A but no ray tokens.

Command:      python -m nepa3d_jax.main --config configs/runD.py
PBS (2 nodes): qsub -l rt_QF=2 -l walltime=72:00:00 -v CONFIG=configs/runD.py launch/pretrain_multinode.sh
Expect: T = 1 + 2*1024 + 1 = 2050 tokens, about twice Run A's step rate.
The original's LR (1.875e-5 at global batch 128, docs/pbs.md): add
  --config.train.base_lr=3.75e-5 --config.train.lr_ref_batch=256
"""

from nepa3d_jax.train import pretrain_defaults


def get_config():
    c = pretrain_defaults.get_config()  # Run A is the base config plus its workdir and seed
    c.workdir = "runs/pretrain_abcd_1024_runD"
    c.seed = 103
    c.data.n_ray = 0
    c.data.max_len = 2500
    return c
