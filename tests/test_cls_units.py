"""Classification protocol pieces against hand-computed cases: stratified split, few-shot,
pooling, augmentation presets, MC logit averaging, positional-table resizing."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nepa3d_jax.eval.cls import augment as cls_augment
from nepa3d_jax.eval.cls import mc as cls_mc
from nepa3d_jax.eval.cls import model as cls_model
from nepa3d_jax.eval.cls import pooling as cls_pooling
from nepa3d_jax.eval.cls import split as cls_split
from nepa3d_jax.tokenizer.types import (TYPE_A_POINT, TYPE_A_RAY, TYPE_BOS, TYPE_EOS,
                                        TYPE_MISSING_RAY, TYPE_POINT, TYPE_Q_POINT, TYPE_Q_RAY,
                                        TYPE_RAY)


def _paths(counts):
    return [os.path.join("root", "train", c, f"{c}_{i:02d}.npz")
            for c, n in counts.items() for i in range(n)]


COUNTS = {"a": 10, "b": 5, "c": 1}


def test_split_counts_per_class():
    train, val = cls_split.stratified_train_val_split(_paths(COUNTS), val_ratio=0.1, seed=0)
    by = lambda ps: {c: sum(cls_split.label_from_path(p) == c for p in ps) for c in COUNTS}
    # a: int(10*0.1)=1; b: int(0.5)=0 -> at least one; c: a single file stays in train.
    assert by(val) == {"a": 1, "b": 1, "c": 0}
    assert by(train) == {"a": 9, "b": 4, "c": 1}
    assert sorted(train + val) == sorted(_paths(COUNTS)) and not set(train) & set(val)
    assert train == sorted(train) and val == sorted(val)


def test_split_draws_match_original_protocol():
    """One RandomState shared by the classes in sorted order, each class list shuffled."""
    paths = _paths(COUNTS)
    _, val = cls_split.stratified_train_val_split(paths, val_ratio=0.1, seed=3)
    rng = np.random.RandomState(3)
    a = sorted(p for p in paths if "/a/" in p)
    b = sorted(p for p in paths if "/b/" in p)
    want = [a[rng.permutation(10)[0]], b[rng.permutation(5)[0]]]
    assert val == sorted(want)


def test_split_deterministic_by_seed():
    paths = _paths({"a": 30, "b": 30})
    s0 = cls_split.stratified_train_val_split(paths, 0.1, seed=0)
    assert s0 == cls_split.stratified_train_val_split(list(reversed(paths)), 0.1, seed=0)
    assert s0 != cls_split.stratified_train_val_split(paths, 0.1, seed=1)
    assert cls_split.stratified_train_val_split(paths, 0.0, seed=0) == (sorted(paths), [])


def test_kshot_and_nway():
    paths = _paths(COUNTS)
    k2 = cls_split.stratified_kshot(paths, 2, seed=0)
    assert [sum(f"/{c}/" in p for p in k2) for c in COUNTS] == [2, 2, 1]
    assert cls_split.stratified_kshot(paths, 0) == sorted(paths)
    kept, picked = cls_split.stratified_nway(paths, 2, seed=5)
    want = sorted(["a", "b", "c"][i] for i in np.random.RandomState(5).choice(3, 2, replace=False))
    assert picked == want
    assert kept == sorted(p for p in paths if cls_split.label_from_path(p) in want)
    with pytest.raises(ValueError, match="fewshot_n_way=4"):
        cls_split.stratified_nway(paths, 4)


def test_select_files_on_tmp_tree(tmp_path):
    for split, counts in (("train", {"x": 4, "y": 3}), ("test", {"x": 1, "y": 2})):
        for c, n in counts.items():
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(n):
                (tmp_path / split / c / f"{i}.npz").write_bytes(b"")
    sel = cls_split.select_files(str(tmp_path), val_ratio=0.1, val_seed=0, fewshot_k=2,
                                 fewshot_seed=0, fewshot_n_way=0, fewshot_way_seed=-1)
    assert (len(sel["train"]), len(sel["val"]), len(sel["test"])) == (4, 2, 3)
    assert sel["label_map"] == {"x": 0, "y": 1}
    with pytest.raises(ValueError, match="empty split"):
        (tmp_path / "val").mkdir()
        cls_split.list_npz(str(tmp_path), "val")
    with pytest.raises(ValueError, match="not found"):
        cls_split.list_npz(str(tmp_path), "nope")


def _hand_sequence():
    type_id = jnp.array([[TYPE_BOS, TYPE_Q_POINT, TYPE_A_POINT, TYPE_Q_RAY,
                          TYPE_A_RAY, TYPE_EOS]], jnp.int32)
    h = jnp.arange(6, dtype=jnp.float32).reshape(1, 6, 1) * jnp.array([1.0, 10.0])
    return h, type_id


@pytest.mark.parametrize("mode,want", [
    ("mean", 2.5), ("bos", 0.0), ("eos", 5.0), ("mean_no_special", 2.5),
    ("mean_pts", 1.5), ("mean_a", 3.0)])
def test_pooling_modes(mode, want):
    h, t = _hand_sequence()
    out = cls_pooling.pool(h, t, mode)
    np.testing.assert_allclose(np.asarray(out), [[want, 10 * want]], rtol=0, atol=1e-6)


def test_pooling_legacy_tokens_and_fallbacks():
    t = jnp.array([[TYPE_BOS, TYPE_POINT, TYPE_POINT, TYPE_MISSING_RAY, TYPE_EOS]])
    h = jnp.arange(5, dtype=jnp.float32).reshape(1, 5, 1)
    np.testing.assert_allclose(cls_pooling.pool(h, t, "mean_pts"), [[1.5]])
    # No answer token anywhere in the batch: the last token (as the original).
    np.testing.assert_allclose(cls_pooling.pool(h, t, "mean_a"), [[4.0]])
    assert cls_pooling.resolve_pooling("auto", qa_tokens=True) == "mean_a"
    assert cls_pooling.resolve_pooling("auto", qa_tokens=False) == "eos"
    with pytest.raises(ValueError, match="cls_pooling"):
        cls_pooling.resolve_pooling("max", qa_tokens=False)


def _pools(n=64, r=16, seed=0):
    rng = np.random.RandomState(seed)
    d = rng.randn(r, 3).astype(np.float32)
    return dict(pt_xyz=jnp.asarray(rng.randn(n, 3), jnp.float32),
                pt_dist=jnp.asarray(rng.rand(n), jnp.float32),
                ray_o=jnp.asarray(rng.randn(r, 3), jnp.float32),
                ray_d=jnp.asarray(d / np.linalg.norm(d, axis=1, keepdims=True)),
                ray_n=jnp.asarray(rng.randn(r, 3), jnp.float32),
                ray_t=jnp.asarray(rng.rand(r), jnp.float32))


def test_aug_scanobjectnn_rotates_about_z():
    p = _pools()
    params = cls_augment.resolve("scanobjectnn")
    assert params == cls_augment.AugParams(rotate_z=True)
    outs = jax.vmap(lambda k: cls_augment.augment(k, p, params))(
        jax.random.split(jax.random.key(0), 4))
    xy = lambda a: np.linalg.norm(np.asarray(a)[..., :2], axis=-1)
    for i in range(4):
        np.testing.assert_allclose(xy(outs["pt_xyz"][i]), xy(p["pt_xyz"]), atol=1e-5)
        np.testing.assert_array_equal(outs["pt_xyz"][i][:, 2], p["pt_xyz"][:, 2])
        np.testing.assert_allclose(np.linalg.norm(outs["ray_d"][i], axis=-1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(outs["pt_dist"][i], p["pt_dist"])
        np.testing.assert_array_equal(outs["ray_t"][i], p["ray_t"])
    assert not np.allclose(outs["pt_xyz"][0], outs["pt_xyz"][1])


def test_aug_modelnet40_scale_translate_ranges():
    p = _pools()
    params = cls_augment.resolve("modelnet40", rotate_z=True)  # the preset wins
    assert params == cls_augment.AugParams(scale_min=0.8, scale_max=1.25, translate=0.1)
    x0 = np.asarray(p["pt_xyz"])
    scales = []
    for k in jax.random.split(jax.random.key(1), 32):
        o = cls_augment.augment(k, p, params)
        x = np.asarray(o["pt_xyz"])
        s = np.linalg.norm(x[1] - x[0]) / np.linalg.norm(x0[1] - x0[0])
        shift = x[0] - s * x0[0]
        assert 0.8 - 1e-5 <= s <= 1.25 + 1e-5
        assert np.all(np.abs(shift) <= 0.1 + 1e-5)
        np.testing.assert_allclose(x, s * x0 + shift, atol=1e-5)
        np.testing.assert_allclose(o["pt_dist"], s * np.asarray(p["pt_dist"]), rtol=1e-5)
        np.testing.assert_allclose(o["ray_t"], s * np.asarray(p["ray_t"]), rtol=1e-5)
        np.testing.assert_allclose(o["ray_o"], s * np.asarray(p["ray_o"]) + shift, atol=1e-5)
        np.testing.assert_array_equal(o["ray_d"], p["ray_d"])
        scales.append(s)
    assert max(scales) - min(scales) > 0.2  # spread over the range, not a constant
    assert cls_augment.augment(jax.random.key(0), p, cls_augment.resolve("none")) is p
    with pytest.raises(ValueError, match="aug_preset"):
        cls_augment.resolve("shapenet")


def test_mc_logits_average_over_resamples():
    seeds = jnp.array([7, 11, 7], jnp.uint32)

    def fake_logits(keys_B):
        return jax.vmap(lambda k: jax.random.normal(k, (4,)))(keys_B)

    got = jax.jit(lambda s: cls_mc.mc_logits(fake_logits, s, 5))(seeds)
    want = np.mean([np.asarray(fake_logits(cls_mc.resample_keys(seeds, i))) for i in range(5)],
                   axis=0)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-6)
    # Same seed -> same resamples regardless of position in the batch.
    np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(got[2]))
    # k=1 is a single draw; a key-independent classifier is unchanged by averaging.
    np.testing.assert_allclose(cls_mc.mc_logits(fake_logits, seeds, 1),
                               fake_logits(cls_mc.resample_keys(seeds, 0)))
    const = lambda keys: jnp.ones((keys.shape[0], 3)) * jnp.arange(3.0)
    np.testing.assert_allclose(cls_mc.mc_logits(const, seeds, 10),
                               const(cls_mc.resample_keys(seeds, 0)))


def test_cross_entropy_weights_and_head_init():
    logits = jnp.array([[2.0, 0.0], [0.0, 2.0], [5.0, -5.0]])
    labels = jnp.array([0, 0, 1])
    w = jnp.array([1.0, 1.0, 0.0])
    want = (np.log1p(np.exp(-2.0)) + (2.0 + np.log1p(np.exp(-2.0)))) / 2
    np.testing.assert_allclose(cls_model.cross_entropy(logits, labels, w), want, rtol=1e-6)
    head = cls_model.init_head(jax.random.key(0), 16, 5)
    assert head["kernel"].shape == (16, 5) and head["bias"].shape == (5,)
    assert float(jnp.abs(head["kernel"]).max()) <= 0.25


def test_with_pos_len_resizes_only_the_table():
    params = dict(pos_emb=jnp.arange(6.0).reshape(1, 3, 2), other=dict(pos_emb=jnp.ones((2,))))
    out = cls_model.with_pos_len(params, 5)
    assert out["pos_emb"].shape == (1, 5, 2) and out["other"]["pos_emb"].shape == (2,)
    np.testing.assert_allclose(out["pos_emb"][0, 0], [0.0, 1.0])  # clamped at the first row
    np.testing.assert_allclose(out["pos_emb"][0, -1], [4.0, 5.0])  # last row repeats


def test_optimizer_adamw_and_frozen_backbone():
    from nepa3d_jax.eval.cls import steps as cls_steps
    params = dict(backbone=dict(w=jnp.ones((3,))), head=dict(kernel=jnp.ones((3, 2)),
                                                           bias=jnp.zeros((2,))))
    grads = jax.tree.map(jnp.ones_like, params)
    for frozen in (False, True):
        tx = cls_steps.make_optimizer(1e-2, 0.05, frozen)
        upd, _ = tx.update(grads, tx.init(params), params)
        # AdamW first step: -lr * (sign(g) + wd * p) per entry.
        np.testing.assert_allclose(upd["head"]["kernel"], -1e-2 * (1 + 0.05), rtol=1e-5)
        want_bb = 0.0 if frozen else -1e-2 * (1 + 0.05)
        np.testing.assert_allclose(upd["backbone"]["w"], want_bb, rtol=1e-5)
    assert cls_steps.batch_size_for(10, 8) == 16 and cls_steps.batch_size_for(16, 8) == 16


def test_pooling_mean_q_and_mean_max():
    h, t = _hand_sequence()          # BOS Q_POINT A_POINT Q_RAY A_RAY EOS, h = i * [1, 10]
    np.testing.assert_allclose(cls_pooling.pool(h, t, "mean_q"), [[2.0, 20.0]])  # tokens 1, 3
    mm = np.asarray(cls_pooling.pool(h, t, "mean_max"))
    np.testing.assert_allclose(mm, [[1.5, 15.0, 2.0, 20.0]])  # [mean, max] of tokens 1, 2
    assert cls_pooling.pooled_dim("mean_max", 8) == 16 and cls_pooling.pooled_dim("mean_q", 8) == 8
    legacy = jnp.array([[TYPE_BOS, TYPE_POINT, TYPE_RAY, TYPE_EOS]])
    h4 = jnp.arange(4, dtype=jnp.float32).reshape(1, 4, 1)
    np.testing.assert_allclose(cls_pooling.pool(h4, legacy, "mean_q"), [[1.5]])  # POINT + RAY


def test_schedule_values_at_given_steps():
    from nepa3d_jax.eval.cls import steps as cls_steps
    assert cls_steps.learning_rate(1e-3, "constant", 0, 100) == 1e-3  # the original: a float
    f = cls_steps.learning_rate(1e-3, "cosine", 10, 110)
    got = [float(f(s)) for s in (0, 5, 10, 60, 109)]
    want = [0.0, 5e-4, 1e-3, 5e-4, 1e-3 * 0.5 * (1 + np.cos(np.pi * 99 / 100))]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)  # float32 near 0
    with pytest.raises(ValueError, match="lr_warmup_epochs"):  # constant: no warmup
        cls_steps.learning_rate(1e-3, "constant", 4, 20)
    f0 = cls_steps.learning_rate(1e-3, "cosine", 0, 10)   # no warmup: starts at the peak
    np.testing.assert_allclose(float(f0(0)), 1e-3, rtol=1e-6)
    with pytest.raises(ValueError, match="lr_schedule"):
        cls_steps.learning_rate(1e-3, "step", 0, 10)
    with pytest.raises(ValueError, match="lr_warmup_epochs"):
        cls_steps.learning_rate(1e-3, "cosine", 10, 10)


def test_optimizer_follows_the_schedule():
    from nepa3d_jax.eval.cls import steps as cls_steps
    params = dict(backbone=dict(w=jnp.zeros((3,))), head=dict(bias=jnp.zeros((2,))))
    grads = jax.tree.map(jnp.ones_like, params)
    lr = cls_steps.learning_rate(1e-2, "cosine", 2, 6)
    tx = cls_steps.make_optimizer(lr, 0.0, False)
    state, got = tx.init(params), []
    for _ in range(6):  # constant gradients: each Adam step moves by exactly -lr(step)
        upd, state = tx.update(grads, state, params)
        got.append(float(upd["head"]["bias"][0]))
    np.testing.assert_allclose(got, [-float(lr(s)) for s in range(6)], rtol=1e-4, atol=1e-9)
    assert got[0] == 0.0 and got[2] == pytest.approx(-1e-2, rel=1e-4)
    assert got[1] == pytest.approx(-5e-3, rel=1e-4) and abs(got[5]) < abs(got[3]) < 1e-2


def test_head_norm_normalises_the_pooled_vector():
    class Echo:  # a stand-in backbone: h is the features
        def apply(self, variables, feat, type_id, is_causal, deterministic):
            return None, None, feat

    t = jnp.array([[TYPE_BOS, TYPE_POINT, TYPE_POINT, TYPE_EOS]] * 2)
    feat = jnp.asarray(np.random.RandomState(0).randn(2, 4, 6), jnp.float32) * 3 + 5
    head = dict(kernel=jnp.eye(6), bias=jnp.zeros((6,)))
    plain = cls_model.make_logits_fn(Echo(), "mean_pts", False)
    normed = cls_model.make_logits_fn(Echo(), "mean_pts", False, head_norm=True)
    params = dict(backbone={}, head=head, fc_norm=cls_model.init_fc_norm(6))
    pooled = np.asarray(feat)[:, 1:3].mean(1)
    np.testing.assert_allclose(plain(params, feat, t), pooled, rtol=1e-5)
    out = np.asarray(normed(params, feat, t))
    want = (pooled - pooled.mean(-1, keepdims=True)) / np.sqrt(pooled.var(-1, keepdims=True)
                                                                + 1e-5)
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)
    params["fc_norm"] = dict(scale=2 * jnp.ones((6,)), bias=jnp.arange(6.0))
    np.testing.assert_allclose(normed(params, feat, t), 2 * want + np.arange(6.0), rtol=1e-4,
                               atol=1e-5)


def test_start_up_check_names_each_readout_field():
    """`nepa3d-config` (jobs.check) refuses a bad readout field before anything runs."""
    from nepa3d_jax import jobs
    good = jobs.default_config("finetune_cls")
    jobs.check(good)  # the defaults pass
    assert (good.head_norm, good.lr_schedule, good.lr_warmup_epochs) == (0, "constant", 0)
    for field, value, text in (("head_norm", 3, "expected 0 or 1"),
                               ("lr_schedule", "linear", "expected one of"),
                               ("lr_warmup_epochs", 100, "[0, epochs=100)"),
                               ("lr_warmup_epochs", 5, "needs lr_schedule='cosine'"),
                               ("cls_pooling", "max", "mean_max")):
        c = jobs.default_config("finetune_cls")
        c[field] = value
        with pytest.raises(ValueError, match=f"config.{field}=") as err:
            jobs.check(c)
        assert text in str(err.value) and "\n" not in str(err.value)
