"""Token sequences from point/ray pools: the original's `build_sequence`, on device.

Per sample: sample n_point points (random | fps | rfps | fixed_grid), order them
(morton | fps | random), choose n_ray rays and sort them by direction, then lay out
  legacy:     BOS, POINT*n_point, RAY*n_ray, [EOS]
  interleave: BOS, (Q_POINT, A_POINT)*n_point, (Q_RAY, A_RAY)*n_ray, [EOS]
  split:      BOS, Q_POINT*n_point, Q_RAY*n_ray, A_POINT*n_point, A_RAY*n_ray, [EOS]
Rays that are unavailable (or dropped with drop_ray_prob) become zero MISSING_RAY tokens.

Everything that fixes a shape is a static Python value; everything that varies per sample
(pool counts, ray availability, drop probability, the PRNG key) may be traced, so
`build_batch` is a plain vmap that a jitted training step can call.
"""

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from nepa3d_jax.tokenizer import checks, modes, ordering, pool_sampling
from nepa3d_jax.tokenizer.types import (FEAT_DIM, TYPE_A_POINT, TYPE_A_RAY, TYPE_BOS, TYPE_EOS,
                                        TYPE_MISSING_RAY, TYPE_POINT, TYPE_Q_POINT, TYPE_Q_RAY,
                                        TYPE_RAY)

_RAY_KEYS = ("ray_o", "ray_d", "ray_hit", "ray_t", "ray_n")


def _cols(n: int, parts: list) -> jax.Array:
    """(n, 15) float32 from a list of (n, w) blocks or int widths of zeros."""
    blocks = [jnp.zeros((n, p), jnp.float32) if isinstance(p, int) else p for p in parts]
    out = jnp.concatenate(blocks, axis=1)
    assert out.shape == (n, FEAT_DIM), out.shape
    return out


def _point_tokens(xyz, dist, qa: bool):
    n = xyz.shape[0]
    d = dist[:, None]
    if not qa:
        return (_cols(n, [xyz, 7, d, 4]),)
    return _cols(n, [xyz, 12]), _cols(n, [10, d, 4])


def _ray_tokens(o, d, hit, t, nrm, qa: bool):
    n = o.shape[0]
    hit_mask = (hit > 0.5).astype(jnp.float32)[:, None]
    x_hit = (o + t[:, None] * d) * hit_mask
    nrm = nrm * hit_mask
    t, hit = t[:, None], hit[:, None]
    if not qa:
        return (_cols(n, [x_hit, o, d, t, 1, hit, nrm]),)
    return _cols(n, [3, o, d, 6]), _cols(n, [x_hit, 6, t, 1, hit, nrm])


def _interleave(q, a):
    return jnp.stack([q, a], axis=1).reshape(-1, *q.shape[1:])


def _layout(pt_tokens, ray_tokens, ray_missing, n_point, n_ray, qa, layout, add_eos):
    """Concatenate token blocks and their type ids; ray types become MISSING_RAY when
    `ray_missing` (traced bool), and ray features are zeroed."""
    ray_tokens = tuple(jnp.where(ray_missing, 0.0, r) for r in ray_tokens)
    if not qa:
        feats = [pt_tokens[0], ray_tokens[0]]
        types = [np.full(n_point, TYPE_POINT), np.full(n_ray, TYPE_RAY)]
    elif layout == "interleave":
        feats = [_interleave(*pt_tokens), _interleave(*ray_tokens)]
        types = [np.tile([TYPE_Q_POINT, TYPE_A_POINT], n_point),
                 np.tile([TYPE_Q_RAY, TYPE_A_RAY], n_ray)]
    else:
        feats = [pt_tokens[0], ray_tokens[0], pt_tokens[1], ray_tokens[1]]
        types = [np.full(n_point, TYPE_Q_POINT), np.full(n_ray, TYPE_Q_RAY),
                 np.full(n_point, TYPE_A_POINT), np.full(n_ray, TYPE_A_RAY)]
    edge = jnp.zeros((1, FEAT_DIM), jnp.float32)
    feats = [edge] + feats + ([edge] if add_eos else [])
    type_id = np.concatenate([[TYPE_BOS]] + types + ([[TYPE_EOS]] if add_eos else []))
    type_id = type_id.astype(np.int32)
    is_ray = np.isin(type_id, (TYPE_RAY, TYPE_Q_RAY, TYPE_A_RAY))
    type_id = jnp.where(is_ray & ray_missing, TYPE_MISSING_RAY, type_id)
    return jnp.concatenate(feats, axis=0), type_id.astype(jnp.int32)


