"""What `nepa3d-config --config F` checks for the evaluation jobs: each job's own start-up
checks (the functions the job calls before reading data), nothing run, nothing compiled.

Each function raises ValueError naming the field; `jobs.JOBS` names them (`Job.check`).
"""

from __future__ import annotations

import copy
import os

import ml_collections


def cpac_udf(config: ml_collections.ConfigDict) -> None:
    from nepa3d_jax.eval.cpac import udf

    udf.validate(config)


def finetune_cls(config: ml_collections.ConfigDict) -> None:
    from nepa3d_jax.eval.cls import setup

    setup.check_fields(config)


def eval_bundle(config: ml_collections.ConfigDict) -> None:
    """The bundle's own checks, then each step it would run with the bundle's `ckpt` (a step
    the bundle skips, ModelNet40 without its cache, is not checked)."""
    from nepa3d_jax import jobs

    if not config.ckpt:
        raise ValueError("config.ckpt is empty: name the run directory or .pt to evaluate")
    if not os.path.exists(config.ckpt):
        raise ValueError(f"config.ckpt={config.ckpt} does not exist")
    for job, output in jobs.outputs():  # the registered evaluators' bundle steps
        name = output.step
        sub = copy.deepcopy(config[name])
        sub.ckpt = config.ckpt
        if not config[f"run_{name}"] or (output.optional and
                                          not os.path.isdir(str(sub.cache_root))):
            continue
        try:
            jobs.check(sub if "job" in sub else jobs.with_defaults(sub, {"job": job.name}))
        except ValueError as err:
            raise ValueError(str(err).replace("config.", f"config.{name}.")) from None
