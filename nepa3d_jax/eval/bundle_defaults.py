"""Defaults of the `eval_bundle` job: one block per registered evaluator output
(`nepa3d_jax.jobs`), each the defaults of its evaluator, and its `run_<step>` switch.

`configs/eval_bundle.py` re-exports them (its docstring gives the command and the outputs).
"""

import ml_collections

from nepa3d_jax import jobs


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.job = "eval_bundle"
    c.ckpt = ""                  # our run directory or an original last.pt (required)
    c.run_tag = ""               # "" = the run directory's name
    c.results_root = "results"
    # Evaluation seeds for every step ("0,1,2"; "" = each step's own `seeds`): CPAC draws,
    # fine-tune seeds (docs/evaluation.md).
    c.seeds = ""
    # run_scan, run_modelnet, run_cpac: True (an optional step such as modelnet is still
    # skipped, logged, when its cache_root is absent); scan, modelnet, cpac: their defaults.
    for job, output in jobs.outputs():
        c[f"run_{output.step}"] = True
        c[output.step] = jobs.output_defaults(job, output)
    return c