def build_sequence(
    pt_xyz, pt_dist, ray_o, ray_d, ray_hit, ray_t, ray_n, *,
    n_point: int, n_ray: int, qa_tokens: bool, qa_layout: str = "interleave",
    pt_sample_mode: str = "random", pt_fps_order=None, pt_rfps_m: int = 4096,
    point_order_mode: str = "morton", ray_available=True, drop_ray_prob=0.0,
    add_eos: bool = True, key: jax.Array, pt_count=None, ray_count=None, fps_count=None,
) -> tuple[jax.Array, jax.Array]:
    """One sample's tokens: (feat (T, 15) float32, type_id (T,) int32).

    Pools: pt_xyz (P, 3), pt_dist (P,) or (P, 1); rays (R, 3) / (R,) / (R, 1), may be None
    when n_ray == 0. For padded pools, pt_count / ray_count say how many leading entries are
    real and fps_count how many of pt_fps_order (0: none, FPS is computed on the fly).
    A ray_count of 0 (or empty ray pools) turns the rays into MISSING_RAY tokens.
    Raises ValueError on bad static arguments (names the argument) before compiling.
    """
    n_point = checks.check_size("n_point", n_point)
    n_ray = checks.check_size("n_ray", n_ray)
    qa = bool(qa_tokens)
    layout = checks.check_mode("qa_layout", qa_layout, modes.QA_LAYOUTS)
    pt_mode = checks.check_mode("pt_sample_mode", pt_sample_mode, modes.PT_SAMPLE_MODES)
    order_mode = checks.check_mode("point_order_mode", point_order_mode, modes.POINT_ORDER_MODES)
    rays = dict(zip(_RAY_KEYS, (ray_o, ray_d, ray_hit, ray_t, ray_n)))
    n_pool, n_rays = checks.check_pools(pt_xyz, pt_dist, rays, n_point, n_ray)
    checks.check_probability("drop_ray_prob", drop_ray_prob)
    rfps_m = min(checks.check_size("pt_rfps_m", pt_rfps_m), n_pool)
    if pt_mode == "rfps" and rfps_m < n_point:
        raise ValueError(f"pt_rfps_m={pt_rfps_m} (capped at the pool size {n_pool}) must be "
                         f">= n_point={n_point} for pt_sample_mode 'rfps'")
    if fps_count is not None and pt_fps_order is None:
        raise ValueError("fps_count was given without pt_fps_order")
    if pt_fps_order is not None and len(np.shape(pt_fps_order)) != 1:
        raise ValueError(f"pt_fps_order must be 1-D, got shape {np.shape(pt_fps_order)}")
    if key is None:
        raise ValueError("build_sequence needs an explicit PRNG key (key=...)")

    k_pt, k_order, k_ray, k_drop = jax.random.split(key, 4)
    pt_xyz = jnp.asarray(pt_xyz, jnp.float32)
    pt_dist = jnp.asarray(pt_dist, jnp.float32).reshape(n_pool)
    if n_point > 0:
        mask = pool_sampling.valid_mask(n_pool, pt_count)
        idx = modes.PT_SAMPLERS[pt_mode](k_pt, pt_xyz, mask, n_point, pt_fps_order, fps_count,
                                         rfps_m)
        xyz_s, dist_s = pt_xyz[idx], pt_dist[idx]
        order = modes.POINT_ORDERS[order_mode](k_order, xyz_s)
        if order is not None:
            xyz_s, dist_s = xyz_s[order], dist_s[order]
    else:
        xyz_s, dist_s = jnp.zeros((0, 3), jnp.float32), jnp.zeros((0,), jnp.float32)
    pt_tokens = _point_tokens(xyz_s, dist_s, qa)

    ray_missing = ~jnp.asarray(ray_available, bool)
    if n_ray > 0 and n_rays == 0:  # empty (padded) ray pools: rays are missing
        ray_tokens = tuple(jnp.zeros((n_ray, FEAT_DIM), jnp.float32) for _ in pt_tokens)
        ray_missing = jnp.bool_(True)
    elif n_ray > 0:
        count = n_rays if ray_count is None else ray_count
        r_idx = pool_sampling.choice_like_original(k_ray, count, n_rays, n_ray)
        o, d, hit, t, nrm = (jnp.asarray(rays[k], jnp.float32) for k in _RAY_KEYS)
        hit, t = hit.reshape(n_rays), t.reshape(n_rays)
        # Only the directions are needed to order the choice; every field is then gathered
        # once, at the composed index (the same values as two gathers, half the work).
        r_idx = r_idx[ordering.ray_direction_order(d[r_idx])]
        o, d, hit, t, nrm = (a[r_idx] for a in (o, d, hit, t, nrm))
        ray_tokens = _ray_tokens(o, d, hit, t, nrm, qa)
        ray_missing = ray_missing | (jnp.asarray(count) <= 0)
        if not (isinstance(drop_ray_prob, (int, float)) and drop_ray_prob == 0):
            ray_missing = ray_missing | (jax.random.uniform(k_drop) < drop_ray_prob)
    else:
        ray_tokens = tuple(jnp.zeros((0, FEAT_DIM), jnp.float32) for _ in pt_tokens)
    return _layout(pt_tokens, ray_tokens, ray_missing, n_point, n_ray, qa, layout, add_eos)


