"""Original `.pt` checkpoints -> our Flax parameter tree (and back).

Name mapping (torch state dict -> Flax params; `W.T` = transposed, torch Linear is (out, in)):

  pos_emb                                     pos_emb                               (1, L, d)
  type_emb.weight                             type_emb/embedding                    (n_types, d)
  token_mlp.{0,2}.weight / .bias              token_mlp_{0,2}/kernel (W.T) / bias
  backbone.enc.layers.{i}.self_attn.in_proj_weight / in_proj_bias
                                              backbone/layers_{i}/self_attn/in_proj_kernel (W.T)
                                              / in_proj_bias                        (d, 3d) / (3d,)
  backbone.enc.layers.{i}.self_attn.out_proj.weight / .bias
                                              backbone/layers_{i}/self_attn/out_proj/kernel / bias
  backbone.enc.layers.{i}.linear{1,2}.weight / .bias
                                              backbone/layers_{i}/linear{1,2}/kernel (W.T) / bias
  backbone.enc.layers.{i}.norm{1,2}.weight / .bias
                                              backbone/layers_{i}/norm{1,2}/scale / bias
  pred_head.weight / .bias                    pred_head/kernel (W.T) / bias
  final_norm.weight / .bias                   final_ln/scale / bias   (ours, opt-in
                                              `model.final_norm`; the original has none)
  answer_head.weight / .bias                  answer_proj/kernel (W.T) / bias  (ours, opt-in
                                              `train.answer_loss_weight`)

Sizes come from the tensors (d_model, n_types, layers, mlp width, max_len); only the head
count is not recoverable from shapes and comes from the checkpoint's `args["heads"]`.
Every expected key must be present with the expected shape and nothing else may be there;
errors name the key and both shapes.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from typing import Any, Mapping

import numpy as np

from nepa3d_jax.checkpoint.torch_file import CheckpointError, load_torch_file
from nepa3d_jax.model.pos_emb import resize_pos_emb

__all__ = ["CheckpointError", "read_torch_checkpoint", "import_torch_checkpoint"]

LAYER_KEY = re.compile(r"^backbone\.enc\.layers\.(\d+)\.")
_LAYER_PARTS = {  # torch suffix -> (flax path under layers_i, transpose)
    "self_attn.in_proj_weight": (("self_attn", "in_proj_kernel"), True),
    "self_attn.in_proj_bias": (("self_attn", "in_proj_bias"), False),
    "self_attn.out_proj.weight": (("self_attn", "out_proj", "kernel"), True),
    "self_attn.out_proj.bias": (("self_attn", "out_proj", "bias"), False),
    "linear1.weight": (("linear1", "kernel"), True),
    "linear1.bias": (("linear1", "bias"), False),
    "linear2.weight": (("linear2", "kernel"), True),
    "linear2.bias": (("linear2", "bias"), False),
    "norm1.weight": (("norm1", "scale"), False),
    "norm1.bias": (("norm1", "bias"), False),
    "norm2.weight": (("norm2", "scale"), False),
    "norm2.bias": (("norm2", "bias"), False),
}
_TOP_PARTS = {
    "pos_emb": (("pos_emb",), False),
    "type_emb.weight": (("type_emb", "embedding"), False),
    "token_mlp.0.weight": (("token_mlp_0", "kernel"), True),
    "token_mlp.0.bias": (("token_mlp_0", "bias"), False),
    "token_mlp.2.weight": (("token_mlp_2", "kernel"), True),
    "token_mlp.2.bias": (("token_mlp_2", "bias"), False),
    "pred_head.weight": (("pred_head", "kernel"), True),
    "pred_head.bias": (("pred_head", "bias"), False),
}
_FINAL_NORM_PARTS = {  # only in models built with model.final_norm (not the original's)
    "final_norm.weight": (("final_ln", "scale"), False),
    "final_norm.bias": (("final_ln", "bias"), False),
}
_ANSWER_HEAD_PARTS = {  # only in models pretrained with train.answer_loss_weight > 0
    "answer_head.weight": (("answer_proj", "kernel"), True),
    "answer_head.bias": (("answer_proj", "bias"), False),
}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """QueryNepa sizes read off a state dict (+ the head count from args)."""
    d_model: int
    layers: int
    heads: int
    mlp_dim: int
    max_len: int
    n_types: int
    feat_dim: int = 15
    final_norm: bool = False
    answer_head: bool = False

    @property
    def mlp_ratio(self) -> float:
        return self.mlp_dim / self.d_model

    def model_kwargs(self) -> dict[str, Any]:
        return dict(d_model=self.d_model, layers=self.layers, heads=self.heads,
                    mlp_ratio=self.mlp_ratio, max_len=self.max_len, n_types=self.n_types,
                    feat_dim=self.feat_dim, final_norm=self.final_norm,
                    answer_head=self.answer_head)


def mapping_table(layers: int, final_norm: bool = False, answer_head: bool = False
                  ) -> dict[str, tuple[tuple[str, ...], bool]]:
    """torch key -> (Flax param path, transpose) for a model with `layers` layers."""
    table = dict(_TOP_PARTS)
    if final_norm:
        table.update(_FINAL_NORM_PARTS)
    if answer_head:
        table.update(_ANSWER_HEAD_PARTS)
    for i in range(layers):
        for suffix, (path, transpose) in _LAYER_PARTS.items():
            table[f"backbone.enc.layers.{i}.{suffix}"] = (("backbone", f"layers_{i}") + path,
                                                         transpose)
    return table


def expected_shapes(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """torch key -> the torch tensor shape a model of `spec` has."""
    d, m = spec.d_model, spec.mlp_dim
    shapes = {
        "pos_emb": (1, spec.max_len, d), "type_emb.weight": (spec.n_types, d),
        "token_mlp.0.weight": (d, spec.feat_dim), "token_mlp.0.bias": (d,),
        "token_mlp.2.weight": (d, d), "token_mlp.2.bias": (d,),
        "pred_head.weight": (d, d), "pred_head.bias": (d,),
    }
    if spec.final_norm:
        shapes.update({"final_norm.weight": (d,), "final_norm.bias": (d,)})
    if spec.answer_head:
        shapes.update({"answer_head.weight": (spec.feat_dim, d),
                       "answer_head.bias": (spec.feat_dim,)})
    per_layer = {
        "self_attn.in_proj_weight": (3 * d, d), "self_attn.in_proj_bias": (3 * d,),
        "self_attn.out_proj.weight": (d, d), "self_attn.out_proj.bias": (d,),
        "linear1.weight": (m, d), "linear1.bias": (m,), "linear2.weight": (d, m),
        "linear2.bias": (d,), "norm1.weight": (d,), "norm1.bias": (d,), "norm2.weight": (d,),
        "norm2.bias": (d,),
    }
    for i in range(spec.layers):
        shapes.update({f"backbone.enc.layers.{i}.{k}": v for k, v in per_layer.items()})
    return shapes


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in x.shape)


def infer_spec(state: Mapping[str, Any], heads: int, where: str = "state dict") -> ModelSpec:
    """Sizes from the tensors; raises CheckpointError naming what is missing."""
    for key in ("type_emb.weight", "pos_emb", "token_mlp.0.weight"):
        if key not in state:
            raise CheckpointError(f"{where}: missing key {key!r} (not a QueryNepa state dict?)")
    if len(_shape(state["pos_emb"])) != 3:
        raise CheckpointError(f"{where}: 'pos_emb' must be (1, L, d), got "
                              f"{_shape(state['pos_emb'])}")
    d = _shape(state["pos_emb"])[2]  # d_model; the other tables must agree, named if not
    for key, axis in (("type_emb.weight", 1), ("token_mlp.0.weight", 0)):
        shape = _shape(state[key])
        if len(shape) != 2 or shape[axis] != d:
            raise CheckpointError(f"{where}: {key!r} has shape {shape}, but 'pos_emb' "
                                  f"{_shape(state['pos_emb'])} says d_model={d}")
    n_types = _shape(state["type_emb.weight"])[0]
    layer_ids = sorted({int(m.group(1)) for k in state if (m := LAYER_KEY.match(k))})
    layers = len(layer_ids)
    mlp_key = "backbone.enc.layers.0.linear1.weight"
    mlp_dim = _shape(state[mlp_key])[0] if mlp_key in state else 4 * d
    heads = int(heads)
    if heads <= 0 or d % heads:
        raise CheckpointError(f"{where}: heads={heads} does not divide d_model={d}")
    return ModelSpec(d_model=d, layers=layers, heads=heads, mlp_dim=mlp_dim,
                     max_len=_shape(state["pos_emb"])[1], n_types=n_types,
                     feat_dim=_shape(state["token_mlp.0.weight"])[1],
                     final_norm="final_norm.weight" in state,
                     answer_head="answer_head.weight" in state)


def state_dict_to_params(state: Mapping[str, Any], spec: ModelSpec, *,
                         max_len: int | None = None, where: str = "state dict") -> dict:
    """Flax params (float32 numpy) of a torch state dict; pos_emb resized to `max_len`."""
    want = expected_shapes(spec)
    missing = sorted(set(want) - set(state))
    unexpected = sorted(set(state) - set(want))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:20]}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:20]}")
        raise CheckpointError(f"{where}: state dict does not match QueryNepa "
                              f"(layers={spec.layers}, d_model={spec.d_model}): "
                              + "; ".join(parts))
    for key, shape in want.items():
        if _shape(state[key]) != shape:
            raise CheckpointError(f"{where}: {key!r} has shape {_shape(state[key])}, expected "
                                  f"{shape}")
    params: dict = {}
    for key, (path, transpose) in mapping_table(spec.layers, spec.final_norm,
                                                 spec.answer_head).items():
        value = _to_numpy(state[key])
        if transpose:
            value = np.ascontiguousarray(value.T)
        node = params
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = value
    if max_len is not None and int(max_len) != spec.max_len:
        params["pos_emb"] = resize_pos_emb(params["pos_emb"], int(max_len))
    return params


def params_to_state_dict(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The inverse mapping: Flax params -> torch-named float32 numpy arrays."""
    layers = len([k for k in params.get("backbone", {}) if k.startswith("layers_")])
    out = {}
    for key, (path, transpose) in mapping_table(layers, "final_ln" in params,
                                                 "answer_proj" in params).items():
        node: Any = params
        for p in path:
            node = node[p]
        value = np.asarray(node, np.float32)
        out[key] = np.ascontiguousarray(value.T) if transpose else value
    return out


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        return x.detach().cpu().float().numpy()
    return np.asarray(x, np.float32)


