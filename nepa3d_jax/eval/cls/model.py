"""The classification model: a (pretrained) QueryNepa backbone, a pooling readout over its
hidden states `h`, and one linear layer (the original's `ClsWrapper`: no extra MLP, no
dropout). Parameters are a plain tree `{"backbone": ..., "head": {"kernel", "bias"}}`.

`head_norm` (opt-in, not the original): a LayerNorm with learned scale and bias on the pooled
vector before the linear layer (the `fc_norm` of ViT classifiers), parameters
`{"fc_norm": {"scale", "bias"}}` beside the head. Without it the pooled feature carries the
offset every shape shares (the type embedding, issue 24), which the head must learn around.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nepa3d_jax.eval.cls import pooling as cls_pooling
from nepa3d_jax.model.pos_emb import resize_pos_emb
from nepa3d_jax.model.transformer import LN_EPS


@dataclasses.dataclass
class Backbone:
    """What the fine-tune needs from a pretrained (or fresh) QueryNepa."""
    model: Any                 # flax QueryNepa
    params: Any                # its parameter tree
    d_model: int
    max_len: int
    pretrain: dict             # pretrain data settings (n_point, n_ray, qa_tokens, add_eos, ...)
    source: str                # "scratch" or the checkpoint path


def init_head(key: jax.Array, d_model: int, n_classes: int) -> dict:
    """Torch `nn.Linear` default init: kernel and bias ~ U(-1/sqrt(d), 1/sqrt(d))."""
    bound = 1.0 / np.sqrt(d_model)
    k_w, k_b = jax.random.split(key)
    return dict(
        kernel=jax.random.uniform(k_w, (d_model, n_classes), jnp.float32, -bound, bound),
        bias=jax.random.uniform(k_b, (n_classes,), jnp.float32, -bound, bound))


def init_fc_norm(width: int) -> dict:
    """Torch `nn.LayerNorm` init: scale 1, bias 0."""
    return dict(scale=jnp.ones((width,), jnp.float32), bias=jnp.zeros((width,), jnp.float32))


def find_pos_emb(params: Any) -> tuple[tuple, np.ndarray]:
    """(path, value) of the learned positional table (a leaf named `pos_emb`, shape (1,L,D))."""
    hits = []

    def visit(path, leaf):
        names = [getattr(p, "key", getattr(p, "name", None)) for p in path]
        if names and names[-1] == "pos_emb" and np.ndim(leaf) == 3:
            hits.append((path, leaf))
    jax.tree_util.tree_map_with_path(visit, params)
    if len(hits) != 1:
        raise ValueError(f"expected one 'pos_emb' parameter (1, L, D) in the backbone, found "
                         f"{len(hits)}")
    return hits[0]


def with_pos_len(params: Any, new_len: int) -> Any:
    """The parameter tree with `pos_emb` resized to `new_len` rows."""
    path, _ = find_pos_emb(params)

    def fix(p, leaf):
        return jnp.asarray(resize_pos_emb(np.asarray(leaf), new_len)) if p == path else leaf
    return jax.tree_util.tree_map_with_path(fix, params)


def make_logits_fn(model: Any, pooling: str, is_causal: bool,
                   head_norm: bool = False) -> Callable:
    """`logits_fn(params, feat_BTF, type_id_BT) -> (B,C)` for a resolved pooling mode;
    `head_norm` reads `params["fc_norm"]` (eps 1e-5, torch's default)."""

    def logits_fn(params, feat_BTF, type_id_BT):
        _, _, h_BTD = model.apply({"params": params["backbone"]}, feat_BTF, type_id_BT,
                                  is_causal=is_causal, deterministic=True)
        pooled_BD = cls_pooling.pool(h_BTD.astype(jnp.float32), type_id_BT, pooling)
        if head_norm:
            norm = params["fc_norm"]
            pooled_BD = cls_pooling.normalize(pooled_BD, LN_EPS) * norm["scale"] + norm["bias"]
        return pooled_BD @ params["head"]["kernel"] + params["head"]["bias"]
    return logits_fn


def cross_entropy(logits_BC: jax.Array, label_B: jax.Array, weight_B: jax.Array) -> jax.Array:
    """Weighted mean cross-entropy (weight 0 marks batch padding); no label smoothing, as
    the original's `nn.CrossEntropyLoss()`."""
    logp_BC = jax.nn.log_softmax(logits_BC.astype(jnp.float32), axis=-1)
    nll_B = -jnp.take_along_axis(logp_BC, label_B[:, None], axis=-1)[:, 0]
    return (nll_B * weight_B).sum() / jnp.maximum(weight_B.sum(), 1.0)
