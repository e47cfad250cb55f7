"""The job registry: one list that main, config validation and `train.eval_after` all read."""

import dataclasses
import json
import pathlib
import sys
import types

import ml_collections
import pytest

from nepa3d_jax import jobs
from nepa3d_jax.config import ConfigError, load_config, validate
from nepa3d_jax.train import evaluate

DEMO = str(pathlib.Path(__file__).resolve().parents[1] / "configs" / "demo.py")


def test_every_job_has_defaults_and_a_runner():
    for name, job in jobs.JOBS.items():
        config = jobs.default_config(name)
        assert config.job == name
        assert job.module.startswith("nepa3d_jax.") and ":" in job.defaults
    assert {"pretrain", "cpac_udf", "finetune_cls", "eval_bundle"} <= set(jobs.names())
    assert {"cpac_udf", "finetune_cls"} <= set(jobs.names(evaluators_only=True))
    assert not {"pretrain", "eval_bundle"} & set(jobs.names(evaluators_only=True))


def test_validation_reads_the_registry_for_job_and_eval_after():
    config = load_config(DEMO, ["job=cls_probe", "train.eval_after=eval_bundle"])
    with pytest.raises(ConfigError) as info:
        validate(config)
    msg = str(info.value)
    assert f"job='cls_probe': must be one of {', '.join(jobs.names())}" in msg
    assert ("train.eval_after='eval_bundle': must be one of "
            f"{', '.join(jobs.names(evaluators_only=True))}") in msg
    assert "pretrain, finetune_cls, cpac_udf" in msg


def _fake_evaluator(monkeypatch, seen):
    """A registered evaluator living in a real (in-memory) module, as a new one would."""
    module = types.ModuleType("fake_probe")

    def get_config():
        return ml_collections.ConfigDict(dict(job="probe", ckpt="", out_json="", scale=2))

    def run(config):
        seen.append(config.to_dict())
        return {"score": 1.5 * config.scale}

    module.get_config, module.run = get_config, run
    monkeypatch.setitem(sys.modules, "fake_probe", module)
    probe = jobs.Job("probe", "fake_probe", "fake_probe:get_config")
    monkeypatch.setitem(jobs.JOBS, "probe", probe)


def test_a_registered_evaluator_is_valid_everywhere(monkeypatch, tmp_path):
    seen = []
    _fake_evaluator(monkeypatch, seen)
    config = load_config(DEMO, ["train.eval_after=probe"])
    validate(config)  # accepted by validation without touching it
    config.workdir = str(tmp_path)
    config.eval = ml_collections.ConfigDict(dict(probe=dict(scale=3)))
    assert evaluate.run_after_training(config, "probe") == {"score": 4.5}
    assert seen == [dict(job="probe", ckpt=str(tmp_path), out_json=str(tmp_path / "probe.json"),
                         scale=3)]
    from nepa3d_jax import main
    assert main.run_job(ml_collections.ConfigDict(dict(job="probe", scale=1))) == {"score": 1.5}


def test_eval_after_refuses_a_job_that_is_not_an_evaluator(tmp_path):
    config = load_config(DEMO, [f"workdir={tmp_path}"])
    with pytest.raises(ValueError, match="train.eval_after='pretrain': must be one of"):
        evaluate.run_after_training(config, "pretrain")


def test_jobs_are_frozen_records():
    with pytest.raises(dataclasses.FrozenInstanceError):
        jobs.JOBS["pretrain"].module = "x"


def _toy_evaluator(monkeypatch):
    """A new evaluator as a contributor adds it: one module and one registry entry."""
    module = types.ModuleType("fake_toy")

    def get_config():
        return ml_collections.ConfigDict(dict(job="toy", ckpt="", out_json="", seeds="",
                                              cache_root="", scale=2.0))

    def run(config):
        import json
        mean = lambda m: {"mean": m, "ci_low": m - 0.05, "ci_high": m + 0.05}
        result = {"score": 0.9, "seeds": [0, 1],
                  "summary": {"pretrained": {"score": mean(0.9)},
                              "random_init": {"score": mean(0.4)}},
                  "baselines": {"random_init": {"score": 0.4}},
                  "significance": {"pretrained_vs_random_init": {"p": 0.004}}}
        if config.out_json:
            with open(config.out_json, "w") as f:
                json.dump(result, f)
        return result

    module.get_config, module.run = get_config, run
    monkeypatch.setitem(sys.modules, "fake_toy", module)
    toy = jobs.Job("toy", "fake_toy", "fake_toy:get_config", label="Toy",
                   metrics=(jobs.Metric("score", True),), headline="toy_score",
                   outputs=(jobs.Output("toy", "toy_probe", "Toy probe"),))
    monkeypatch.setitem(jobs.JOBS, "toy", toy)
    return toy


def test_a_registered_evaluator_appears_in_bundle_compare_and_headline(monkeypatch, tmp_path):
    from nepa3d_jax.eval import bundle, compare, headline

    _toy_evaluator(monkeypatch)
    ckpt = tmp_path / "runs" / "r"
    ckpt.mkdir(parents=True)
    config = jobs.default_config("eval_bundle")  # the toy's block and switch are in it
    assert config.run_toy is True and config.toy.scale == 2.0
    config.update(dict(ckpt=str(ckpt), results_root=str(tmp_path / "results"),
                       run_scan=False, run_modelnet=False, run_cpac=False))
    summary = bundle.run(config)
    step = summary["steps"]["toy"]
    assert step["status"] == "ok" and step["summary"] == {"score": 0.9, "random_init_score": 0.4}
    assert step["verdict"] == ("Toy score: pretrained 0.9000 vs random-init 0.4000: "
                               "significantly better than random-init (p=0.0040)")
    assert list(summary["steps"]) == ["scan", "modelnet", "cpac", "toy"]  # registry order

    table = compare.compare([str(tmp_path / "results" / "r")], out=str(tmp_path / "cmp"))
    assert table.splitlines()[0].endswith("| Toy probe score |")
    assert table.splitlines()[2].endswith("| 0.9000 [0.8500, 0.9500] |")
    assert "- r: random-init Toy probe score 0.4000 [0.3500, 0.4500]" in table

    evals = {"toy": json.loads((tmp_path / "results" / "r" / "toy_probe.json").read_text())}
    h = headline.headline(evals)
    assert h["toy_score"]["random_init"]["mean"] == 0.4 and h["verdict"] == [step["verdict"]]


def test_the_probe_is_a_compare_column_but_not_a_bundle_step():
    from nepa3d_jax.eval import compare

    assert "probe" not in [out.name for _, out in jobs.outputs()]
    assert ("probe", "probe") in [(job.name, out.name)
                                  for job, out in jobs.outputs(bundle_only=False)]
    assert "probe" not in jobs.default_config("eval_bundle")
    headers = [c.header for c in compare.columns()]
    assert headers[-3:] == ["probe logreg K=5", "probe logreg K=10", "probe 1-NN K=10"]
