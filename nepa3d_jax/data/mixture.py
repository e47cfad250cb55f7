"""Weighted mixtures of cache corpora and the per-epoch sample order.

Sampling follows the original's mixture sampler exactly (it is plain numpy, so the index stream
is reproduced bit for bit): epoch `e` uses `np.random.RandomState((seed + 1009 * e) mod 2^32)`;
with replacement each sample draws a component from the normalised weights (one uniform draw
against the weight CDF) and then a uniform file of that component (`randint`); without
replacement it draws `num_samples` distinct global indices, ignoring the weights (the original's
debugging mode). Global indices address the components' sorted file lists (a TFDS build keeps that
order: `data.sources`) concatenated in component order (YAML order for `mix_config`; for an inline
`config.data.mix`, components with an `order` field >= 0 by that order, then the others by name,
the order ml_collections iterates).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from nepa3d_jax.data import sources
from nepa3d_jax.data.schema import BACKENDS, CacheError

# Per-component settings the original's YAML may override for its dataset.
COMPONENT_OVERRIDES = ("drop_ray_prob", "force_missing_ray", "add_eos", "voxel_grid",
                       "voxel_dilate", "voxel_max_steps")


@dataclasses.dataclass(frozen=True)
class MixComponent:
    name: str
    cache_root: str
    split: str
    backend: str
    weight: float
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class MixSpec:
    components: tuple[MixComponent, ...]
    num_samples: int  # 0: one pass worth (total file count)
    seed: int
    replacement: bool


def _as_bool(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "y", "on")
    return bool(v)


def _resolve_root(root: str, base_dir: str) -> str:
    """The original resolves roots against the working directory; fall back to the YAML's folder."""
    if os.path.isabs(root) or os.path.isdir(root):
        return root
    alt = os.path.join(base_dir, root)
    return alt if os.path.isdir(alt) else root


def load_mix_yaml(path: str) -> tuple[list[MixComponent], dict[str, Any]]:
    """Components and top-level fields of an original-format mix YAML (`datasets: [...]`)."""
    import yaml  # local: only needed for mix_config runs

    try:
        with open(path) as f:
            cfg = yaml.safe_load(f)
    except OSError as e:
        raise ValueError(f"config.data.mix_config: cannot read {path}: {e}") from e
    items = (cfg or {}).get("datasets")
    if not isinstance(items, list) or not items:
        raise ValueError(f"{path}: mix config needs a non-empty 'datasets' list")
    base_dir = os.path.dirname(os.path.abspath(path))
    comps = []
    for i, d in enumerate(items):
        if not isinstance(d, dict) or "cache_root" not in d:
            raise ValueError(f"{path}: datasets[{i}] must be a mapping with 'cache_root'")
        comps.append(MixComponent(
            name=str(d.get("name", f"ds{i}")),
            cache_root=_resolve_root(str(d["cache_root"]), base_dir),
            split=str(d.get("split", "train")),
            backend=str(d.get("backend", "mesh")),
            weight=float(d.get("weight", 1.0)),
            overrides={k: d[k] for k in COMPONENT_OVERRIDES if k in d}))
    return comps, cfg


def _component_rank(item: tuple[str, Any]) -> tuple[bool, int, str]:
    """Inline components with `order` >= 0 first (by order), the rest by name."""
    name, comp = item
    order = int(comp.order)
    return (order < 0, order, name)


