"""Properties of the tokenizer: layouts, padded pools, orders, batching, errors (tiny sizes)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nepa3d_jax import tokenizer
from nepa3d_jax.tokenizer import ordering, pool_sampling, sorting

P, R = 48, 12          # real pool sizes
P_PAD, R_PAD = 64, 16  # padded sizes; entries past the counts are garbage
GARBAGE = 100.0


def _np_fps(xyz, k):
    """Independent FPS reference (float64 is fine: test pools have no near-ties)."""
    xyz = xyz.astype(np.float64)
    out = [int(np.argmax(((xyz - xyz.mean(0)) ** 2).sum(1)))]
    best = ((xyz - xyz[out[0]]) ** 2).sum(1)
    for _ in range(k - 1):
        out.append(int(np.argmax(best)))
        best = np.minimum(best, ((xyz - xyz[out[-1]]) ** 2).sum(1))
    return np.array(out)


@pytest.fixture(scope="module")
def pools():
    rng = np.random.RandomState(0)
    d = rng.normal(size=(R, 3)).astype(np.float32)
    real = dict(pt_xyz=rng.uniform(-1, 1, (P, 3)).astype(np.float32),
                pt_dist=rng.uniform(0, 1, (P,)).astype(np.float32),
                ray_o=rng.uniform(-1, 1, (R, 3)).astype(np.float32),
                ray_d=d / np.linalg.norm(d, axis=1, keepdims=True),
                ray_hit=(np.arange(R) % 2).astype(np.float32),
                ray_t=rng.uniform(0.1, 2, (R,)).astype(np.float32),
                ray_n=rng.normal(size=(R, 3)).astype(np.float32))
    padded = {k: np.concatenate([v, np.full((P_PAD - P if k.startswith("pt") else R_PAD - R,)
                                            + v.shape[1:], GARBAGE, np.float32)])
              for k, v in real.items()}
    return real, padded


def _args(p):
    return [p[k] for k in ("pt_xyz", "pt_dist", "ray_o", "ray_d", "ray_hit", "ray_t", "ray_n")]


LAYOUTS = {
    "legacy": dict(qa_tokens=False),
    "interleave": dict(qa_tokens=True, qa_layout="interleave"),
    "split": dict(qa_tokens=True, qa_layout="split"),
}


def _expected_types(layout, n_point, n_ray, add_eos, missing=False):
    r = [tokenizer.TYPE_MISSING_RAY] if missing else []
    if layout == "legacy":
        body = [tokenizer.TYPE_POINT] * n_point + (r or [tokenizer.TYPE_RAY]) * n_ray
    elif layout == "interleave":
        body = ([tokenizer.TYPE_Q_POINT, tokenizer.TYPE_A_POINT] * n_point
                + (r * 2 or [tokenizer.TYPE_Q_RAY, tokenizer.TYPE_A_RAY]) * n_ray)
    else:
        body = ([tokenizer.TYPE_Q_POINT] * n_point + (r or [tokenizer.TYPE_Q_RAY]) * n_ray
                + [tokenizer.TYPE_A_POINT] * n_point + (r or [tokenizer.TYPE_A_RAY]) * n_ray)
    return [tokenizer.TYPE_BOS] + body + ([tokenizer.TYPE_EOS] if add_eos else [])


def test_sequence_length_formula():
    assert tokenizer.sequence_length(1024, 1024, True) == 4098
    assert tokenizer.sequence_length(1024, 1024, False) == 2050
    assert tokenizer.sequence_length(40, 32, False, add_eos=False) == 73
    assert tokenizer.sequence_length(0, 0, True) == 2
    with pytest.raises(ValueError, match="n_ray"):
        tokenizer.sequence_length(4, -1, True)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_type_layout_and_feature_slots(pools, layout):
    real, _ = pools
    n_point, n_ray = 5, 4
    opts = dict(n_point=n_point, n_ray=n_ray, pt_sample_mode="random",
                point_order_mode="random", **LAYOUTS[layout])
    fn = jax.jit(functools.partial(tokenizer.build_sequence, **opts))
    feat, type_id = fn(*_args(real), key=jax.random.key(0))
    feat, type_id = np.asarray(feat), np.asarray(type_id)
    length = tokenizer.sequence_length(n_point, n_ray, opts["qa_tokens"])
    assert feat.shape == (length, tokenizer.FEAT_DIM)
    assert type_id.tolist() == _expected_types(layout, n_point, n_ray, True)
    assert not feat[0].any() and not feat[-1].any()  # BOS / EOS are zero
    # Every point token carries a pool point with its own distance.
    q = feat[np.isin(type_id, (tokenizer.TYPE_POINT, tokenizer.TYPE_Q_POINT))]
    a = feat[np.isin(type_id, (tokenizer.TYPE_POINT, tokenizer.TYPE_A_POINT))]
    idx = [int(np.flatnonzero((real["pt_xyz"] == x).all(1))[0]) for x in q[:, 0:3]]
    assert len(set(idx)) == n_point
    np.testing.assert_array_equal(a[:, 10], real["pt_dist"][idx])
    if opts["qa_tokens"]:
        assert not a[:, 0:3].any() and not q[:, 10].any()
    # Ray answers: hit point only where hit, t and hit flag in their slots.
    ray_a = feat[np.isin(type_id, (tokenizer.TYPE_RAY, tokenizer.TYPE_A_RAY))]
    ray_q = feat[np.isin(type_id, (tokenizer.TYPE_RAY, tokenizer.TYPE_Q_RAY))]
    missed = ray_a[:, 11] < 0.5
    assert not ray_a[missed][:, 0:3].any() and not ray_a[missed][:, 12:15].any()
    x_hit = ray_q[:, 3:6] + ray_a[:, 9:10] * ray_q[:, 6:9]
    np.testing.assert_allclose(ray_a[~missed][:, 0:3], x_hit[~missed], atol=1e-6)
    # Rays come sorted by azimuth.
    theta = np.arctan2(ray_q[:, 7], ray_q[:, 6])
    assert np.all(np.diff(theta) >= 0)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_missing_rays_traced(pools, layout):
    """ray_available and drop_ray_prob are traced values: one compile serves both cases."""
    real, _ = pools
    opts = dict(n_point=3, n_ray=2, pt_sample_mode="fps", point_order_mode="morton",
                add_eos=False, **LAYOUTS[layout])
    fn = jax.jit(functools.partial(tokenizer.build_sequence, **opts))
    key = jax.random.key(1)
    for available, drop, missing in ((True, 0.0, False), (False, 0.0, True), (True, 1.0, True)):
        feat, type_id = fn(*_args(real), key=key, ray_available=jnp.bool_(available),
                           drop_ray_prob=jnp.float32(drop))
        assert np.asarray(type_id).tolist() == _expected_types(layout, 3, 2, False, missing)
        ray_rows = np.asarray(feat)[np.asarray(type_id) == tokenizer.TYPE_MISSING_RAY]
        assert not ray_rows.any()


@pytest.mark.parametrize("mode", ["random", "fps", "rfps", "fixed_grid"])
def test_padded_pools_never_sample_garbage(pools, mode):
    real, padded = pools
    opts = dict(n_point=8, n_ray=R, qa_tokens=True, pt_sample_mode=mode, pt_rfps_m=16,
                point_order_mode="fps")
    feat, _ = jax.jit(jax.vmap(lambda k: tokenizer.build_sequence(
        *_args(padded), key=k, pt_count=jnp.int32(P), ray_count=jnp.int32(R), **opts)))(
            jax.random.split(jax.random.key(2), 4))
    feat = np.asarray(feat)
    assert feat.shape == (4, tokenizer.sequence_length(8, R, True), tokenizer.FEAT_DIM)
    assert np.abs(feat).max() < GARBAGE / 2
    if mode in ("fps", "fixed_grid"):  # deterministic: the unpadded pool gives the same
        want, _ = jax.jit(functools.partial(tokenizer.build_sequence, **opts))(
            *_args(real), key=jax.random.key(5))
        np.testing.assert_array_equal(feat[0, 1::2][:8], np.asarray(want)[1::2][:8])


def test_fps_order_properties(pools):
    real, padded = pools
    got = np.asarray(tokenizer.fps_order(real["pt_xyz"], 20))
    np.testing.assert_array_equal(got, _np_fps(real["pt_xyz"], 20))
    masked = np.asarray(tokenizer.fps_order(padded["pt_xyz"], 20, count=P))
    np.testing.assert_array_equal(masked, got)
    full = np.asarray(tokenizer.fps_order(real["pt_xyz"], P))
    assert sorted(full.tolist()) == list(range(P))  # a permutation when k == N
    assert int(tokenizer.fps_order(real["pt_xyz"], 3, start=7)[0]) == 7


def test_fps_pre_computed_order_top_up_and_fallback(pools):
    real, padded = pools
    mask = pool_sampling.valid_mask(P_PAD, P)
    order = np.concatenate([np.array([5, 9, 2], np.int32), np.full((5,), 60, np.int32)])
    key = jax.random.key(3)
    fn = jax.jit(pool_sampling.fps_with_order, static_argnums=3)
    got = np.asarray(fn(key, padded["pt_xyz"], mask, 10, order, jnp.int32(3)))
    assert got[:3].tolist() == [5, 9, 2]
    assert len(set(got.tolist())) == 10 and got.max() < P
    on_the_fly = np.asarray(tokenizer.fps_order(real["pt_xyz"], 10))
    for count in (0, 5):  # no order / an order pointing into the padding: FPS on the fly
        got = fn(key, padded["pt_xyz"], mask, 10, order, jnp.int32(count))
        np.testing.assert_array_equal(np.asarray(got), on_the_fly)


def test_random_choice_distinct_and_cycling():
    key = jax.random.key(4)
    fn = jax.jit(pool_sampling.random_choice, static_argnums=2)
    got = np.asarray(fn(key, pool_sampling.valid_mask(32, 20), 16))
    assert len(set(got.tolist())) == 16 and got.max() < 20
    short = np.asarray(fn(key, pool_sampling.valid_mask(32, 5), 12))
    assert set(short.tolist()) == set(range(5))


def test_random_subset_is_a_uniform_sorted_subset_of_the_valid_entries():
    fn = jax.jit(jax.vmap(pool_sampling.random_subset, in_axes=(0, None, None)), static_argnums=2)
    mask = pool_sampling.valid_mask(40, 30)  # 30 valid entries, 10 of padding
    got = np.asarray(fn(jax.random.split(jax.random.key(7), 6000), mask, 6))
    assert got.shape == (6000, 6) and got.max() < 30
    assert (np.diff(got, axis=1) > 0).all()  # distinct, in increasing index order
    # Each valid index is picked with probability 6/30: 1200 of 6000 draws, sd ~31.
    counts = np.bincount(got.ravel(), minlength=30)
    assert np.abs(counts - 1200).max() < 5 * 31, counts
    # All entries: the identity; the ray path picks such subsets when the pool is large enough.
    np.testing.assert_array_equal(pool_sampling.random_subset(jax.random.key(0), mask, 30),
                                  np.arange(30))
    picks = np.asarray(pool_sampling.choice_like_original(jax.random.key(1), 30, 40, 8))
    assert len(set(picks.tolist())) == 8 and picks.max() < 30
    repl = np.asarray(pool_sampling.choice_like_original(jax.random.key(1), 5, 40, 8))
    assert repl.max() < 5  # fewer than k valid: draws with replacement, as the original
    draws = jax.random.randint(jax.random.split(jax.random.key(1))[1], (8,), 0, 5, jnp.int32)
    np.testing.assert_array_equal(repl, draws)  # from the second half of the key's split
    for key in (jax.random.key(2), jax.random.PRNGKey(2)):  # typed and raw keys, under vmap
        got = jax.jit(jax.vmap(pool_sampling.choice_like_original, in_axes=(None, 0, None, None)),
                      static_argnums=(2, 3))(key, jnp.array([5, 40]), 40, 8)
        want = jax.random.randint(jax.random.split(key)[1], (8,), 0, 5, jnp.int32)
        np.testing.assert_array_equal(got[0], want)
        assert len(set(np.asarray(got[1]).tolist())) == 8


def _np_random_subset(key, count, n, k):
    """The subset's definition from the same random bits: the k smallest (key, index)."""
    u = np.minimum(np.asarray(jax.random.bits(key, (n,), jnp.uint32)) >> 1, 2**31 - 2)
    u = np.where(np.arange(n) < count, u, 2**31 - 1).astype(np.int64)
    return np.sort(np.lexsort((np.arange(n), u))[:k])


