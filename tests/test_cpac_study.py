"""CPAC-UDF as a study result on the reference checkpoint: seeds, intervals, the random-init
and nn_copy baselines, significance, mesh metrics and the per-shape side file."""

import json
import struct
import sys
import pathlib

import numpy as np
import pytest

pytest.importorskip("torch")
from test_cpac_golden import _config, _view

from nepa3d_jax.eval.cpac import study  # noqa: E402


def _no_nan(text: str):
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))


@pytest.fixture(scope="module")
def result(reference_dir, tmp_path_factory):
    work = _view(reference_dir, tmp_path_factory.mktemp("study_view"))
    out_json = work / "res" / "cpac.json"
    import os
    old = os.getcwd()
    os.chdir(work)
    try:
        out = study.run(_config(
            ckpt=str(reference_dir / "ckpt" / "tiny_qa" / "last.pt"), n_context=32,
            n_query=32, out_json=str(out_json), seeds="0,1", mesh_eval=1,
            mesh_eval_max_shapes=2, mesh_grid_res=12, mesh_chunk_n_query=32,
            mesh_mc_level=0.1, mesh_num_samples=2000, mesh_fscore_tau=0.05,
            render_png=str(work / "res" / "sheet.png"), render_shapes=2))
        single = study.run(_config(
            ckpt=str(reference_dir / "ckpt" / "tiny_qa" / "last.pt"), n_context=32,
            n_query=32, out_json="", eval_seed=1, random_init_baseline=0))
    finally:
        os.chdir(old)
    return out, single, out_json


def test_seeds_give_mean_spread_and_interval(result):
    out, single, _ = result
    assert out["seeds"] == [0, 1]
    mae = out["summary"]["pretrained"]["mae"]
    # Each seed is the single-seed protocol: seed 1 alone gives the same number.
    assert mae["per_seed"][1] == pytest.approx(single["mae"], rel=1e-5)
    assert mae["per_seed"][0] != pytest.approx(mae["per_seed"][1])
    assert out["mae"] == pytest.approx(np.mean(mae["per_seed"]))
    assert mae["std_seeds"] > 0 and mae["ci_low"] < mae["mean"] < mae["ci_high"]
    assert "bootstrap over 5 shapes" in mae["ci"]
    assert "random_init_baseline" not in single.get("baselines", {}) and \
        "random_init" not in single["summary"]


def test_baselines_and_significance(result):
    out, _, _ = result
    rnd, nn = out["baselines"]["random_init"], out["baselines"]["nn_copy"]
    assert rnd["init_seed"] == 0 and np.isfinite(rnd["mae"]) and rnd["mae"] != out["mae"]
    assert nn["mae"] == pytest.approx(np.mean(out["summary"]["nn_copy"]["mae"]["per_seed"]))
    for name in ("pretrained_vs_random_init", "pretrained_vs_nn_copy"):
        sig = out["significance"][name]
        assert sig["test"].startswith("Wilcoxon") and sig["n"] == 5
        assert 0.0 <= sig["p"] <= 1.0 and sig["significant"] == (sig["p"] < 0.05)
    assert out["significance"]["pretrained_vs_nn_copy"]["mean_diff"] == pytest.approx(
        out["mae"] - nn["mae"])


def test_mesh_eval_block(result):
    out, _, _ = result
    block = out["mesh_eval"]
    assert block["grid_res"] == 12 and block["n_eval_shapes"] == 2 and block["mc_level"] == 0.1
    for name in ("probe", "nn_dist", "random_init"):
        summary = block[name]["summary"]
        n = summary["chamfer_l1_n"]
        assert n + block[name]["fail_count"] == 2
        if n:
            assert summary["chamfer_l1_mean"] > 0 and 0 <= summary["fscore_mean"] <= 1


def test_result_and_side_file_are_nan_free_and_paired(result):
    out, _, out_json = result
    saved = _no_nan(out_json.read_text())
    assert saved["mae"] == out["mae"] and saved["per_shape_json"] == out["per_shape_json"]
    side = _no_nan(pathlib.Path(study.side_file(str(out_json))).read_text())
    assert len(side["paths"]) == 5 and side["seeds"] == [0, 1]
    per = np.array(side["stats"]["pretrained"]["abs_err"])
    assert per.shape == (2, 5)
    np.testing.assert_allclose(per.mean(axis=1), out["summary"]["pretrained"]["mae"]["per_seed"],
                               rtol=1e-6)


def test_render_sheet_has_the_stated_size(result):
    out, _, _ = result
    from nepa3d_jax.eval import render
    png = pathlib.Path(out["render_png"]).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20000
    width, height = struct.unpack(">II", png[16:24])
    # 2 shapes x (truth, pretrained, random-init, nn_copy or nn_dist) x (surface, UDF slice),
    # a title band above and a colour-bar band below
    from nepa3d_jax.eval.cpac import sheet
    assert (width, height) == (8 * render.PANEL_PX,
                               2 * render.PANEL_PX + sheet.HEAD_PX + sheet.BAR_PX)


def test_passes_are_announced_and_their_bars_name_model_seed_and_phase(
        reference_dir, tmp_path, monkeypatch, caplog):
    from nepa3d_jax.eval.cpac import report

    monkeypatch.chdir(_view(reference_dir, tmp_path / "view"))
    bars = []
    real = report.progress
    monkeypatch.setattr(report, "progress",
                        lambda total, desc, enabled: bars.append(desc) or real(total, desc, False))
    caplog.set_level("INFO", logger="nepa3d_jax.eval.cpac")
    out = study.run(_config(ckpt=str(reference_dir / "ckpt" / "tiny_qa" / "last.pt"),
                            n_context=16, n_query=16, out_json="", seeds="0,1", progress=True))
    want = [f"CPAC {model} seed {seed}: {phase}" for model in ("pretrained", "random-init")
            for seed in (0, 1) for phase in ("head-train pass", "test pass")]
    assert bars == want
    n_test = out["n_shapes_head_test"]
    assert f"CPAC random-init seed 1: test pass over {n_test} shapes" in caplog.messages
    # the protocol's Morton order is recorded, not warned about
    assert out["point_order"]["cpac"] == "morton"
    assert not [r for r in caplog.records if r.levelname == "WARNING" and "morton" in r.message]


def test_the_cpac_job_ends_with_a_short_summary(reference_dir, tmp_path):
    import os
    import subprocess

    view = _view(reference_dir, tmp_path / "view")
    out_json = tmp_path / "cpac.json"
    repo = pathlib.Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "nepa3d_jax.main", "--config", str(repo / "configs" / "cpac_udf.py"),
         f"--config.ckpt={reference_dir / 'ckpt' / 'tiny_qa' / 'last.pt'}",
         "--config.cache_root=unpaired", "--config.n_context=16", "--config.n_query=16",
         "--config.max_shapes=0", "--config.batch_size=8", f"--config.out_json={out_json}",
         "--config.progress=False"],
        cwd=view, capture_output=True, text=True, timeout=600,
        env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) <= 25 and lines[-1] == f"full result: {out_json}"
    assert lines[0].startswith("CPAC mae (lower is better; seeds 0; 95% percentile")
    assert [line.split()[0] for line in lines[2:5]] == ["pretrained", "random-init", "nn_copy"]
    assert lines[5].startswith("verdict: CPAC mae: pretrained ")
    assert json.loads(out_json.read_text())["summary"]["pretrained"]["mae"]["mean"] > 0
    assert "CPAC pretrained seed 0: head-train pass over" in proc.stderr
