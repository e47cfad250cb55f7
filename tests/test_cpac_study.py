"""CPAC-UDF as a study result on the reference checkpoint: seeds, intervals, the random-init
and nn_copy baselines, significance, mesh metrics and the per-shape side file."""

import json
import struct
import pathlib

import numpy as np
import pytest

pytest.importorskip("torch")
from test_cpac_golden import _config, _view

from nepa3d_jax.eval.cpac import study, udf as cpac_udf  # noqa: E402


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
        out = cpac_udf.run(_config(
            ckpt=str(reference_dir / "ckpt" / "tiny_qa" / "last.pt"), n_context=32,
            n_query=32, out_json=str(out_json), seeds="0,1", mesh_eval=1,
            mesh_eval_max_shapes=2, mesh_grid_res=12, mesh_chunk_n_query=32,
            mesh_mc_level=0.1, mesh_num_samples=2000, mesh_fscore_tau=0.05,
            render_png=str(work / "res" / "sheet.png"), render_shapes=2))
        single = cpac_udf.run(_config(
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
    # 2 shapes x (truth, pretrained, random-init, nn_dist, two UDF slices)
    assert (width, height) == (6 * render.PANEL_PX, 2 * render.PANEL_PX)