# Per-sample pool fields that build_batch maps over (the padded-pool contract).
POOL_FIELDS = ("pt_xyz", "pt_dist", "ray_o", "ray_d", "ray_hit", "ray_t", "ray_n",
               "pt_count", "ray_count", "pt_fps_order", "fps_count", "ray_available")


def build_batch(pools: Mapping[str, Any], keys: jax.Array, **options) -> tuple[jax.Array, jax.Array]:
    """vmap of `build_sequence` over a batch of padded pools (leading axis B).

    pools: the padded-pool dict (see docs/architecture.md); fields other than POOL_FIELDS
    (sample_id, label, ...) are ignored, absent optional ones are None. keys: (B,) PRNG
    keys. options: build_sequence's static keywords (n_point, n_ray, qa_tokens, ...) and
    optionally a scalar drop_ray_prob. Returns (feat (B, T, 15), type_id (B, T)).
    """
    if "pt_xyz" not in pools or "pt_dist" not in pools:
        raise ValueError(f"build_batch: pools need pt_xyz and pt_dist; got {sorted(pools)}")
    bad = set(options) & set(POOL_FIELDS)
    if bad:
        raise ValueError(f"build_batch: pass {sorted(bad)} inside pools, not as options")
    batch = {k: pools[k] for k in POOL_FIELDS if pools.get(k) is not None}
    sizes = {k: np.shape(v)[0] if np.ndim(v) else None for k, v in batch.items()}
    sizes["keys"] = np.shape(keys)[0] if np.ndim(keys) else None
    if len(set(sizes.values())) != 1:
        raise ValueError(f"build_batch: every pool field needs the same leading batch size; "
                         f"got {sizes}")

    def one(sample, key):
        args = [sample.get(k) for k in ("pt_xyz", "pt_dist") + _RAY_KEYS]
        extra = {k: sample[k] for k in ("pt_count", "ray_count", "pt_fps_order", "fps_count",
                                        "ray_available") if k in sample}
        return build_sequence(*args, key=key, **extra, **options)

    return jax.vmap(one)(batch, keys)