def read_torch_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """An original checkpoint read by `load_torch_file` (weights-only); checks `model` is there."""
    path = os.fspath(path)
    ckpt = load_torch_file(path)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        keys = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: no 'model' entry (found {keys}); expected the "
                              "original's {'model', 'args', ...} checkpoint")
    if not isinstance(ckpt["model"], Mapping):
        raise CheckpointError(f"{path}: 'model' is {type(ckpt['model']).__name__}, expected a "
                              "state dict")
    args = ckpt.get("args") or {}
    if isinstance(args, argparse.Namespace):
        args = vars(args)
    if not isinstance(args, Mapping):
        raise CheckpointError(f"{path}: 'args' is {type(args).__name__}, expected a dict or an "
                              "argparse.Namespace of the original's training arguments")
    return {"model": dict(ckpt["model"]), "args": dict(args),
            "epoch": ckpt.get("epoch"), "step": ckpt.get("step")}


def import_torch_checkpoint(path: str | os.PathLike, *, max_len: int | None = None,
                            strict_args: bool = True) -> tuple[Any, dict, ModelSpec]:
    """(config, params, spec) of an original `.pt`; pos_emb resized when `max_len` differs.

    `config` is `config_from_torch_args(args)`; `config.data.max_len` stays what the run
    trained with, `spec.max_len` is the (possibly resized) table length of `params`.
    """
    from nepa3d_jax.config.torch_args import config_from_torch_args

    ckpt = read_torch_checkpoint(path)
    args = ckpt["args"]
    where = os.fspath(path)
    if "heads" not in args:
        raise CheckpointError(f"{where}: args has no 'heads' (the head count is not "
                              "recoverable from the weights)")
    try:
        config = config_from_torch_args(args, strict=strict_args)
    except ValueError as err:
        raise CheckpointError(f"{where}: {err}") from err
    spec = infer_spec(ckpt["model"], int(args["heads"]), where)
    for name, value in (("layers", spec.layers), ("d_model", spec.d_model)):
        if int(args.get(name, value)) != value:
            raise CheckpointError(f"{where}: args[{name!r}]={args[name]} but the weights have "
                                  f"{name}={value}")
    params = state_dict_to_params(ckpt["model"], spec, max_len=max_len, where=where)
    if max_len is not None:
        spec = dataclasses.replace(spec, max_len=int(max_len))
    return config, params, spec
