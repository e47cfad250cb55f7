"""The one registry of jobs: what `config.job` may name, what `train.eval_after` may run, and
what every evaluator reports.

`main`, config validation, post-training evaluation, the eval bundle (`eval/bundle.py`), the
headline of `results.json` (`eval/headline.py`) and the table across runs (`eval/compare.py`)
all read `JOBS`, so a new evaluator is one module (with `run(config) -> dict`), its defaults
(`get_config() -> ConfigDict`), one entry here and its tests; see docs/contributing.md.
Entries name modules as strings: nothing heavy (jax, torch) is imported until a job actually
runs, and a job whose module is missing fails alone.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Mapping, Sequence

import ml_collections


@dataclasses.dataclass(frozen=True)
class Metric:
    """A number at the top level of an evaluator's result, and which way is better."""
    key: str
    higher_is_better: bool
    label: str = ""              # column heading; "" = the key

    @property
    def heading(self) -> str:
        return self.label or self.key


@dataclasses.dataclass(frozen=True)
class Output:
    """One result file the eval bundle writes for a job (`results/<run>/<name>.json`)."""
    step: str                    # the bundle's config block and its `run_<step>` switch
    name: str                    # result file stem
    label: str                   # heading in the tables and charts of `compare`
    defaults: str = ""           # "module:function" of this step's defaults; "" = the job's
    metrics: tuple[str, ...] = ()  # keys of the job's metrics `compare` shows; () = all
    optional: bool = False       # skipped (reason logged) when its `cache_root` is absent
    in_bundle: bool = True       # False: a result `compare` reads that the bundle does not run


@dataclasses.dataclass(frozen=True)
class Job:
    """One job: where its runner and defaults live and, for an evaluator, what it reports."""
    name: str
    module: str                  # has `run(config, ...) -> dict`
    defaults: str                # "module:function" returning the job's default ConfigDict
    evaluator: bool = True       # may be named in `train.eval_after`
    takes_source: bool = False   # run(config, config_path=..., overrides=...) (the run record)
    check: str = ""              # "module:function" raising ValueError on a bad config, or ""
    label: str = ""              # how verdicts name it ("CPAC"); "" = the name
    metrics: tuple[Metric, ...] = ()  # its top-level numbers; the first one is headlined
    headline: str = ""           # its block in results.json's `headline` ("" = none)
    # "module:function" (job, result, pretraining steps or None) -> headline block with a
    # "verdict" line, or None;
    # "" = `eval.headline.study_block` (results with `summary` / `significance`)
    headline_hook: str = ""
    # "module:function" (run_dir, result, metric key) -> (test kind, {unit: value}) or None:
    # the paired values `compare` tests rows against each other with; "" = no test
    paired: str = ""
    outputs: tuple[Output, ...] = ()  # what the eval bundle runs and `compare` reads

    @property
    def title(self) -> str:
        return self.label or self.name

    def metrics_of(self, output: Output) -> tuple[Metric, ...]:
        """The metrics shown for one of its outputs."""
        return tuple(m for m in self.metrics if not output.metrics or m.key in output.metrics)


CLS_METRICS = (Metric("test_acc", True), Metric("best_val", True))
CPAC_METRICS = (Metric("mae", False, "MAE"), Metric("rmse", False, "RMSE"),
                Metric("iou@tau", True, "IoU@tau"))
# The probe's headline readout, pretrained arm, at the K the study reports (`eval.probe.run`).
PROBE_METRICS = (Metric("logreg_K5", True, "logreg K=5"),
                 Metric("logreg_K10", True, "logreg K=10"),
                 Metric("knn1_K10", True, "1-NN K=10"))

