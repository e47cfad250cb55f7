"""Resolving a classification config against its checkpoint: backbone, sizes, tokens,
readout, and the protocol lines a reader audits (first lines of the log).

Resolution follows the original: n_point / n_ray default to (and are capped at) the
pretrain values unless `allow_scale_up`; qa_tokens / add_eos come from the checkpoint
unless set; `max_len` -1 = max(checkpoint table, required length), the positional table
resized by linear interpolation when it changes.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from nepa3d_jax.config.schedule import LR_SCHEDULES
from nepa3d_jax.data.schema import BACKENDS
from nepa3d_jax.eval.cls import augment as cls_augment
from nepa3d_jax.eval.cls import model as cls_model
from nepa3d_jax.eval.cls import pooling as cls_pooling
from nepa3d_jax.tokenizer import modes as tok_modes
from nepa3d_jax.tokenizer.types import FEAT_DIM, sequence_length


def _get(cfg: Any, dotted: str, default=None):
    node = cfg
    for part in dotted.split("."):
        if node is None:
            return default
        try:
            node = node[part] if isinstance(node, dict) else getattr(node, part)
        except (AttributeError, KeyError):
            return default
    return default if node is None else node


def check_fields(c: ml_collections.ConfigDict) -> None:
    """Errors name the config field; raised before anything is read or compiled."""
    def choice(name, value, allowed):
        if value not in allowed:
            raise ValueError(f"config.{name}={value!r}: expected one of {tuple(allowed)}")
    choice("backend", c.backend, BACKENDS)
    if c.out_json and os.path.isdir(str(c.out_json)):
        raise ValueError(f"config.out_json={c.out_json!r} is a directory; name the result file")
    for name in ("train_backend", "eval_backend"):
        if c[name]:
            choice(name, c[name], BACKENDS)
    choice("cls_pooling", c.cls_pooling, cls_pooling.MODES)
    choice("aug_preset", c.aug_preset, cls_augment.PRESETS)
    choice("pt_sample_mode_train", c.pt_sample_mode_train, tok_modes.PT_SAMPLE_MODES)
    choice("pt_sample_mode_eval", c.pt_sample_mode_eval, tok_modes.PT_SAMPLE_MODES)
    choice("point_order_mode", c.point_order_mode, tok_modes.POINT_ORDER_MODES)
    choice("qa_layout", c.qa_layout, tok_modes.QA_LAYOUTS)
    if c.ckpt and not os.path.exists(c.ckpt):
        raise ValueError(f"config.ckpt={c.ckpt} does not exist (our run directory or an "
                         "original .pt; empty = from scratch)")
    if not c.cache_root:
        raise ValueError("config.cache_root is empty")
    if not 0.0 <= c.val_ratio < 1.0:
        raise ValueError(f"config.val_ratio={c.val_ratio} must be in [0, 1)")
    for name in ("epochs", "batch"):
        if int(c[name]) <= 0:
            raise ValueError(f"config.{name}={c[name]} must be positive")
    if c.lr <= 0:
        raise ValueError(f"config.lr={c.lr} must be positive")
    choice("lr_schedule", c.lr_schedule, LR_SCHEDULES)
    if not isinstance(c.lr_warmup_epochs, int) or not 0 <= c.lr_warmup_epochs < int(c.epochs):
        raise ValueError(f"config.lr_warmup_epochs={c.lr_warmup_epochs!r} must be a whole "
                         f"number in [0, epochs={c.epochs})")
    if c.lr_warmup_epochs and c.lr_schedule != "cosine":
        raise ValueError(f"config.lr_warmup_epochs={c.lr_warmup_epochs} needs "
                         f"lr_schedule='cosine' (got {c.lr_schedule!r}: no warmup)")
    if c.head_norm not in (0, 1):  # True / False compare equal to 1 / 0
        raise ValueError(f"config.head_norm={c.head_norm!r}: expected 0 or 1")
    if not c.ckpt and int(c.n_point) <= 0:
        raise ValueError("config.n_point must be set (> 0) when training from scratch (ckpt='')")
    if int(c.mc_eval_k) < 1:
        raise ValueError(f"config.mc_eval_k={c.mc_eval_k} must be >= 1")


def apply_full_spec(c: ml_collections.ConfigDict) -> list[str]:
    """`full_spec_readout`: keep what A/C/D were pretrained with (query pool with its
    distances, rays at the pretrain count) instead of the plan's xyz-only protocol.
    Returns the field changes, for the log."""
    if not c.full_spec_readout:
        return []
    changes = []
    for name, value in (("pt_xyz_key", "pt_xyz_pool"), ("ablate_point_dist", 0), ("n_ray", -1)):
        if c[name] != value:
            changes.append(f"{name}: {c[name]!r} -> {value!r}")
            c[name] = value
    return changes


@dataclasses.dataclass
class Resolved:
    backbone: cls_model.Backbone
    n_point: int
    n_ray: int
    qa_tokens: bool
    add_eos: bool
    seq_len: int
    notes: list[str]


def pretrained_backbone(ckpt: str) -> cls_model.Backbone:
    from nepa3d_jax.checkpoint import load_pretrained
    pre = load_pretrained(ckpt)
    _, pos = cls_model.find_pos_emb(pre.params)
    cfg = pre.config
    pretrain = dict(
        n_point=int(_get(cfg, "data.n_point", 0)), n_ray=int(_get(cfg, "data.n_ray", 0)),
        qa_tokens=_get(cfg, "data.qa_tokens", None), add_eos=_get(cfg, "data.add_eos", None),
        qa_layout=_get(cfg, "data.qa_layout", "interleave"),
        point_order_mode=_get(cfg, "data.point_order_mode", "morton"),
        pt_xyz_key=_get(cfg, "data.pt_xyz_key", "pt_xyz_pool"), seed=_get(cfg, "seed", 0))
    return cls_model.Backbone(model=pre.model, params=pre.params, d_model=int(pos.shape[2]),
                              max_len=int(pos.shape[1]), pretrain=pretrain, source=ckpt)


def _type_rows(params: Any) -> int | None:
    rows = []

    def visit(path, leaf):
        names = [str(getattr(p, "key", getattr(p, "name", ""))) for p in path]
        if any("type_emb" in n for n in names) and np.ndim(leaf) == 2:
            rows.append(int(np.shape(leaf)[0]))
    jax.tree_util.tree_map_with_path(visit, params)
    return rows[0] if len(rows) == 1 else None


def resolve(c: ml_collections.ConfigDict) -> Resolved:
    """Backbone with its final positional length plus the token settings of the fine-tune."""
    notes: list[str] = []
    if c.ckpt:
        bb = pretrained_backbone(c.ckpt)
        pre = bb.pretrain
        n_types = _type_rows(bb.params)
        qa = bool(c.qa_tokens) if c.qa_tokens >= 0 else bool(
            pre["qa_tokens"] if pre["qa_tokens"] is not None else (n_types or 9) >= 9)
        eos = bool(c.add_eos) if c.add_eos >= 0 else bool(
            pre["add_eos"] if pre["add_eos"] is not None else (n_types or 9) >= 5)
        sizes = {}
        for name in ("n_point", "n_ray"):
            want, have = int(c[name]), int(pre[name])
            if want < 0:
                sizes[name] = have
            elif want > have and not c.allow_scale_up:
                notes.append(f"[sizes] requested {name}={want} > pretrain {name}={have}; capping "
                             "(set allow_scale_up=1 to override)")
                sizes[name] = have
            else:
                if want > have:
                    notes.append(f"[sizes] scale-up: {name} {have} -> {want}")
                sizes[name] = want
        n_point, n_ray = sizes["n_point"], sizes["n_ray"]
    else:
        qa = bool(max(int(c.qa_tokens), 0))
        eos = bool(c.add_eos) if c.add_eos >= 0 else True
        n_point, n_ray = int(c.n_point), max(int(c.n_ray), 0)
        bb = None
    if n_point <= 0:
        raise ValueError(f"n_point resolved to {n_point}: set config.n_point")
    seq_len = sequence_length(n_point, n_ray, qa, eos)
    if bb is not None:
        if c.max_len >= 0:
            if c.max_len < seq_len:
                raise ValueError(f"config.max_len={c.max_len} < required sequence length "
                                 f"{seq_len} (qa_tokens={qa}, add_eos={eos}, "
                                 f"n_point={n_point}, n_ray={n_ray})")
            new_len = int(c.max_len)
        else:
            new_len = max(bb.max_len, seq_len)
        if new_len != bb.max_len:
            notes.append(f"[ckpt] resizing pos_emb: ckpt_len={bb.max_len} -> max_len={new_len}")
            bb = dataclasses.replace(bb, model=bb.model.clone(max_len=new_len),
                                     params=cls_model.with_pos_len(bb.params, new_len),
                                     max_len=new_len)
    else:  # parameters are made by `materialize` once the data has been read
        bb = cls_model.Backbone(model=None, params=None, d_model=int(c.scratch.d_model),
                                max_len=max(int(c.max_len), seq_len), pretrain={},
                                source="scratch")
    return Resolved(bb, n_point, n_ray, qa, eos, seq_len, notes)


def materialize(r: Resolved, s: ml_collections.ConfigDict, key: jax.Array) -> None:
    """Initialises a from-scratch backbone (QueryNepa from `config.scratch`) in place."""
    bb = r.backbone
    if bb.params is not None:
        return
    from nepa3d_jax.model import QueryNepa
    bb.model = QueryNepa(d_model=int(s.d_model), layers=int(s.layers), heads=int(s.heads),
                         mlp_ratio=float(s.mlp_ratio), max_len=int(bb.max_len),
                         attention=str(s.attention))
    feat = jnp.zeros((1, r.seq_len, FEAT_DIM), jnp.float32)
    type_id = jnp.zeros((1, r.seq_len), jnp.int32)
    init = jax.jit(lambda k, f, t: bb.model.init(k, f, t, is_causal=False)["params"])
    bb.params = init(key, feat, type_id)  # one compile instead of one per eager op