def mix_spec_from_config(data_cfg: Any) -> MixSpec:
    """MixSpec from `config.data`: `mix_config` (a YAML, replacing `mix`) or the inline `mix`.

    With a YAML, `mix_num_samples > 0` and `mix_seed != 0` in the config override the YAML's
    values (the original's command-line rule); `replacement` comes from the YAML.
    """
    if data_cfg.mix_config:
        comps, top = load_mix_yaml(str(data_cfg.mix_config))
        # The YAML's keys (the original's format), used where the config leaves them at 0.
        n = int(data_cfg.mix_num_samples or 0) or int(top.get("mix_num_samples", 0) or 0)
        seed = int(data_cfg.mix_seed or 0) or int(top.get("mix_seed", 0) or 0)
        repl = _as_bool(top.get("replacement", True))
    else:
        mix = data_cfg.mix
        if not mix:
            raise ValueError("config.data.mix is empty and config.data.mix_config is not set")
        comps = []
        for name, c in sorted(mix.items(), key=_component_rank):
            missing = [f for f in ("cache_root", "backend", "weight") if f not in c]
            if missing:
                raise ValueError(f"config.data.mix.{name}: missing field(s) {', '.join(missing)}")
            comps.append(MixComponent(
                name=name, cache_root=str(c["cache_root"]), split=str(c["split"]),
                backend=str(c["backend"]), weight=float(c["weight"]),
                overrides={k: c[k] for k in COMPONENT_OVERRIDES if k in c}))
        n = int(data_cfg.mix_num_samples or 0)
        seed = int(data_cfg.mix_seed or 0)
        repl = bool(data_cfg.replacement)
    for c in comps:
        if c.backend not in BACKENDS:
            raise ValueError(f"mix component '{c.name}': unknown backend '{c.backend}' "
                             f"(choose from {', '.join(BACKENDS)})")
    return MixSpec(tuple(comps), n, seed, repl)


class Mixture:
    """The files of every component and the seeded per-epoch order over them."""

    def __init__(self, spec: MixSpec):
        self.spec = spec
        w = np.array([c.weight for c in spec.components], np.float64)
        if w.size == 0 or (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
            raise ValueError(f"mix weights must be finite, >= 0 and not all 0; got {w.tolist()}")
        self.weights = w / w.sum()
        self.files: list[list[str]] = []
        self.sources: list[sources.Source] = []
        for c in spec.components:
            try:
                src = sources.open_split(c.cache_root, c.split)
            except CacheError as e:
                raise CacheError(f"mix component '{c.name}' ({c.cache_root}/{c.split}): {e}") from e
            if not src.names:
                detail = "; ".join(src.layout_problems()) or "no .npz files"
                raise CacheError(f"mix component '{c.name}' ({c.cache_root}/{c.split}): {detail}")
            self.sources.append(src)
            self.files.append(src.names)
        self.sizes = np.array([len(f) for f in self.files], np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)
        self.num_samples = int(spec.num_samples) or int(self.sizes.sum())
        if not spec.replacement and self.num_samples > self.sizes.sum():
            raise ValueError(f"mix_num_samples={self.num_samples} > {int(self.sizes.sum())} "
                             "files with replacement=False")
        self._cache: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self.sizes.sum())

    def locate(self, global_index: int) -> tuple[int, int]:
        """(component id, file index within it) of a global index."""
        comp = int(np.searchsorted(self.offsets, global_index, side="right") - 1)
        return comp, int(global_index - self.offsets[comp])

    def path(self, global_index: int) -> str:
        comp, local = self.locate(global_index)
        return self.files[comp][local]

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """(num_samples,) int64 global indices of epoch `epoch` (same on every host)."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        rng = np.random.RandomState((self.spec.seed + 1009 * int(epoch)) & 0xFFFFFFFF)
        if self.spec.replacement:
            cdf = np.cumsum(self.weights)
            cdf /= cdf[-1]
            sizes = self.sizes.tolist()
            offsets = self.offsets.tolist()
            out = np.empty((self.num_samples,), np.int64)
            for i in range(self.num_samples):
                comp = int(cdf.searchsorted(rng.random_sample(), side="right"))
                out[i] = offsets[comp] + rng.randint(0, sizes[comp])
        else:
            out = rng.choice(int(self.sizes.sum()), size=self.num_samples,
                             replace=False).astype(np.int64)
        self._cache = (int(epoch), out)
        return out