def test_random_subset_is_the_k_smallest_random_keys():
    fn = jax.jit(pool_sampling.random_subset, static_argnums=2)
    for n, count, k in ((8000, 8000, 1024), (8000, 5000, 1024), (300, 290, 288), (50, 50, 1)):
        for seed in range(3):
            key = jax.random.key(seed)
            got = np.asarray(fn(key, pool_sampling.valid_mask(n, count), k))
            np.testing.assert_array_equal(got, _np_random_subset(key, count, n, k))


def test_threshold_search_with_ties_and_short_pools():
    bound = jax.jit(pool_sampling._kth_smallest_bound, static_argnums=1)
    rng = np.random.RandomState(3)
    for k in (1, 5, 6, 7, 40, 199, 200):
        u = rng.randint(0, 2**31 - 1, 200).astype(np.int32)
        u[:12] = np.sort(u)[5]  # twelve keys tied at the 6th smallest value
        t = int(bound(jnp.asarray(u), k))
        kth = np.sort(u)[k - 1]
        np.testing.assert_array_equal(u <= t, u <= kth)
    short = np.full(10, 2**31 - 1, np.int32)
    short[:3] = [5, 9, 7]  # 3 valid keys, padding above: t is the largest valid key
    assert int(bound(jnp.asarray(short), 4)) == 2**31 - 2


