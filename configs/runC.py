"""Run C (order ablation vs A): identical to Run A but Morton point order.

Command:      python -m nepa3d_jax.main --config configs/runC.py
PBS (2 nodes): qsub -l rt_QF=2 -l walltime=72:00:00 -v CONFIG=configs/runC.py launch/pretrain_multinode.sh
Expect: same shapes and throughput as Run A (T = 4098).
"""

from configs import runA


def get_config():
  c = runA.get_config()
  c.workdir = "runs/pretrain_abcd_1024_runC"
  c.seed = 102
  c.data.point_order_mode = "morton"
  return c
