"""Pictures that tell the truth (issue 26, item 8): the CPAC sheet's choices (shapes across
classes, a level the grid resolves, nn_copy drawn as what it predicts, per-shape mae), the
token picture and the loss curve (log axis, the typepos_only_loss reference)."""

import json
import os
from types import SimpleNamespace

import numpy as np
import pytest

from nepa3d_jax.eval.cpac import sheet
from nepa3d_jax.eval.cpac.metrics import nn_copy_predict


def _png_size(path) -> tuple[int, int]:
    data = open(path, "rb").read(24)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_sheet_picks_one_shape_per_class_before_repeating():
    paths = [f"r/eval/{c}/{c}_{i}.npz" for c in ("box", "capsule", "cone") for i in range(2)]
    assert sheet.pick_shapes(paths, 3) == [0, 2, 4]  # box, capsule, cone; not box, box, ...
    assert sheet.pick_shapes(paths, 4) == [0, 2, 4, 1]
    assert sheet.pick_shapes(paths, 10) == [0, 2, 4, 1, 3, 5]
    samples = [SimpleNamespace(path=p) for p in paths]
    assert [s.path for s in sheet.sheet_samples(samples, 2)] == [paths[0], paths[2]]
    keep_all = sheet.sheet_samples(samples, 2, keep_all=True)
    assert [s.path for s in keep_all] == [paths[0], paths[2], paths[1], *paths[3:]]


def test_sheet_draws_at_a_level_the_grid_resolves():
    assert sheet.display_level(0.03, 24) == pytest.approx(2 / 24)  # a voxel, not 0.03
    assert sheet.display_level(0.03, 128) == 0.03


def test_nn_copy_grid_is_the_baseline_s_prediction():
    rng = np.random.default_rng(0)
    sample = SimpleNamespace(ctx_xyz=rng.uniform(-1, 1, (16, 3)).astype(np.float32),
                             ctx_dist=rng.uniform(0, 0.5, 16).astype(np.float32))
    grid = sheet.nn_copy_grid(sample, 6)
    from nepa3d_jax.data.grids import grid_centers

    want = nn_copy_predict(sample.ctx_xyz, sample.ctx_dist, grid_centers(6).reshape(-1, 3))
    np.testing.assert_array_equal(grid.reshape(-1), want)
    assert set(np.unique(grid)) <= set(sample.ctx_dist)  # copies, not distances to points


def _sphere_udf(g: int, r: float = 0.5) -> np.ndarray:
    from nepa3d_jax.data.grids import grid_centers

    return np.abs(np.linalg.norm(grid_centers(g), axis=-1) - r).astype(np.float32)


def test_sheet_rows_carry_each_predictor_and_its_shape_mae(tmp_path):
    g = 8
    paths = [f"c/eval/{c}/{c}_0.npz" for c in ("box", "torus")]
    rng = np.random.default_rng(1)
    samples = [SimpleNamespace(path=p, ctx_xyz=rng.uniform(-1, 1, (8, 3)).astype(np.float32),
                               ctx_dist=rng.uniform(0, .3, 8).astype(np.float32)) for p in paths]
    gt = _sphere_udf(g)
    grids = [{"name": f"{c}_0", "gt": gt, "grids": {"probe": gt + 0.1, "nn_dist": gt}}
             for c in ("torus", "box")]
    rnd = [{"name": r["name"], "gt": gt, "grids": {"probe": gt + 0.2}} for r in grids]
    first = SimpleNamespace(samples=samples, per_shape={  # the fields of a udf.Pass it reads
        "paths": paths, "probe": {"abs_err": np.array([0.11, 0.12])},
        "nn_copy": {"abs_err": np.array([0.05, 0.06])}})
    rfirst = SimpleNamespace(samples=[], per_shape={
        "paths": paths, "probe": {"abs_err": np.array([0.21, 0.22])}})
    rows = sheet.sheet_rows(grids, rnd, first, rfirst)
    assert [r["name"] for r in rows] == ["torus_0", "box_0"]
    assert rows[0]["cls"] == "torus" and list(rows[0]["grids"]) == ["pretrained", "random-init",
                                                                    "nn_copy"]
    assert rows[0]["mae"] == {"pretrained": 0.12, "random-init": 0.22, "nn_copy": 0.06}
    np.testing.assert_array_equal(rows[1]["grids"]["nn_copy"], sheet.nn_copy_grid(samples[0], g))
    out = sheet.draw(str(tmp_path / "s.png"), rows, 0.03, title="t")
    # 2 rows x (truth + 3 predictors) x (surface + slice), plus the title and colour bar bands
    from nepa3d_jax.eval.render import PANEL_PX

    assert _png_size(out) == (8 * PANEL_PX, 2 * PANEL_PX + sheet.HEAD_PX + sheet.BAR_PX)
    assert not any(n.startswith(".tmp") for n in os.listdir(tmp_path))


def test_token_picture_has_room_for_its_legend(tmp_path):
    from nepa3d_jax.eval import render

    rng = np.random.default_rng(0)
    cache = tmp_path / "c.npz"
    n = 256
    d = rng.normal(size=(n, 3)).astype(np.float32)
    np.savez(cache, pt_xyz_pool=rng.uniform(-1, 1, (n, 3)).astype(np.float32),
             pt_dist_pool=rng.uniform(0, 1, n).astype(np.float32),
             pc_xyz=rng.uniform(-.5, .5, (n, 3)).astype(np.float32),
             ray_o_pool=rng.uniform(-1, 1, (n, 3)).astype(np.float32),
             ray_d_pool=d / np.linalg.norm(d, axis=1, keepdims=True),
             ray_hit_pool=np.ones(n, np.float32), ray_t_pool=np.full(n, .5, np.float32),
             ray_n_pool=rng.normal(size=(n, 3)).astype(np.float32))
    out = render.token_sheet(str(cache), str(tmp_path / "t.png"), n_point=16, n_ray=4)
    assert _png_size(out) == (3 * render.PANEL_PX, render.PANEL_PX + 90)


def test_loss_curve_is_on_a_log_axis_with_the_typepos_reference(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nepa3d_jax.train.metrics import MetricsLog, loss_series

    rows = [{"step": s, "loss": 0.1 / s, "typepos_only_loss": 0.006} for s in (10, 20, 30)]
    rows.append({"step": 40, "loss": None})
    assert loss_series(rows, "loss") == ([10, 20, 30], [0.01, 0.005, 0.1 / 30])
    assert loss_series(rows, "typepos_only_loss")[1] == [0.006] * 3
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "loss.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    log = MetricsLog.__new__(MetricsLog)
    log.folder, log.primary, log.writer = tmp_path / "metrics", True, None
    drawn = {}
    real = plt.subplots

    def spy(*a, **k):
        fig, ax = real(*a, **k)
        drawn["ax"] = ax
        return fig, ax

    plt.subplots = spy
    try:
        path = log.plot_loss("t")
    finally:
        plt.subplots = real
    ax = drawn["ax"]
    assert ax.get_yscale() == "log"
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels[0] == "loss" and labels[1].startswith("typepos_only_loss")
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), [0.006] * 3)
    assert os.path.getsize(path) > 1000
