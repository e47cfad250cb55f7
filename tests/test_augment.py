"""Pretraining augmentation (`data.aug_*`): off by default, and answers stay true to queries."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nepa3d_jax import jobs
from nepa3d_jax.config import ConfigError, validate
from nepa3d_jax.train import augment
from nepa3d_jax.train.augment import Augment

R = 0.5  # sphere radius


def _sphere_pools(n_pt: int = 64, n_ray: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    """UDF queries and ray casts of a sphere of radius R at the origin, a batch of 3 samples."""
    rng = np.random.default_rng(seed)
    pt = rng.uniform(-1, 1, size=(3, n_pt, 3)).astype(np.float32)
    dist = np.abs(np.linalg.norm(pt, axis=-1) - R).astype(np.float32)
    o = rng.normal(size=(3, n_ray, 3)).astype(np.float32)
    o = 2.0 * o / np.linalg.norm(o, axis=-1, keepdims=True)
    target = rng.normal(scale=0.2, size=(3, n_ray, 3)).astype(np.float32)
    d = target - o
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    # first intersection of o + t d with |x| = R (rays aimed near the centre all hit)
    b = np.sum(o * d, -1)
    disc = b**2 - (np.sum(o * o, -1) - R**2)
    hit = disc > 0
    t = np.where(hit, -b - np.sqrt(np.maximum(disc, 0)), 0.0).astype(np.float32)
    x = o + t[..., None] * d
    n = np.where(hit[..., None], x / R, 0.0).astype(np.float32)
    return dict(pt_xyz=pt, pt_dist=dist, ray_o=o, ray_d=d, ray_hit=hit.astype(np.float32),
                ray_t=t, ray_n=n, sample_id=np.array([3, 7, 11], np.int32))


def test_off_by_default_leaves_the_pools_as_cached():
    data = jobs.default_config("pretrain").data
    aug = Augment.from_config(data)
    assert not aug.on
    pools = _sphere_pools()
    out = augment.apply(aug, pools, jax.random.key(0))
    for k, v in pools.items():
        assert out[k] is v


def test_answers_stay_true_to_their_queries_under_the_transform():
    """After scale, shift and yaw the sphere is a sphere of radius s R centred at t: every
    point's distance, every ray's hit point and normal still describe it."""
    pools = _sphere_pools()
    aug = Augment(scale=0.25, shift=0.2, yaw=True)
    key = jax.random.key(5)
    out = jax.jit(lambda p: augment.apply(aug, p, key))(pools)
    eager = augment.apply(aug, pools, key)
    for k in ("pt_xyz", "pt_dist", "ray_o", "ray_t"):
        np.testing.assert_allclose(np.asarray(out[k]), np.asarray(eager[k]), atol=1e-5)
    scales = []
    for b, sid in enumerate(pools["sample_id"]):
        s, rot, t = (np.asarray(a) for a in augment.transform(
            jax.random.fold_in(key, int(sid)), aug))
        scales.append(float(s))
        c = t  # the sphere's centre moved to t
        pt = np.asarray(out["pt_xyz"][b])
        np.testing.assert_allclose(np.abs(np.linalg.norm(pt - c, axis=-1) - s * R),
                                   np.asarray(out["pt_dist"][b]), atol=2e-5)
        hit = pools["ray_hit"][b] > 0
        assert hit.sum() > 10
        x = np.asarray(out["ray_o"][b] + out["ray_t"][b][:, None] * out["ray_d"][b])[hit]
        np.testing.assert_allclose(np.linalg.norm(x - c, axis=-1), s * R, atol=2e-5)
        np.testing.assert_allclose(np.asarray(out["ray_n"][b])[hit], (x - c) / (s * R),
                                   atol=5e-5)
        np.testing.assert_allclose(np.linalg.norm(np.asarray(out["ray_d"][b]), axis=-1), 1.0,
                                   atol=1e-5)
        assert np.all(np.asarray(out["ray_t"][b])[~hit] == 0)  # a miss stays a miss
        np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-6)
    assert len(set(np.round(scales, 6))) == 3  # each sample its own transform
    assert all(0.75 <= s <= 1.25 for s in scales)


def test_out_of_range_fields_are_refused_naming_them():
    for field, value in (("aug_scale", 1.0), ("aug_scale", -0.1), ("aug_shift", -1.0),
                         ("aug_yaw", 2)):
        config = jobs.default_config("pretrain")
        config.data[field] = value
        with pytest.raises(ConfigError, match=f"data.{field}="):
            validate(config)