# Registry order is the order of the eval bundle's steps and of `compare`'s columns.
JOBS: dict[str, Job] = {job.name: job for job in (
    Job("pretrain", "nepa3d_jax.train.loop", "nepa3d_jax.train.pretrain_defaults:get_config",
        evaluator=False, takes_source=True),
    Job("finetune_cls", "nepa3d_jax.eval.cls.study",
        "nepa3d_jax.eval.cls.cls_defaults:scanobjectnn",
        label="classification", metrics=CLS_METRICS, headline="cls_test_acc",
        check="nepa3d_jax.eval.job_checks:finetune_cls",
        paired="nepa3d_jax.eval.compare_stats:cls_paired",
        outputs=(Output("scan", "cls_scanobjectnn", "ScanObjectNN"),
                 Output("modelnet", "cls_modelnet40", "ModelNet40",
                        "nepa3d_jax.eval.cls.cls_defaults:modelnet40", ("test_acc",),
                        optional=True))),
    Job("cpac_udf", "nepa3d_jax.eval.cpac.study", "nepa3d_jax.eval.cpac.cpac_defaults:get_config",
        label="CPAC", metrics=CPAC_METRICS, headline="cpac_mae",
        check="nepa3d_jax.eval.job_checks:cpac_udf",
        paired="nepa3d_jax.eval.compare_stats:cpac_paired",
        outputs=(Output("cpac", "cpac_udf", "CPAC"),)),
    # Frozen-feature probes (the study's readout): its own results, not a bundle step, but a
    # column of `compare` (the study's arms are compared through it).
    Job("probe", "nepa3d_jax.eval.probe.run", "nepa3d_jax.eval.probe.probe_defaults:get_config",
        label="probe", check="nepa3d_jax.eval.probe.run:check_config", metrics=PROBE_METRICS,
        outputs=(Output("probe", "probe", "probe", in_bundle=False),)),
    Job("eval_bundle", "nepa3d_jax.eval.bundle", "nepa3d_jax.eval.bundle_defaults:get_config",
        evaluator=False, check="nepa3d_jax.eval.job_checks:eval_bundle"),
)}


def names(evaluators_only: bool = False) -> tuple[str, ...]:
    return tuple(n for n, j in JOBS.items() if j.evaluator or not evaluators_only)


def get(name: str, field: str = "config.job", evaluators_only: bool = False) -> Job:
    """The job `name`; ValueError naming `field` and the allowed names otherwise."""
    allowed = names(evaluators_only)
    if name not in allowed:
        raise ValueError(f"{field}={name!r}: must be one of {', '.join(allowed)}")
    return JOBS[name]


def outputs(bundle_only: bool = True) -> list[tuple[Job, Output]]:
    """Every bundle output of every registered job, in registry order (the bundle's order);
    `bundle_only=False` adds the results only `compare` reads (the probe's)."""
    return [(job, out) for job in JOBS.values() for out in job.outputs
            if out.in_bundle or not bundle_only]


def resolve(ref: str) -> Any:
    """The object a "module:function" (or "module") reference names, imported now."""
    module, _, attr = ref.partition(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, attr) if attr else loaded


def default_config(name: str) -> ml_collections.ConfigDict:
    """A fresh copy of the job's defaults (what its `configs/<file>.py` starts from)."""
    return resolve(get(name).defaults)()


def output_defaults(job: Job, output: Output) -> ml_collections.ConfigDict:
    """A fresh copy of one bundle output's defaults."""
    return resolve(output.defaults or job.defaults)()


def with_defaults(defaults: ml_collections.ConfigDict,
                  given: Mapping[str, Any] | ml_collections.ConfigDict
                  ) -> ml_collections.ConfigDict:
    """`defaults` with `given`'s fields written over it (nested blocks merged), for configs
    built by hand (tests, the bundle's steps): evaluators read every field as an attribute.
    Fields the defaults lack are added, not refused: checking names is the loader's job."""
    out = ml_collections.ConfigDict(defaults.to_dict())
    items = given.items() if not hasattr(given, "to_dict") else given.to_dict().items()
    for key, value in items:
        if isinstance(value, Mapping) and key in out and hasattr(out[key], "to_dict"):
            out[key] = with_defaults(out[key], value)
        else:
            out[key] = value
    return out


def check(config: ml_collections.ConfigDict) -> None:
    """The job's own start-up checks (ValueError naming the field), without running it; the
    pretrain job's are `nepa3d_jax.config.validate` and `derive`, called by the caller."""
    job = get(str(config.job) if "job" in config else "pretrain")
    if job.check:
        resolve(job.check)(config)


def run(config: ml_collections.ConfigDict, config_path: str | None = None,
        overrides: Sequence[str] = (), field: str = "config.job",
        evaluators_only: bool = False) -> dict[str, Any]:
    """Imports the job's module (RuntimeError naming it when that fails) and runs it."""
    job = get(str(config.job) if "job" in config else "pretrain", field, evaluators_only)
    try:
        module = importlib.import_module(job.module)
    except ImportError as err:
        raise RuntimeError(f"job {job.name!r} is not available: cannot import {job.module} "
                           f"({err})") from err
    if job.takes_source:
        return module.run(config, config_path=config_path, overrides=overrides)
    return module.run(config)
