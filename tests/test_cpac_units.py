"""CPAC-UDF building blocks against hand-computed cases: seeds, sampling, tokens, ridge, metrics."""

import os

import ml_collections
import numpy as np
import pytest

from nepa3d_jax.data.paths import path_seed
from nepa3d_jax.data.schema import CacheError
from nepa3d_jax.eval.cpac import shape_sampling
from nepa3d_jax.eval.cpac import tokens as cpac_tokens
from nepa3d_jax.eval.cpac import report as cpac_report
from nepa3d_jax.eval.cpac import study, udf as cpac_udf
from nepa3d_jax.eval.cpac import metrics as cpac_metrics
from nepa3d_jax.eval.cpac.ridge import RidgeAccumulator, ridge_fit, ridge_predict

# A 10-point pool; Morton codes (10 bits) of these points, for the record:
# [1073483327, 258111, 948557962, 352321535, 218103807, 58701819, 495315029, 568102344,
#  450293093, 877061224]
POOL = np.array([[0.9, 0.9, 0.9], [-0.9, -0.9, -0.9], [0.1, 0.2, 0.3], [-0.5, 0.5, 0.0],
                 [0.5, -0.5, 0.0], [0.0, 0.0, -0.8], [0.7, 0.1, -0.2], [-0.3, -0.6, 0.4],
                 [0.2, 0.8, -0.5], [-0.8, 0.3, 0.6]], np.float32)
IDX = np.arange(10, dtype=np.float32)


def _write_shape(path, udf=True, pool=POOL, shift=0.0):
    rays = dict(ray_o_pool=np.zeros((4, 3), np.float32), ray_d_pool=np.ones((4, 3), np.float32),
                ray_hit_pool=np.ones(4, np.float32), ray_t_pool=np.ones(4, np.float32),
                ray_n_pool=np.zeros((4, 3), np.float32))
    d = dict(pt_xyz_pool=pool, pc_xyz=pool[:4], pt_dist_pool=IDX + shift,
             pt_dist_pc_pool=IDX * 0.01 + 0.001 + shift, **rays)
    if udf:
        d["pt_dist_udf_pool"] = IDX * 0.1 + shift
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez(path, **d)


@pytest.fixture()
def shape_dir(tmp_path, monkeypatch):
    """`a/b/c.npz` relative to the working directory: md5 prefix 88c42cfa = 2294557946."""
    monkeypatch.chdir(tmp_path)
    _write_shape("a/b/c.npz")
    return tmp_path


def test_stable_seed_is_md5_prefix_plus_seed_mod_2_32():
    assert path_seed("a/b/c.npz", 0) == 2294557946
    assert path_seed("unpaired/eval/box/box_0_test_000.npz", 999) == 690021620 + 999
    assert path_seed("a/b/c.npz", 2**32 - 2294557946) == 0  # wraps around


def test_choose_replaces_only_when_pool_is_short():
    rng = np.random.RandomState(0)
    assert sorted(shape_sampling.choose(rng, 5, 5)) == [0, 1, 2, 3, 4]
    assert len(shape_sampling.choose(np.random.RandomState(0), 3, 7)) == 7
    rng = np.random.RandomState(3)
    state = rng.get_state()[1].copy()
    assert shape_sampling.choose(rng, 5, 0).shape == (0,)
    np.testing.assert_array_equal(rng.get_state()[1], state)  # k = 0 draws nothing


def test_sample_shape_disjoint_seed0(shape_dir):
    # RandomState(2294557946).choice(10, 5, replace=False) = [7 4 0 3 2]: context {7, 4},
    # queries {0, 3, 2}; Morton order: context [4, 7], queries [3, 2, 0].
    s = shape_sampling.sample_shape("a/b/c.npz", seed=0, context_backend="pointcloud_noray",
                                    n_context=2, n_query=3)
    np.testing.assert_array_equal(s.ctx_xyz, POOL[[4, 7]])
    np.testing.assert_allclose(s.ctx_dist, [0.041, 0.071], rtol=1e-6)  # pt_dist_pc_pool
    np.testing.assert_array_equal(s.q_xyz, POOL[[3, 2, 0]])
    np.testing.assert_allclose(s.q_dist, [0.3, 0.2, 0.0], rtol=1e-6)  # pt_dist_udf_pool
    assert s.target_key == "pt_dist_udf_pool"


