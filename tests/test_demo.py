"""configs/demo.py: the demo config is a valid, small Run-A style pretraining + CPAC job."""

import pathlib

from nepa3d_jax.config import derive, guard_warnings, load_config, validate

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_demo_config_is_valid_and_small():
    config = load_config(str(REPO / "configs" / "demo.py"))
    validate(config)
    derived = derive(config, num_devices=1)
    assert config.job == "pretrain" and config.workdir == "runs/demo"
    assert derived.seq_len == derived.max_len == 1 + 2 * 64 + 2 * 64 + 1
    assert derived.total_steps == 300 and derived.global_batch == 8 and derived.lr == 1e-3
    backends = sorted(c.backend for c in config.data.mix.values())
    assert backends == ["mesh", "pointcloud_noray", "udfgrid"]  # the Run-A style mixture
    assert config.data.synthetic.out_dir == "data/demo"
    assert config.train.eval_after == "cpac_udf" and "cpac_udf" in config.eval
    assert guard_warnings(config, derived) == []


def test_make_demo_runs_the_demo_config():
    makefile = (REPO / "Makefile").read_text()
    assert "-m nepa3d_jax.main --config configs/demo.py" in makefile


def test_demo_runs_end_to_end_in_a_fresh_folder(tmp_path):
    """What `make demo` does, from an empty folder (shortened to 30 steps): the synthetic
    corpus is built, the model pretrains, CPAC-UDF runs and results.json holds finite numbers;
    a second call finds the run finished and only re-evaluates."""
    import json
    import math
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "nepa3d_jax.main", f"--config={REPO / 'configs' / 'demo.py'}",
           "--config.train.num_steps=30", "--config.train.checkpoint_every_steps=30",
           "--config.eval.cpac_udf.render_shapes=1", "--config.eval.cpac_udf.mesh_grid_res=12"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    for call in range(2):
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        # The console ends with a short summary, not the whole result (which stays in the file).
        summary = proc.stdout.strip().splitlines()
        assert len(summary) <= 25, proc.stdout
        assert summary[0].startswith("runs/demo: step 30 of 30, final loss ")
        assert [line.split()[0] for line in summary[3:6]] == ["pretrained", "random-init",
                                                              "nn_copy"]
        n_verdict = 1 + next(i for i, line in enumerate(summary[7:]) if not line.startswith("  "))
        verdict = " ".join(line.strip() for line in summary[6:6 + n_verdict])  # wrapped
        assert verdict.startswith("verdict: CPAC mae: pretrained ") and verdict.endswith(
            "after only 30 pretraining steps this reading can change with training length")
        pictures = next(line for line in summary if line.startswith("pictures: "))
        assert "runs/demo/metrics/loss_curve.png" in pictures and "cpac_sheet.png" in pictures
        assert summary[-1] == "full results: runs/demo/results.json"
        for model in ("pretrained", "random-init"):
            assert f"CPAC {model} seed 1: test pass over " in proc.stderr
        assert "CPAC orders context and queries by morton" not in proc.stderr
        result = json.loads((tmp_path / "runs" / "demo" / "results.json").read_text())
        assert result["step"] == 30 and result["resumed_from"] == (None if call == 0 else 30)
        if call == 0:  # the first call trains: finite losses that go down
            losses = [l for _, l in result["losses"]]
            assert len(losses) == 3 and all(map(math.isfinite, losses))  # every 10 steps
            assert losses[-1] < losses[0]
    assert len(list((tmp_path / "data" / "demo" / "cache").glob("*/*/*.npz"))) == 42
    cpac = result["eval"]["cpac_udf"]
    for key in ("mae", "rmse", "iou@tau"):
        assert isinstance(cpac[key], float) and math.isfinite(cpac[key]), (key, cpac[key])
        assert math.isfinite(cpac["baseline"][key])
    assert 0 < cpac["mae"] < 1 and cpac["n_shapes_head_test"] > 0
    # Seeds, intervals and both baselines; the headline states the outcome.
    assert cpac["seeds"] == [0, 1]
    for name in ("pretrained", "random_init", "nn_copy"):
        block = result["headline"]["cpac_mae"][name]
        assert len(block["per_seed"]) == 2
        assert block["ci_low"] <= block["mean"] <= block["ci_high"] and math.isfinite(block["mean"])
    assert result["headline"]["verdict"][0].startswith("CPAC mae: pretrained ")
    assert cpac["baselines"]["random_init"]["init_seed"] == 0
    assert 0 <= cpac["significance"]["pretrained_vs_random_init"]["p"] <= 1
    png = (tmp_path / "runs" / "demo" / "cpac_sheet.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    # The collapse monitor's verdict, with the shortcut diagnostic.
    verdict = result["collapse"]
    assert verdict["basis"] == "h" and math.isfinite(verdict["h_std"])
    assert 0.5 < verdict["target_typepos_share"] < 1.0
    assert (tmp_path / "runs" / "demo" / "metrics" / "loss_curve.png").stat().st_size > 1000


def test_the_demo_sheet_follows_the_workdir(tmp_path):
    """A relative `render_png` lands in the run's own folder: `--config.workdir=runs/other`
    writes its CPAC sheet there, never into runs/demo."""
    from nepa3d_jax.train import evaluate

    for workdir in ("runs/demo", "runs/other"):
        config = load_config(str(REPO / "configs" / "demo.py"), [f"workdir={workdir}"])
        sub = evaluate.evaluator_config(config, "cpac_udf")
        assert sub.render_png == f"{workdir}/cpac_sheet.png"
        assert sub.out_json == f"{workdir}/cpac_udf.json"
    absolute = str(tmp_path / "sheet.png")  # an absolute path is kept as given
    config = load_config(str(REPO / "configs" / "demo.py"),
                         [f"eval.cpac_udf.render_png={absolute}"])
    assert evaluate.evaluator_config(config, "cpac_udf").render_png == absolute
