"""build_sequence: jit == eager, and the invariances that hold by construction.

Deterministic sampling (FPS, fixed grid) and deterministic orders (Morton for points, the
direction sort for rays) make the tokens a function of the pool *contents*, not of the pool
row order; a ray choice that takes the whole pool is a permutation that the direction sort
undoes; random sampling of the whole pool followed by Morton order is key-independent.
(Test pools are random, so there are no distance or Morton-code ties.)
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nepa3d_jax import tokenizer

P, R = 40, 8
RAY_KEYS = ("ray_o", "ray_d", "ray_hit", "ray_t", "ray_n")


@pytest.fixture(scope="module")
def pools():
    rng = np.random.RandomState(11)
    d = rng.normal(size=(R, 3)).astype(np.float32)
    return dict(pt_xyz=rng.uniform(-1, 1, (P, 3)).astype(np.float32),
                pt_dist=rng.uniform(0, 1, (P, 1)).astype(np.float32),
                ray_o=rng.uniform(-1, 1, (R, 3)).astype(np.float32),
                ray_d=d / np.linalg.norm(d, axis=1, keepdims=True),
                ray_hit=(np.arange(R) % 3 > 0).astype(np.float32),
                ray_t=rng.uniform(0.1, 2, (R,)).astype(np.float32),
                ray_n=rng.normal(size=(R, 3)).astype(np.float32))


def _args(p):
    return [p["pt_xyz"], p["pt_dist"]] + [p[k] for k in RAY_KEYS]


def _permuted(p, seed):
    rng = np.random.RandomState(seed)
    pt, ray = rng.permutation(P), rng.permutation(R)
    out = {k: v[ray] if k.startswith("ray") else v[pt] for k, v in p.items()}
    return out, pt


@pytest.mark.parametrize("opts", [
    dict(n_point=6, n_ray=4, qa_tokens=True, pt_sample_mode="random",
         point_order_mode="random", drop_ray_prob=0.5),
    dict(n_point=6, n_ray=0, qa_tokens=True, qa_layout="split", pt_sample_mode="fps",
         pt_fps_order=np.array([3, 17, 8], np.int32), point_order_mode="fps"),
], ids=["random", "fps_top_up"])
def test_jit_and_eager_agree(pools, opts):
    args = _args(pools)
    key = jax.random.key(1)
    eager = tokenizer.build_sequence(*args, key=key, **opts)
    jitted = jax.jit(functools.partial(tokenizer.build_sequence, **opts))(*args, key=key)
    np.testing.assert_array_equal(np.asarray(eager[1]), np.asarray(jitted[1]))
    np.testing.assert_allclose(np.asarray(eager[0]), np.asarray(jitted[0]), rtol=0, atol=1e-6)
    if "pt_fps_order" in opts:  # the short cached order is kept as the head, then topped up
        xyz = np.asarray(eager[0])[1:1 + 3, 0:3]
        np.testing.assert_array_equal(xyz, pools["pt_xyz"][[3, 17, 8]])


@pytest.mark.parametrize("mode", ["fps", "fixed_grid"])
@pytest.mark.parametrize("layout", [dict(qa_tokens=False),
                                    dict(qa_tokens=True, qa_layout="interleave")],
                         ids=["legacy", "interleave"])
def test_pool_row_order_does_not_matter(pools, mode, layout):
    opts = dict(n_point=12, n_ray=R, pt_sample_mode=mode, point_order_mode="morton", **layout)
    fn = jax.jit(functools.partial(tokenizer.build_sequence, **opts))
    feat, type_id = fn(*_args(pools), key=jax.random.key(0))
    for seed in (1, 2):
        perm_pools, _ = _permuted(pools, seed)
        feat_p, type_p = fn(*_args(perm_pools), key=jax.random.key(seed))
        np.testing.assert_array_equal(np.asarray(type_p), np.asarray(type_id))
        np.testing.assert_array_equal(np.asarray(feat_p), np.asarray(feat))


def test_whole_pool_random_sampling_with_morton_order_ignores_the_key(pools):
    opts = dict(n_point=P, n_ray=R, qa_tokens=True, qa_layout="split",
                pt_sample_mode="random", point_order_mode="morton")
    fn = jax.jit(functools.partial(tokenizer.build_sequence, **opts))
    feat, _ = fn(*_args(pools), key=jax.random.key(0))
    feat2, _ = fn(*_args(pools), key=jax.random.key(123))
    np.testing.assert_array_equal(np.asarray(feat), np.asarray(feat2))
    xyz = np.asarray(feat)[1:1 + P, 0:3]
    codes = tokenizer.morton_codes_np(xyz)
    assert np.all(np.diff(codes.astype(np.int64)) > 0)  # strictly sorted, every point once
    assert sorted(map(tuple, xyz)) == sorted(map(tuple, pools["pt_xyz"]))


def test_fps_order_follows_the_points_under_permutation(pools):
    xyz = pools["pt_xyz"]
    perm_pools, perm = _permuted(pools, 3)
    inv = np.argsort(perm)
    for start in (None, 0, 21):
        idx = np.asarray(tokenizer.fps_order(xyz, 15, start=start))
        idx_p = np.asarray(tokenizer.fps_order(perm_pools["pt_xyz"], 15,
                                               start=None if start is None else int(inv[start])))
        np.testing.assert_array_equal(perm[idx_p], idx)
    # The default start is the point farthest from the centroid.
    far = int(np.argmax(((xyz - xyz.mean(0)) ** 2).sum(1)))
    assert int(tokenizer.fps_order(xyz, 1)[0]) == far


def test_ray_tokens_are_sorted_by_direction_whatever_the_pool_order(pools):
    opts = dict(n_point=1, n_ray=R, qa_tokens=True, qa_layout="split")
    fn = jax.jit(functools.partial(tokenizer.build_sequence, **opts))
    feat, type_id = fn(*_args(pools), key=jax.random.key(0))
    q_ray = np.asarray(feat)[np.asarray(type_id) == tokenizer.TYPE_Q_RAY]
    order = np.asarray(tokenizer.ray_direction_order(jnp.asarray(pools["ray_d"])))
    np.testing.assert_array_equal(q_ray[:, 6:9], pools["ray_d"][order])
    np.testing.assert_array_equal(q_ray[:, 3:6], pools["ray_o"][order])
    theta = np.arctan2(pools["ray_d"][order, 1], pools["ray_d"][order, 0])
    assert np.all(np.diff(theta) > 0)


def test_random_permutation_and_fps_order_errors(pools):
    perm = np.asarray(jax.jit(tokenizer.random_permutation, static_argnums=1)(jax.random.key(0), 9))
    assert sorted(perm.tolist()) == list(range(9)) and perm.dtype == np.int32
    with pytest.raises(ValueError, match="start=40 is outside the pool"):
        tokenizer.fps_order(pools["pt_xyz"], 4, start=P)
    with pytest.raises(ValueError, match="k=41 is larger than the pool"):
        tokenizer.fps_order(pools["pt_xyz"], P + 1)
