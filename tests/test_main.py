"""The entry point: dispatch on config.job, lazy job imports, clean errors and exit codes."""

import dataclasses
import pathlib
import subprocess
import sys

import ml_collections
import pytest

from nepa3d_jax import jobs, main

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_config_source_reads_path_and_overrides():
    argv = ["--config", "configs/runA.py", "--config.train.epochs=5", "--config.data.n_ray=0"]
    assert main._config_source(argv) == ("configs/runA.py", ["train.epochs=5", "data.n_ray=0"])
    assert main._config_source(["--config=configs/runB.py"]) == ("configs/runB.py", [])
    assert main._config_source([]) == (None, [])


def test_unknown_job_names_the_choices():
    with pytest.raises(ValueError, match="config.job='train'.*pretrain, cpac_udf"):
        main.run_job(ml_collections.ConfigDict(dict(job="train")))


def test_missing_job_module_fails_only_that_job(monkeypatch):
    broken = dataclasses.replace(jobs.JOBS["cpac_udf"], module="nepa3d_jax.eval.no_such_module")
    monkeypatch.setitem(jobs.JOBS, "cpac_udf", broken)
    with pytest.raises(RuntimeError, match="job 'cpac_udf' is not available.*no_such_module"):
        main.run_job(ml_collections.ConfigDict(dict(job="cpac_udf")))


def test_dispatch_passes_config_source_to_pretrain(monkeypatch):
    seen = {}

    class FakeLoop:
        @staticmethod
        def run(config, config_path=None, overrides=()):
            seen.update(job=config.job, path=config_path, overrides=list(overrides))
            return {"step": 1}

    monkeypatch.setattr(jobs.importlib, "import_module", lambda name: FakeLoop)
    out = main.run_job(ml_collections.ConfigDict(dict(job="pretrain")), "configs/runA.py", ["a=1"])
    assert out == {"step": 1}
    assert seen == {"job": "pretrain", "path": "configs/runA.py", "overrides": ["a=1"]}


def test_command_line_config_error_exits_2_naming_fields():
    proc = subprocess.run(
        [sys.executable, "-m", "nepa3d_jax.main", "--config", "configs/runA.py",
         "--config.data.max_len=100"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "data.max_len=100" in proc.stderr and "4098" in proc.stderr
    assert "Traceback" not in proc.stderr
