"""`python -m nepa3d_jax.study --preset tiny`: the whole study on the tiny corpus (2 pretraining
seeds, probes and CPAC against each run's own random init), through the real command."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nepa3d_jax.study import presets, recipes, report


def study_env() -> dict[str, str]:
    """The command's environment: one CPU device, as a user runs it (not conftest's 8 fake
    ones: sharded pretraining is tested elsewhere, and compiling every program for 8 devices
    cost ~20 s here), and XLA's CPU backend at optimisation level 0, which compiles the ~15
    programs in a third less time; the tiny model's run time is milliseconds either way, and
    nothing below compares numbers a compiler option could move."""
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split()
             if not f.startswith(("--xla_force_host_platform_device_count",
                                  "--xla_backend_optimization_level"))]
    env["XLA_FLAGS"] = " ".join(flags + ["--xla_backend_optimization_level=0"])
    return env


def test_tiny_study_end_to_end(tmp_path):
    out, corpus = tmp_path / "out", tmp_path / "corpus"
    proc = subprocess.run(
        [sys.executable, "-m", "nepa3d_jax.study", "--preset", "tiny", "--out", str(out),
         "--corpus", str(corpus)], capture_output=True, text=True, timeout=900,
        env=study_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("pretrain value: recipe=original probe5_delta=")
    for key in ("knn_delta=", "cpac_delta=", "nn_copy="):
        assert key in last
    study = json.loads((out / "study.json").read_text())
    block = study["summary"]["original"]
    assert block["seeds"] == [0, 1]
    pair = block["probe"]["K2"]["logreg"]
    arms = json.loads((out / "arms.json").read_text())
    pre = [a["probe"]["summary"]["pretrained"]["K2"]["logreg"] * 100 for a in arms]
    rnd = [a["probe"]["summary"]["random_init"]["K2"]["logreg"] * 100 for a in arms]
    # the reported delta is the mean of the per-seed paired differences
    assert pair["delta"]["mean"] == pytest.approx(np.mean(np.subtract(pre, rnd)))
    assert pair["delta"]["ci_low"] <= pair["delta"]["mean"] <= pair["delta"]["ci_high"]
    for a in arms:
        for arm in ("pretrained", "random_init"):
            assert 0.0 <= a["probe"]["summary"][arm]["K1"]["logreg"] <= 1.0
        assert a["cpac"]["summary"]["nn_copy"]["mae"]["mean"] > 0
    cpac = block["cpac_mae"]
    assert cpac["delta"]["mean"] == pytest.approx(
        cpac["pretrained"]["mean"] - cpac["random_init"]["mean"])
    for name in ("study.md", "probe_vs_k.png", "cpac_mae.png", "loss_curves.png",
                 "cpac_sheet_original.png"):
        assert (out / name).stat().st_size > 0, name
    md = (out / "study.md").read_text()
    assert "| `original` | 2 |" in md and "Hand-crafted baseline (no learning): K1 " in md
    for k in ("K1", "K2"):
        assert 0.0 <= study["handcrafted_baseline"][k] <= 100.0
    # Each arm folder is one `compare` reads (the study compares its recipes through it): the
    # seeds group into one row (seed 0 checked every cache, seed 1 headers only).
    from nepa3d_jax.study.__main__ import compare_recipes

    table = compare_recipes(arms, str(out))
    row = [line for line in table.splitlines() if line.startswith("| original")]
    assert len(row) == 1 and row[0].startswith("| original (2 seeds) |")
    assert "| CPAC MAE |" in table.splitlines()[0] and (out / "compare.png").is_file()
    assert "original (2 seeds): random-init CPAC MAE" in table


def test_bad_arguments_are_one_line_errors(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "nepa3d_jax.study", "--preset", "tiny",
                           "--recipes", "nope", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "unknown recipe 'nope'" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "nepa3d_jax.study", "--preset", "huge"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "huge" in proc.stderr


def test_every_recipe_names_real_fields():
    from nepa3d_jax import jobs
    from nepa3d_jax.study import arms
    for name, recipe in recipes.RECIPES.items():
        for stage, job in (("pretrain", "pretrain"), ("probe", "probe"), ("cpac", "cpac_udf"),
                           ("finetune", "finetune_cls")):
            c = jobs.default_config(job)
            for dotted, value in recipe.get(stage, {}).items():
                arms.set_field(c, dotted, value, name)
    stages = (("pretrain", "pretrain"), ("probe", "probe"), ("cpac", "cpac_udf"),
              ("finetune", "finetune_cls"))
    for name, preset in presets.PRESETS.items():
        for name_r in preset["recipes"]:
            recipes.get(name_r)
        for stage, job in stages:  # every preset field is a real field of its job's config
            c = jobs.default_config(job)
            for dotted, value in preset.get(stage, {}).items():
                if dotted != "shots":
                    arms.set_field(c, dotted, value, f"preset {name} {stage}")
        n = preset["pretrain"]["data.n_point"] + preset["pretrain"]["data.n_ray"]
        assert preset["cpac"]["n_context"] + preset["cpac"]["n_query"] == n, name


def test_value_line_format():
    summary = {"r": {"probe": {f"K{k}": {m: {"delta": {"mean": 1.5 * k, "ci_low": 0.5,
                                                        "ci_high": 2.5 * k}}
                                          for m in ("logreg", "knn1")} for k in (1, 5, 10)},
                     "cpac_mae": {"delta": {"mean": -0.01, "ci_low": -0.02, "ci_high": -0.001}},
                     "nn_copy_mae": {"mean": 0.08}}}
    line = report.value_line(summary, "r")
    assert line == ("pretrain value: recipe=r probe5_delta=+7.5 [+0.5, +12.5] "
                    "probe10_delta=+15.0 [+0.5, +25.0] knn_delta=+15.0 [+0.5, +25.0] "
                    "cpac_delta=-0.0100 [-0.0200, -0.0010] nn_copy=0.0800")


def test_a_stage_is_reused_only_for_the_same_config(tmp_path, monkeypatch):
    import ml_collections

    from nepa3d_jax import jobs
    from nepa3d_jax.study import arms

    calls = []

    def fake_run(config):
        calls.append(config.to_dict())
        out = {"value": len(calls)}
        (tmp_path / "r.json").write_text(json.dumps(out))
        return out

    monkeypatch.setattr(jobs, "run", fake_run)
    out_json = str(tmp_path / "r.json")
    c = ml_collections.ConfigDict(dict(job="probe", shots="1,5"))
    assert arms._stage(c, out_json, lambda _: None) == {"value": 1}
    assert arms._stage(c, out_json, lambda _: None) == {"value": 1}   # reused
    c.shots = "1,5,10"
    assert arms._stage(c, out_json, lambda _: None) == {"value": 2}   # config changed: rerun
    assert len(calls) == 2


def test_preset_finetune_stages_pass_the_jobs_start_up_checks(tmp_path):
    """A preset's fine-tune fields (the readout fixes of `full`) are valid values, not only
    real names: the config the study would run passes `finetune_cls`'s own checks."""
    from nepa3d_jax import jobs
    from nepa3d_jax.study import arms
    from nepa3d_jax.study.corpus import Corpus

    corpus = Corpus(*(str(tmp_path),) * 8, classes=("a", "b"))
    checked = 0
    for name, preset in presets.PRESETS.items():
        if not preset.get("finetune"):
            continue
        for recipe in preset["recipes"]:
            c = arms.finetune_config(preset, recipe, corpus, str(tmp_path), 5,
                                     str(tmp_path / "f.json"))
            jobs.check(c)
            checked += 1
    assert checked >= 4  # `full`: every recipe
    full = presets.get("full")["finetune"]
    assert (full["head_norm"], full["lr_schedule"], full["cls_pooling"]) == (1, "cosine",
                                                                              "mean_max")
    bad = presets.get("full")
    bad["finetune"]["lr_warmup_epochs"] = bad["finetune"]["epochs"]
    with pytest.raises(ValueError, match="config.lr_warmup_epochs="):
        jobs.check(arms.finetune_config(bad, "original", corpus, str(tmp_path), 5,
                                        str(tmp_path / "f.json")))


