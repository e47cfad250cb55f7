"""Opt-in pretraining augmentation: a random similarity transform of each sample's pools.

Why: with pre-computed FPS orders every epoch shows a shape through the same points; a random
scale, shift and yaw per sample and step gives the encoder new views of the geometry without
changing what the answers mean. The transform is applied to the padded pools on device, before
tokenization, and keeps every answer consistent with its query:

  x -> s R x + t  (point queries, ray origins; so ray hit points o + t d move the same way)
  d -> R d, n -> R n  (ray directions and hit normals)
  dist -> s dist, ray_t -> s ray_t  (distances scale with the shape; a miss's 0 stays 0)

R is a rotation about +z (the corpora's up axis), s ~ U[1 - scale, 1 + scale] and
t ~ U[-shift, shift]^3. Pre-computed FPS orders stay valid: a similarity transform keeps
every ratio of distances. All zeros (the default) leaves the pools untouched: the original.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Augment:
    """Ranges of the per-sample transform (`data.aug_scale`, `data.aug_shift`, `data.aug_yaw`)."""
    scale: float
    shift: float
    yaw: bool

    @classmethod
    def from_config(cls, data: Any) -> "Augment":
        return cls(scale=float(data.aug_scale), shift=float(data.aug_shift),
                   yaw=bool(int(data.aug_yaw)))

    @property
    def on(self) -> bool:
        return self.scale > 0 or self.shift > 0 or self.yaw


def transform(key: jax.Array, aug: Augment) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(s (), R (3, 3), t (3,)) of one sample."""
    k_s, k_r, k_t = jax.random.split(key, 3)
    s = jax.random.uniform(k_s, (), minval=1.0 - aug.scale, maxval=1.0 + aug.scale)
    angle = jax.random.uniform(k_r, (), maxval=2 * jnp.pi) if aug.yaw else jnp.zeros(())
    c, n = jnp.cos(angle), jnp.sin(angle)
    rot = jnp.array([[c, -n, 0.0], [n, c, 0.0], [0.0, 0.0, 1.0]])
    t = jax.random.uniform(k_t, (3,), minval=-aug.shift, maxval=aug.shift)
    return s, rot, t


def apply_one(pools: Mapping[str, jax.Array], key: jax.Array, aug: Augment
              ) -> dict[str, jax.Array]:
    """One sample's pools (no batch axis) under its random transform."""
    s, rot, t = transform(key, aug)
    out = dict(pools)
    out["pt_xyz"] = s * pools["pt_xyz"] @ rot.T + t
    out["pt_dist"] = s * pools["pt_dist"]
    if pools.get("ray_o") is not None:
        out["ray_o"] = s * pools["ray_o"] @ rot.T + t
        out["ray_d"] = pools["ray_d"] @ rot.T
        out["ray_t"] = s * pools["ray_t"]
        out["ray_n"] = pools["ray_n"] @ rot.T
    return out


def apply(aug: Augment, batch: Mapping[str, Any], key: jax.Array) -> dict[str, Any]:
    """The batch's pools, each sample under its own transform (keyed by its sample_id)."""
    if not aug.on:
        return dict(batch)
    fields = ["pt_xyz", "pt_dist"] + [k for k in ("ray_o", "ray_d", "ray_t", "ray_n")
                                      if batch.get(k) is not None]
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(batch["sample_id"])
    moved = jax.vmap(lambda p, k: apply_one(p, k, aug))({f: batch[f] for f in fields}, keys)
    return {**batch, **moved}
