"""`load_pretrained(path)`: a QueryNepa ready for inference from an original `.pt` or one of
our run directories, with a jit-compiled `forward`.

    pre = load_pretrained("runs/runA")            # or ".../last.pt"
    z, z_hat, h = pre.forward(feat_BTF, type_id_BT)                # causal
    _, _, h = pre.forward(feat_BTF, type_id_BT, is_causal=False)   # bidirectional
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from nepa3d_jax.checkpoint import torch_import
from nepa3d_jax.config.loading import fill_defaults
from nepa3d_jax.model import QueryNepa
from nepa3d_jax.model.pos_emb import resize_pos_emb


@dataclasses.dataclass
class Pretrained:
    """A loaded backbone. `config` is what the run trained with (ConfigDict, model + data
    fields); `params` may hold a resized positional table (`max_len`)."""
    config: ml_collections.ConfigDict
    params: Any
    model: QueryNepa
    source: str
    _fns: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def max_len(self) -> int:
        return int(self.model.max_len)

    def _fn(self, is_causal: bool) -> Callable:
        if is_causal not in self._fns:
            model = self.model

            def fn(params, feat, type_id):
                return model.apply({"params": params}, feat, type_id, is_causal=is_causal)
            self._fns[is_causal] = jax.jit(fn)
        return self._fns[is_causal]

    def forward(self, feat: Any, type_id: Any, is_causal: bool = True
                ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(z, z_hat, h) for feat (B, T, 15) / type_id (B, T); unbatched (T, 15) / (T,) too."""
        feat = jnp.asarray(feat, jnp.float32)
        type_id = jnp.asarray(type_id, jnp.int32)
        unbatched = feat.ndim == 2
        if unbatched:
            feat, type_id = feat[None], type_id[None]
        if feat.ndim != 3 or type_id.shape != feat.shape[:2]:
            raise ValueError(f"forward expects feat (B, T, F) and type_id (B, T), got "
                             f"{feat.shape} and {type_id.shape}")
        if feat.shape[1] > self.max_len:
            raise ValueError(f"sequence length {feat.shape[1]} exceeds max_len={self.max_len} "
                             f"of {self.source}; load with load_pretrained(..., max_len=N)")
        out = self._fn(bool(is_causal))(self.params, feat, type_id)
        return tuple(o[0] for o in out) if unbatched else out


def _spec_from_params(params: Any, heads: int, where: str) -> torch_import.ModelSpec:
    try:
        state = torch_import.params_to_state_dict(params)
    except (KeyError, TypeError) as err:
        raise torch_import.CheckpointError(f"{where}: params are not a QueryNepa tree "
                                           f"(missing {err})") from err
    return torch_import.infer_spec(state, heads, where)


def check_params(model: QueryNepa, params: Any, where: str) -> None:
    """Raise CheckpointError naming the first param whose path or shape differs from `model`."""
    feat = jax.ShapeDtypeStruct((1, 2, model.feat_dim), jnp.float32)
    tid = jax.ShapeDtypeStruct((1, 2), jnp.int32)
    want = jax.eval_shape(model.init, jax.random.key(0), feat, tid)["params"]
    got = {jax.tree_util.keystr(p): tuple(np.shape(x))
           for p, x in jax.tree_util.tree_leaves_with_path(params)}
    exp = {jax.tree_util.keystr(p): tuple(x.shape)
           for p, x in jax.tree_util.tree_leaves_with_path(want)}
    for key in sorted(exp.keys() | got.keys()):
        if key not in got:
            raise torch_import.CheckpointError(f"{where}: missing param {key}")
        if key not in exp:
            raise torch_import.CheckpointError(f"{where}: unexpected param {key}")
        if got[key] != exp[key]:
            raise torch_import.CheckpointError(f"{where}: param {key} has shape {got[key]}, "
                                               f"expected {exp[key]}")


def check_finite(params: Any, where: str) -> None:
    """Raise CheckpointError naming the first param holding NaN/Inf (a diverged run): scores
    computed from such weights would be NaN and mean nothing."""
    for p, x in jax.tree_util.tree_leaves_with_path(params):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(np.asarray(x))))
        if bad:
            raise torch_import.CheckpointError(
                f"{where}: param {jax.tree_util.keystr(p)} holds {bad} non-finite value(s) "
                "(the run diverged?); refusing to evaluate it")


def _from_run_dir(path: str, max_len: int | None):
    from nepa3d_jax.checkpoint import run_dir

    config, params = run_dir.load_params(path)
    heads = int(config.model.heads) if "model" in config and "heads" in config.model else 0
    if heads <= 0:
        raise torch_import.CheckpointError(f"{path}: config has no model.heads")
    spec = _spec_from_params(params, heads, path)
    if max_len is not None and int(max_len) != spec.max_len:
        params = dict(params)
        params["pos_emb"] = resize_pos_emb(np.asarray(params["pos_emb"]), int(max_len))
        spec = dataclasses.replace(spec, max_len=int(max_len))
    # A run of an older version may lack newer fields (model.heads was checked above).
    return fill_defaults(config), params, spec


def load_pretrained(path: str | os.PathLike, *, max_len: int | None = None,
                    attention: str | None = None, dtype: Any = jnp.float32) -> Pretrained:
    """QueryNepa + params from an original `.pt` or our run directory.

    `max_len`: resize the positional table to this many rows (the original's linear
    interpolation) when it differs from the checkpoint's. `attention`: override the
    implementation (default: the run's `model.attention`, else "auto").
    """
    path = os.fspath(path)
    if pathlib.Path(path).is_dir():
        config, params, spec = _from_run_dir(path, max_len)
    elif pathlib.Path(path).is_file():
        config, params, spec = torch_import.import_torch_checkpoint(path, max_len=max_len)
    else:
        raise FileNotFoundError(f"no checkpoint file or run directory at {path}")
    if attention is None:
        attention = str(config.model.attention)
    # The type table's init std is no shape: it comes from the run's config, so a random-init
    # baseline of this checkpoint draws its parameters as the run did.
    model = QueryNepa(attention=attention, dtype=dtype, type_emb_std=float(config.model.type_emb_std),
                      **spec.model_kwargs())
    check_params(model, params, path)
    check_finite(params, path)
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
    return Pretrained(config=config, params=params, model=model, source=path)