def test_every_recipe_gives_a_valid_pretraining_config(tmp_path):
    """Each recipe (the A/B/C/D variants of the recommended one included) passes the
    pretraining job's start-up validation at the `small` preset's sizes."""
    from nepa3d_jax.config import validate
    from nepa3d_jax.study import arms
    from nepa3d_jax.study.corpus import Corpus

    corpus = Corpus(*(str(tmp_path),) * 8, classes=("a", "b"))
    preset = presets.get("small")
    for name in recipes.RECIPES:
        validate(arms.pretrain_config(preset, name, 0, corpus, str(tmp_path / name)))


def test_every_abcd_run_holds_the_positional_rows_cpac_reads(tmp_path):
    """CPAC scores every recipe with the same context + query sizes; Runs B and D (no rays)
    pretrain shorter sequences, so their positional table is sized for CPAC (the users' B/D:
    max_len 2500 over 1,026 / 2,050 tokens); A and C keep their own length (-1)."""
    from nepa3d_jax.config import derive
    from nepa3d_jax.eval.cpac.tokens import sequence_length as cpac_length
    from nepa3d_jax.study import arms
    from nepa3d_jax.study.corpus import Corpus

    corpus = Corpus(*(str(tmp_path),) * 8, classes=("a", "b"))
    for preset_name in ("abcd", "abcd_recommended"):
        preset = presets.get(preset_name)
        cpac = preset["cpac"]
        got = {}
        for name in preset["recipes"]:
            c = arms.pretrain_config(preset, name, 0, corpus, str(tmp_path / name))
            qa, eos = bool(c.data.qa_tokens), bool(c.data.add_eos)
            table = int(derive(c, num_devices=1).max_len)
            assert table >= cpac_length(cpac["n_context"], cpac["n_query"], qa, eos), name
            got[name[-1] if name[-2] == "_" else "A"] = int(c.data.max_len)
        assert got == {"A": -1, "B": 130, "C": -1, "D": 258}, (preset_name, got)


