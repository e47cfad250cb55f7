"""Run D (ray ablation vs A): identical to Run A but no ray tokens.

Command:      python -m nepa3d_jax.main --config configs/runD.py
PBS (2 nodes): qsub -l rt_QF=2 -l walltime=72:00:00 -v CONFIG=configs/runD.py launch/pretrain_multinode.sh
Expect: T = 1 + 2*1024 + 1 = 2050 tokens, about twice Run A's step rate.
"""

from configs import runA


def get_config():
  c = runA.get_config()
  c.workdir = "runs/pretrain_abcd_1024_runD"
  c.seed = 103
  c.data.n_ray = 0
  c.data.max_len = 2500
  return c
