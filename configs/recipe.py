"""Run A (base.py's 1024-point setting, seed 100) with the recommended recipe.

docs/evaluation.md "The recommended recipe" has its measured table.

Command:       python -m nepa3d_jax.main --config configs/recipe.py
PBS (2 nodes): qsub -l rt_QF=2 -l walltime=72:00:00 -v CONFIG=configs/recipe.py launch/pretrain_multinode.sh

The fields are the study's `RECOMMENDED` recipe (`nepa3d_jax/study/recipes.py` owns them): a
final LayerNorm, a small type-embedding init, the standardised content target, regression of
the next answer's raw slots, a warmup + cosine LR and a random scale / shift / yaw per sample.
What to expect: at study scale (`python -m nepa3d_jax.study --preset small`) it beats its own
random init on frozen probes (K = 5: +8.2 [+3.1, +13.2] points) and CPAC mae (-0.0153 [-0.0194,
-0.0113]); the original recipe does not. At Run-A scale it is untested.
"""

import ml_collections

from nepa3d_jax.study import recipes
from nepa3d_jax.train import pretrain_defaults


def get_config() -> ml_collections.ConfigDict:
    c = pretrain_defaults.get_config()
    c.workdir = "runs/pretrain_abcd_1024_runA_recipe"
    c.seed = 100
    for dotted, value in recipes.pretrain_fields(recipes.RECOMMENDED).items():
        section, field = dotted.split(".")
        c[section][field] = value
    return c
