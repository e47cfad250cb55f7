"""Train-time augmentation of one sample's pools before tokenization (pure jnp, vmap-able).

Presets follow the original's classification protocol: `scanobjectnn` = random rotation
about z; `modelnet40` = random scale in [0.8, 1.25] and translation in [-0.1, 0.1]^3.
The same rigid/scale transform is applied to the point pool and to the ray pools (origins
rotate, scale and shift; directions and normals rotate; hit depths and point distances
scale), so points and rays stay consistent; jitter touches point xyz only.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

PRESETS = ("none", "scanobjectnn", "modelnet40")


@dataclasses.dataclass(frozen=True)
class AugParams:
    rotate_z: bool = False
    scale_min: float = 1.0
    scale_max: float = 1.0
    translate: float = 0.0
    jitter_sigma: float = 0.0
    jitter_clip: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.rotate_z or self.translate > 0 or self.scale_min != 1.0
                    or self.scale_max != 1.0 or self.jitter_sigma > 0)


def resolve(preset: str, **fields) -> AugParams:
    """A preset replaces the individual fields (as the original's `--aug_preset` does);
    `none` keeps the individual `aug_*` values."""
    if preset == "scanobjectnn":
        return AugParams(rotate_z=True)
    if preset == "modelnet40":
        return AugParams(scale_min=0.8, scale_max=1.25, translate=0.1)
    if preset == "none":
        return AugParams(**fields)
    raise ValueError(f"aug_preset={preset!r}: expected one of {PRESETS}")


def rot_z(angle: jax.Array) -> jax.Array:
    """3x3 rotation about z by `angle` radians (right-handed)."""
    c, s = jnp.cos(angle), jnp.sin(angle)
    zero, one = jnp.zeros_like(c), jnp.ones_like(c)
    return jnp.stack([jnp.stack([c, -s, zero]), jnp.stack([s, c, zero]),
                      jnp.stack([zero, zero, one])])


def augment(key: jax.Array, pools: dict, p: AugParams) -> dict:
    """Returns a copy of `pools` (keys `pt_xyz` (P,3), `pt_dist` (P,), optional `ray_o`,
    `ray_d`, `ray_n` (R,3), `ray_t` (R,)) with the random transform applied."""
    if not p.active:
        return pools
    k_rot, k_scale, k_shift, k_jit = jax.random.split(key, 4)
    out = dict(pools)
    xyz = pools["pt_xyz"]
    rot = None
    scale = None
    shift = None
    if p.rotate_z:
        rot = rot_z(jax.random.uniform(k_rot, (), minval=0.0, maxval=2.0 * jnp.pi))
    if p.scale_min != 1.0 or p.scale_max != 1.0:
        scale = jax.random.uniform(k_scale, (), minval=p.scale_min, maxval=p.scale_max)
    if p.translate > 0:
        shift = jax.random.uniform(k_shift, (1, 3), minval=-p.translate, maxval=p.translate)

    def rigid(v):
        if rot is not None:
            v = v @ rot.T
        if scale is not None:
            v = v * scale
        if shift is not None:
            v = v + shift
        return v

    xyz = rigid(xyz)
    if scale is not None:
        out["pt_dist"] = pools["pt_dist"] * scale
    if p.jitter_sigma > 0:
        noise = p.jitter_sigma * jax.random.normal(k_jit, xyz.shape, xyz.dtype)
        if p.jitter_clip > 0:
            noise = jnp.clip(noise, -p.jitter_clip, p.jitter_clip)
        xyz = xyz + noise
    out["pt_xyz"] = xyz.astype(pools["pt_xyz"].dtype)
    if "ray_o" in pools:
        out["ray_o"] = rigid(pools["ray_o"])
    for k in ("ray_d", "ray_n"):
        if k in pools and rot is not None:
            out[k] = pools[k] @ rot.T
    if "ray_t" in pools and scale is not None:
        out["ray_t"] = pools["ray_t"] * scale
    return out
