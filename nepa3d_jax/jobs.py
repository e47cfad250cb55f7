"""The one registry of jobs: what `config.job` may name and what `train.eval_after` may run.

`main`, config validation and post-training evaluation all read `JOBS`, so a new evaluator is
one module (with `run(config) -> dict` and `get_config() -> ConfigDict`), one entry here and
its tests; see docs/contributing.md. Entries name modules as strings: nothing heavy (jax,
torch) is imported until a job actually runs, and a job whose module is missing fails alone.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Sequence

import ml_collections


@dataclasses.dataclass(frozen=True)
class Job:
    """One job: where its runner and its default config live."""
    name: str
    module: str                  # has `run(config, ...) -> dict`
    defaults: str                # "module:function" returning the job's default ConfigDict
    evaluator: bool = True       # may be named in `train.eval_after`
    takes_source: bool = False   # run(config, config_path=..., overrides=...) (the run record)


JOBS: dict[str, Job] = {job.name: job for job in (
    Job("pretrain", "nepa3d_jax.train.loop", "nepa3d_jax.train.defaults:get_config",
        evaluator=False, takes_source=True),
    Job("cpac_udf", "nepa3d_jax.eval.cpac.udf", "nepa3d_jax.eval.cpac.defaults:get_config"),
    Job("finetune_cls", "nepa3d_jax.eval.cls.finetune",
        "nepa3d_jax.eval.cls.defaults:scanobjectnn"),
    Job("probe", "nepa3d_jax.eval.probe.run", "nepa3d_jax.eval.probe.defaults:get_config"),
    Job("eval_bundle", "nepa3d_jax.eval.bundle", "nepa3d_jax.eval.bundle_defaults:get_config",
        evaluator=False),
)}


def names(evaluators_only: bool = False) -> tuple[str, ...]:
    return tuple(n for n, j in JOBS.items() if j.evaluator or not evaluators_only)


def get(name: str, field: str = "config.job", evaluators_only: bool = False) -> Job:
    """The job `name`; ValueError naming `field` and the allowed names otherwise."""
    allowed = names(evaluators_only)
    if name not in allowed:
        raise ValueError(f"{field}={name!r}: must be one of {', '.join(allowed)}")
    return JOBS[name]


def _resolve(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, attr) if attr else loaded


def default_config(name: str) -> ml_collections.ConfigDict:
    """A fresh copy of the job's defaults (what its `configs/<file>.py` starts from)."""
    return _resolve(get(name).defaults)()


def run(config: ml_collections.ConfigDict, config_path: str | None = None,
                overrides: Sequence[str] = (), field: str = "config.job",
                evaluators_only: bool = False) -> dict[str, Any]:
    """Imports the job's module (RuntimeError naming it when that fails) and runs it."""
    job = get(str(config.get("job", "pretrain")), field, evaluators_only)
    try:
        module = importlib.import_module(job.module)
    except ImportError as err:
        raise RuntimeError(f"job {job.name!r} is not available: cannot import {job.module} "
                                              f"({err})") from err
    if job.takes_source:
        return module.run(config, config_path=config_path, overrides=overrides)
    return module.run(config)