def test_sample_shape_eval_seed_and_udfgrid_backend(shape_dir):
    # seed 999: [4 3 1 2 5]: context [4, 3] (Morton 218103807 < 352321535), queries -> [1, 5, 2].
    s = shape_sampling.sample_shape("a/b/c.npz", seed=999, context_backend="udfgrid", n_context=2,
                                    n_query=3)
    np.testing.assert_array_equal(s.ctx_xyz, POOL[[4, 3]])
    np.testing.assert_allclose(s.ctx_dist, [0.4, 0.3], rtol=1e-6)  # udfgrid: pt_dist_udf_pool
    np.testing.assert_array_equal(s.q_xyz, POOL[[1, 5, 2]])


def test_sample_shape_modes(shape_dir):
    none = shape_sampling.sample_shape("a/b/c.npz", seed=0, context_backend="pointcloud_noray",
                                       n_context=2, n_query=3, context_mode="none")
    assert none.ctx_xyz.shape == (0, 3)
    # non-disjoint: context = choice(10, 2), then queries = choice(10, 3) from the same stream
    rng = np.random.RandomState(2294557946)
    c_idx, q_idx = rng.choice(10, 2, replace=False), rng.choice(10, 3, replace=False)
    morton = shape_sampling.morton_argsort(POOL[q_idx])
    np.testing.assert_array_equal(none.q_xyz, POOL[q_idx][morton])
    _write_shape("a/d/e.npz", shift=5.0)
    mis = shape_sampling.sample_shape("a/b/c.npz", seed=0, context_backend="pointcloud_noray",
                                      n_context=2, n_query=3, context_mode="mismatch",
                                      mismatch_path="a/d/e.npz")
    # the donor's pools, indices re-drawn after the two draws above
    redraw = rng.choice(10, 2, replace=False)
    np.testing.assert_allclose(np.sort(mis.ctx_dist), np.sort(IDX[redraw] * 0.01 + 5.001),
                               rtol=1e-6)
    np.testing.assert_array_equal(mis.q_xyz, none.q_xyz)
    assert shape_sampling.mismatch_partners(["p0", "p1", "p2"], 1) == ["p1", "p2", "p0"]
    assert shape_sampling.mismatch_partners(["p0", "p1"], 2) == ["p1", "p0"]  # shift 0 -> 1
    with pytest.raises(ValueError, match="context_mode"):
        shape_sampling.sample_shape("a/b/c.npz", seed=0, context_backend="pointcloud_noray",
                                    n_context=2, n_query=3, context_mode="swap")


def test_sample_shape_target_fallback_and_errors(shape_dir):
    _write_shape("x/y/noudf.npz", udf=False)
    s = shape_sampling.sample_shape("x/y/noudf.npz", seed=0, context_backend="pointcloud_noray",
                                    n_context=2, n_query=3)
    assert s.target_key == "pt_dist_pool"  # the original's fallback, reported
    np.savez("x/y/bare.npz", pt_xyz_pool=POOL)
    with pytest.raises(CacheError, match=r"bare\.npz \[ray_o_pool\]"):
        shape_sampling.sample_shape("x/y/bare.npz", seed=0, context_backend="pointcloud_noray",
                                    n_context=2, n_query=3)
    with pytest.raises(CacheError, match=r"bare\.npz \[pt_dist_udf_pool\]"):
        shape_sampling.sample_shape("x/y/bare.npz", seed=0, context_backend="pointcloud_noray",
                                    n_context=2, n_query=3, context_mode="none")
    with open("x/y/flat.npz", "w") as f:  # a symlink flattened into a text file
        f.write("../../cache/test/box/a.npz")
    with pytest.raises(CacheError, match="symlink"):
        shape_sampling.sample_shape("x/y/flat.npz", seed=0, context_backend="pointcloud_noray",
                                    n_context=2, n_query=3)


def test_token_layouts_hand_written():
    q, a, p = 5, 6, 1
    lay = cpac_tokens.token_layout(2, 3, qa_tokens=True, qa_layout="interleave", add_eos=True)
    assert lay.type_id.tolist() == [0, q, a, q, a, q, a, q, a, q, a, 4]
    assert lay.q_pos.tolist() == [5, 7, 9] and lay.ctx_dist_pos.tolist() == [2, 4]
    lay = cpac_tokens.token_layout(2, 3, qa_tokens=True, qa_layout="split", add_eos=True)
    assert lay.type_id.tolist() == [0, q, q, q, q, q, a, a, a, a, a, 4]
    assert lay.q_pos.tolist() == [3, 4, 5] and lay.ctx_dist_pos.tolist() == [6, 7]
    lay = cpac_tokens.token_layout(2, 3, qa_tokens=False, add_eos=False)
    assert lay.type_id.tolist() == [0, p, p, p, p, p]
    assert lay.q_pos.tolist() == [3, 4, 5] and lay.ctx_xyz_pos.tolist() == [1, 2]
    assert cpac_tokens.sequence_length(1024, 1024, True, True) == 4098
    with pytest.raises(ValueError, match="qa_layout"):
        cpac_tokens.token_layout(2, 3, qa_tokens=True, qa_layout="zigzag")