def test_coarse_sort_equals_the_network_and_lexsort():
    """The CPU default (coarse int32 sort + fix-up + fallback) is the bitonic network's and
    numpy's order: ties, -0.0, subnormals (== 0 in XLA's CPU code), uint32 keys, runs too
    long for the fix-up and NaN (both sent to the network), per sample under vmap."""
    rng = np.random.RandomState(2)
    n = 100
    close = (1.0 + rng.randint(0, 40, n) * 1e-7).astype(np.float32)  # runs of shared top bits
    pairs = np.repeat(rng.uniform(1, 2, n // 2), 2).astype(np.float32)
    pairs[::2] = np.nextafter(pairs[::2], np.float32(3))  # each pair out of index order
    zeros = rng.choice(np.array([0.0, -0.0, 1e-40, -1e-40, 1.0], np.float32), n)
    nan = rng.normal(size=n).astype(np.float32)
    nan[::7] = np.nan
    cases = [(rng.normal(size=n).astype(np.float32), rng.normal(size=n).astype(np.float32)),
             (close, rng.normal(size=n).astype(np.float32)), (pairs,),
             (zeros, rng.randint(0, 2, n).astype(np.float32)),
             (rng.randint(0, 2**32, n, dtype=np.uint64).astype(np.uint32),),
             (rng.randint(0, 9, n).astype(np.uint32),)]
    coarse = jax.jit(functools.partial(sorting.lex_argsort, method="coarse"))
    bitonic = jax.jit(functools.partial(sorting.lex_argsort, method="bitonic"))
    for keys in cases:
        want = np.lexsort(tuple(np.where(np.abs(k) < 1e-38, 0, k) if k.dtype == np.float32
                                else k for k in keys[::-1]))
        np.testing.assert_array_equal(np.asarray(coarse(*keys)), want)
    np.testing.assert_array_equal(np.asarray(coarse(nan, cases[0][1])),
                                  np.asarray(bitonic(nan, cases[0][1])))
    batch = tuple(np.stack(k) for k in zip(cases[0], cases[1], (nan, cases[0][1])))
    got = jax.jit(jax.vmap(functools.partial(sorting.lex_argsort, method="coarse")))(*batch)
    want = jax.jit(jax.vmap(functools.partial(sorting.lex_argsort, method="bitonic")))(*batch)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    theta_phi = ordering._ray_angles(jnp.asarray(rng.normal(size=(n, 3)).astype(np.float32)))
    np.testing.assert_array_equal(np.asarray(coarse(*theta_phi)),
                                  np.lexsort(tuple(np.asarray(a) for a in theta_phi[::-1])))


def test_morton_and_sorting():
    rng = np.random.RandomState(1)
    xyz = rng.uniform(-1.2, 1.2, (60, 3)).astype(np.float32)
    xyz[1] = xyz[0]  # a tie
    codes = np.asarray(jax.jit(tokenizer.morton_codes)(xyz))
    np.testing.assert_array_equal(codes, tokenizer.morton_codes_np(xyz))
    assert codes.max() < 2**30
    order = np.asarray(jax.jit(tokenizer.morton_order)(xyz))
    np.testing.assert_array_equal(order, np.argsort(codes, kind="stable"))
    # Bitonic network == lax.sort == numpy lexsort, with ties and -0.0 == 0.0.
    a = rng.randint(0, 5, 37).astype(np.float32)
    a[[3, 8]] = [0.0, -0.0]
    b = rng.randint(0, 3, 37).astype(np.float32)
    want = np.lexsort((b, a))
    for method in ("coarse", "bitonic", "lax"):
        got = jax.jit(functools.partial(sorting.lex_argsort, method=method))(a, b)
        np.testing.assert_array_equal(np.asarray(got), want)


def test_build_batch_vmap_jit_and_keys(pools):
    _, padded = pools
    b = 3
    batch = {k: np.stack([v] * b) for k, v in padded.items()}
    batch.update(pt_count=np.full((b,), P, np.int32), ray_count=np.full((b,), R, np.int32),
                 ray_available=np.array([True, False, True]), sample_id=np.arange(b))
    opts = dict(n_point=6, n_ray=4, qa_tokens=True, pt_sample_mode="random",
                point_order_mode="random")
    keys = jax.random.split(jax.random.key(6), b)
    feat, type_id = jax.jit(functools.partial(tokenizer.build_batch, **opts))(batch, keys)
    assert feat.shape == (b, 22, 15) and type_id.shape == (b, 22)
    assert (np.asarray(type_id[1, 13:21]) == tokenizer.TYPE_MISSING_RAY).all()
    one = jax.jit(functools.partial(tokenizer.build_sequence, **opts))
    for i in range(b):  # vmap == one sample at a time
        f_i, t_i = one(*_args({k: v[i] for k, v in batch.items()}), key=keys[i],
                       pt_count=P, ray_count=R, ray_available=batch["ray_available"][i])
        np.testing.assert_allclose(np.asarray(f_i), np.asarray(feat[i]), atol=1e-6)
        np.testing.assert_array_equal(np.asarray(t_i), np.asarray(type_id[i]))
    assert not np.array_equal(np.asarray(feat[0]), np.asarray(feat[2]))  # keys differ
    with pytest.raises(ValueError, match="leading batch size"):
        tokenizer.build_batch(batch, keys[:2], **opts)


@pytest.mark.parametrize("change, match", [
    (dict(n_point=P + 1), "n_point=49 is larger than the point pool"),
    (dict(n_point=-1), "n_point must be >= 0"),
    (dict(n_ray=2.5), "n_ray must be a Python int"),
    (dict(pt_sample_mode="fsp"), "unknown pt_sample_mode 'fsp'"),
    (dict(point_order_mode="hilbert"), "unknown point_order_mode"),
    (dict(qa_layout="zigzag"), "unknown qa_layout"),
    (dict(pt_sample_mode="rfps", pt_rfps_m=3), "pt_rfps_m=3"),
    (dict(drop_ray_prob=1.5), "drop_ray_prob must be in"),
    (dict(fps_count=3), "fps_count was given without pt_fps_order"),
    (dict(key=None), "explicit PRNG key"),
])
def test_bad_static_arguments(pools, change, match):
    real, _ = pools
    kwargs = dict(n_point=4, n_ray=2, qa_tokens=True, key=jax.random.key(0))
    kwargs.update(change)
    with pytest.raises(ValueError, match=match):
        tokenizer.build_sequence(*_args(real), **kwargs)


def test_bad_pools(pools):
    real, _ = pools
    args = _args(real)
    with pytest.raises(ValueError, match="ray pools are required"):
        tokenizer.build_sequence(*args[:2], None, None, None, None, None, n_point=4, n_ray=2,
                                 qa_tokens=True, key=jax.random.key(0))
    with pytest.raises(ValueError, match="pt_dist must have shape"):
        tokenizer.build_sequence(args[0], args[1][:5], *args[2:], n_point=4, n_ray=2,
                                 qa_tokens=True, key=jax.random.key(0))
    fn = jax.jit(functools.partial(tokenizer.build_sequence, n_point=4, n_ray=0, qa_tokens=False))
    feat, _ = fn(args[0], args[1][:, None], None, None, None, None, None, key=jax.random.key(0))
    assert feat.shape == (6, 15)
    empty = [np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32), np.zeros((0,)),
             np.zeros((0,)), np.zeros((0, 3), np.float32)]
    fn = jax.jit(functools.partial(tokenizer.build_sequence, n_point=2, n_ray=3, qa_tokens=False))
    _, type_id = fn(*args[:2], *empty, key=jax.random.key(0))
    assert np.asarray(type_id).tolist() == [0, 1, 1, 3, 3, 3, 4]