def test_the_recommended_recipe_is_run_by_small_and_configs_recipe(tmp_path):
    """`small` runs the original beside the recommended recipe, the last line speaks for the
    recommended one, and configs/recipe.py carries exactly its pretraining fields."""
    from nepa3d_jax.config import load_config
    from nepa3d_jax.config.validation import get_path
    from nepa3d_jax.study import __main__ as study_main

    assert presets.get("small")["recipes"] == ["original", recipes.RECOMMENDED]
    fields = recipes.pretrain_fields(recipes.RECOMMENDED)
    assert fields["train.lr_schedule"] == "cosine" and fields["data.aug_yaw"] == 1
    config = load_config(str(Path(__file__).parents[1] / "configs" / "recipe.py"))
    assert {k: get_path(config, k) for k in fields} == fields
    base = load_config(str(Path(__file__).parents[1] / "configs" / "base.py"))
    assert all(get_path(base, k) != v for k, v in fields.items())  # every field is a change
    args = study_main._parser().parse_args(["--preset", "small"])
    assert study_main.headline_recipe(args, ["original", recipes.RECOMMENDED]) \
        == recipes.RECOMMENDED
    assert study_main.headline_recipe(args, ["original", "answer"]) == "original"
    args = study_main._parser().parse_args(["--headline", "answer"])
    with pytest.raises(ValueError, match="--headline 'answer' is not among"):
        study_main.headline_recipe(args, ["original"])