def test_build_features_and_causal_prefix():
    ctx = np.arange(6, dtype=np.float32).reshape(1, 2, 3) / 10
    qx = -np.arange(9, dtype=np.float32).reshape(1, 3, 3) / 10
    lay = cpac_tokens.token_layout(2, 3, qa_tokens=True, qa_layout="interleave", add_eos=True)
    f = cpac_tokens.build_features(lay, ctx, np.array([[0.5, 0.6]], np.float32), qx)
    assert f.shape == (1, 12, 15)
    np.testing.assert_array_equal(f[0, 3, :3], ctx[0, 1])
    assert f[0, 4, 10] == np.float32(0.6) and f[0, 4, :3].tolist() == [0, 0, 0]
    np.testing.assert_array_equal(f[0, 9, :3], qx[0, 2])
    assert np.count_nonzero(f[0, 10:]) == 0
    cut = cpac_tokens.token_layout(2, 3, qa_tokens=True, qa_layout="split", add_eos=True,
                                   causal_prefix=True)
    assert cut.length == 6  # BOS + 5 questions; answers cannot reach the query reps
    f = cpac_tokens.build_features(cut, ctx, np.array([[0.5, 0.6]], np.float32), qx)
    assert f.shape == (1, 6, 15) and np.count_nonzero(f[..., 10]) == 0
    assert cpac_tokens.token_layout(2, 3, qa_tokens=True, causal_prefix=True).length == 10


def test_ridge_matches_augmented_least_squares():
    rng = np.random.RandomState(0)
    x = rng.randn(50, 4).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.3 + 0.01 * rng.randn(50)).astype(np.float32)
    lam = 0.7
    xb = np.concatenate([x.astype(np.float64), np.ones((50, 1))], 1)
    # ridge with lam on every diagonal entry == least squares on [Xb; sqrt(lam) I] [y; 0]
    a = np.concatenate([xb, np.sqrt(lam) * np.eye(5)])
    want = np.linalg.lstsq(a, np.concatenate([y, np.zeros(5)]), rcond=None)[0]
    w = ridge_fit(x, y, lam)
    np.testing.assert_allclose(w, want, rtol=1e-5, atol=1e-6)
    acc = RidgeAccumulator(4)
    for s in range(0, 50, 7):
        acc.add(x[s:s + 7], y[s:s + 7])
    np.testing.assert_allclose(acc.solve(lam), w, rtol=1e-6)
    np.testing.assert_allclose(ridge_predict(x[:2], w), xb[:2] @ w, rtol=1e-5)
    with pytest.raises(ValueError, match="no training rows"):
        RidgeAccumulator(3).solve(1.0)


def test_udf_metrics_hand_computed():
    t = np.array([0.01, 0.02, 0.05, 0.1], np.float32)
    p = np.array([0.02, 0.04, 0.01, 0.1], np.float32)
    m = cpac_metrics.udf_metrics(t, p, tau=0.03)
    assert m["mae"] == pytest.approx(0.0175, rel=1e-6)
    assert m["rmse"] == pytest.approx(np.sqrt(5.25e-4), rel=1e-5)
    assert m["iou@tau"] == pytest.approx(1 / 3, rel=1e-8)  # gt {0,1}, pred {0,2}
    near = cpac_metrics.udf_metrics_near(t, p, tau=0.03, near_tau=0.03)
    assert near["n"] == 2 and near["mae"] == pytest.approx(0.015, rel=1e-6)
    assert near["iou@tau"] == pytest.approx(0.5, rel=1e-8)
    assert np.isnan(cpac_metrics.udf_metrics_near(t, p, 0.03, near_tau=0.001)["mae"])


