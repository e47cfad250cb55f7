"""Defaults of the `eval_bundle` job: one block per step, each the defaults of its evaluator.

`configs/eval_bundle.py` re-exports them (its docstring gives the command and the outputs).
"""

import ml_collections

from nepa3d_jax.eval.cls import defaults as cls_defaults
from nepa3d_jax.eval.cpac import defaults as cpac_defaults


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.job = "eval_bundle"
  c.ckpt = ""                  # our run directory or an original last.pt (required)
  c.run_tag = ""               # "" = the run directory's name
  c.results_root = "results"
  c.run_scan = True
  c.run_cpac = True
  c.run_modelnet = True        # still skipped (logged) when modelnet.cache_root is absent
  # Evaluation seeds for every step ("0,1,2"; "" = each step's own `seeds`): CPAC draws,
  # fine-tune seeds (docs/evaluation.md).
  c.seeds = ""
  c.scan = cls_defaults.scanobjectnn()
  c.modelnet = cls_defaults.modelnet40()
  c.cpac = cpac_defaults.get_config()
  return c