def test_target_transforms():
    y = np.array([0.0, 0.03, 0.2], np.float32)
    yt = cpac_metrics.transform_target(y, "log1p", 0.1, 0.03)
    np.testing.assert_allclose(yt, [0.0, np.log(2.0), np.log1p(0.2 / 0.03)], rtol=1e-6)
    np.testing.assert_allclose(cpac_metrics.inverse_transform_target(yt, "log1p", 0.1, 0.03), y,
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(cpac_metrics.transform_target(y, "trunc", 0.1, 0.03), [0, 0.03, 0.1])
    assert cpac_metrics.transform_tau(0.03, "log1p", 0.1, 0.03) == pytest.approx(np.log(2.0))
    assert cpac_metrics.transform_tau(0.3, "trunc", 0.1, 0.03) == 0.1
    with pytest.raises(ValueError, match="target_transform"):
        cpac_metrics.transform_target(y, "sqrt", 0.1, 0.03)


def test_nn_copy_hand_computed():
    ctx = np.array([[0, 0, 0], [1, 0, 0]], np.float32)
    q = np.array([[0.2, 0, 0], [0.9, 0, 0], [0.5, 0, 0]], np.float32)  # last: a tie -> first
    got = cpac_metrics.nn_copy_predict(ctx, np.array([0.1, 0.7], np.float32), q)
    np.testing.assert_array_equal(got, np.array([0.1, 0.7, 0.1], np.float32))
    assert cpac_metrics.nn_copy_predict(ctx[:0], np.zeros(0, np.float32), q).tolist() == [0, 0, 0]


def _config(root, **kw):
    from configs import cpac_udf as cpac_udf_config
    c = cpac_udf_config.get_config()
    c.update({**dict(ckpt=__file__, cache_root=str(root), out_json="", progress=False), **kw})
    return c


def test_config_and_split_errors(tmp_path):
    for i in range(2):
        _write_shape(str(tmp_path / "eval" / "k" / f"s{i}.npz"))
    with pytest.raises(ValueError, match="config.context_mode_test"):
        cpac_udf.validate(_config(tmp_path, context_mode_test="blind"))
    with pytest.raises(ValueError, match="config.query_source"):
        cpac_udf.validate(_config(tmp_path, query_source="voxels"))
    with pytest.raises(ValueError, match="config.grid_sample_mode"):
        cpac_udf.validate(_config(tmp_path, query_source="grid",
                                  grid_sample_mode="coarse_to_fine"))
    with pytest.raises(ValueError, match="config.baseline_only"):
        cpac_udf.validate(_config(tmp_path, baseline_only=1, baseline="none"))
    with pytest.raises(ValueError, match="config.ckpt is required"):
        cpac_udf.validate(_config(tmp_path, ckpt=""))
    with pytest.raises(ValueError, match="config.ckpt='nope.pt': no such file"):
        cpac_udf.validate(_config(tmp_path, ckpt="nope.pt"))
    with pytest.raises(ValueError, match="config.cache_root"):
        cpac_udf.validate(_config(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="config.split='test': no shapes"):
        cpac_udf.split_paths(_config(tmp_path, split="test"))
    with pytest.raises(ValueError, match="config.head_train_split='train_udf'"):
        cpac_udf.split_paths(_config(tmp_path))
    # legacy transductive: seeded permutation of the eval shapes, ratio 0.2 -> 1 train shape
    ev, tr, te, backend, legacy = cpac_udf.split_paths(_config(tmp_path, head_train_split="none"))
    assert legacy and backend == "pointcloud_noray" and len(tr) == 1 and len(te) == 1
    assert sorted(tr + te) == ev


def test_write_json_atomic(tmp_path):
    path = str(tmp_path / "sub" / "r.json")
    cpac_report.write_json_atomic(path, {"mae": 0.5})
    assert open(path).read().startswith("{") and os.listdir(tmp_path / "sub") == ["r.json"]


def test_config_defaults_match_the_original_flags():
    c = _config("/")
    assert isinstance(c, ml_collections.ConfigDict)
    assert (c.split, c.context_backend, c.head_train_split, c.head_train_backend) == (
        "eval", "pointcloud_noray", "train_udf", "udfgrid")
    assert (c.ridge_lambda, c.tau, c.eval_seed, c.report_near_tau) == (1e-3, 0.03, 0, 0.05)
    assert (c.n_context, c.n_query, c.max_shapes) == (1024, 1024, 800)  # the seed protocol


def test_run_checks_every_cache_before_loading_the_checkpoint(tmp_path):
    for split in ("eval", "train_udf"):
        for i in range(2):
            _write_shape(str(tmp_path / split / "k" / f"s{i}.npz"))
    np.savez(tmp_path / "eval" / "k" / "s2.npz", pt_xyz_pool=POOL)  # no rays, no targets
    (tmp_path / "train_udf" / "k" / "s3.npz").write_text("../../../cache/train/k/s3.npz")
    with pytest.raises(CacheError) as err:  # `ckpt` is not a checkpoint: never opened
        study.run(_config(tmp_path))
    msg = str(err.value)
    assert "s2.npz [ray_o_pool]: missing key" in msg
    assert "s2.npz [pt_dist_udf_pool or pt_dist_pool]: missing key" in msg
    assert "s3.npz" in msg and "symlink" in msg


def test_cpac_order_is_a_point_order_the_tokenizer_knows():
    from nepa3d_jax.tokenizer.modes import POINT_ORDER_MODES
    assert shape_sampling.POINT_ORDER in POINT_ORDER_MODES
