"""Training objectives of the original: NEPA next-embedding cosine loss and the MAE variant.

Pure functions on (B, T, D) arrays; masks are computed from `type_id`, so they jit with
static shapes (no boolean indexing).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nepa3d_jax.tokenizer.modes import NEPA_TARGETS  # noqa: F401  (re-exported)
from nepa3d_jax.tokenizer.types import TYPE_A_POINT, TYPE_A_RAY, TYPE_MISSING_RAY

COS_EPS = 1e-8  # F.cosine_similarity(eps=1e-8) as the original



def cosine_similarity(a: jax.Array, b: jax.Array, eps: float = COS_EPS) -> jax.Array:
    """torch `F.cosine_similarity` along the last axis: sum(a/max(|a|,eps) * b/max(|b|,eps))."""
    a = a.astype(jnp.float32)
    b = b.astype(jnp.float32)
    na = jnp.maximum(jnp.linalg.norm(a, axis=-1, keepdims=True), eps)
    nb = jnp.maximum(jnp.linalg.norm(b, axis=-1, keepdims=True), eps)
    return jnp.sum((a / na) * (b / nb), axis=-1)


def nepa_token_mask(type_id_BT: jax.Array) -> jax.Array:
    """(B, T-1) bool: which next-token targets count in the NEPA loss.

    Never MISSING_RAY. If the *batch* (any sample, any position) has answer targets
    (A_POINT / A_RAY), only those count; otherwise (legacy tokens) all others do.
    """
    target = type_id_BT[:, 1:]
    valid = target != TYPE_MISSING_RAY
    is_answer = (target == TYPE_A_POINT) | (target == TYPE_A_RAY)
    return jnp.where(jnp.any(is_answer), valid & is_answer, valid)


def standardize_targets(target_BTD: jax.Array, mask_BT: jax.Array, eps: float = 1e-6
                        ) -> jax.Array:
    """Targets minus their mean over the counted ones, per channel divided by their std (the
    statistics carry no gradient). Removes what every target shares."""
    w = mask_BT.astype(jnp.float32)[..., None]
    n = jnp.maximum(w.sum(), 1.0)
    t = target_BTD.astype(jnp.float32)
    mu = (t * w).sum(axis=(0, 1)) / n
    var = (jnp.square(t - mu) * w).sum(axis=(0, 1)) / n
    return jax.lax.stop_gradient((t - mu) * jax.lax.rsqrt(var + eps))


def nepa_loss(z_BTD: jax.Array, z_hat_BTD: jax.Array, type_id_BT: jax.Array | None = None,
              standardize: bool = False) -> jax.Array:
    """Mean over valid targets of 1 - cos(z_hat[:, t], stop_grad(z[:, t+1])); 0 if none.
    `standardize` (the opt-in `content_std` target): targets standardised per channel over the
    counted targets first."""
    pred = z_hat_BTD[:, :-1]
    target = jax.lax.stop_gradient(z_BTD[:, 1:])
    if standardize:
        counted = (nepa_token_mask(type_id_BT) if type_id_BT is not None
                   else jnp.ones(target.shape[:2], bool))
        target = standardize_targets(target, counted)
    loss_BT = 1.0 - cosine_similarity(pred, target)
    if type_id_BT is None:
        return jnp.mean(loss_BT)
    mask = nepa_token_mask(type_id_BT).astype(jnp.float32)
    count = jnp.sum(mask)
    return jnp.where(count > 0, jnp.sum(loss_BT * mask) / jnp.maximum(count, 1.0), 0.0)


def mae_loss(z_hat_BTD: jax.Array, z_target_BTD: jax.Array, token_mask_BT: jax.Array | None
             ) -> jax.Array:
    """Mean squared error over the masked tokens (all D channels) against stop_grad(target).

    The original's MAE objective: inputs at masked positions are zeroed, `z_target` is the
    embedding of the unmasked input (no gradient), and the prediction `z_hat` at the same
    position regresses it; with no masked token the loss is 0.
    """
    diff2 = jnp.square(z_hat_BTD.astype(jnp.float32)
                       - jax.lax.stop_gradient(z_target_BTD).astype(jnp.float32))
    if token_mask_BT is None:
        return jnp.mean(diff2)
    mask = token_mask_BT.astype(jnp.float32)
    count = jnp.sum(mask) * diff2.shape[-1]
    total = jnp.sum(diff2 * mask[..., None])
    return jnp.where(count > 0, total / jnp.maximum(count, 1.0), 0.0)


def answer_regression_loss(pred_BTF: jax.Array, feat_BTF: jax.Array, type_id_BT: jax.Array
                           ) -> jax.Array:
    """Squared error of the next token's raw feature slots (the answer: distance, hit, depth,
    normal), predicted at the position before it, over the NEPA loss's targets. The head
    predicts the slots *standardised* over those targets (stop-gradient statistics; slots that
    never vary count 0), so the loss starts near 1 whatever the units; 0 when nothing counts."""
    mask_BT = nepa_token_mask(type_id_BT)
    target = standardize_targets(feat_BTF[:, 1:], mask_BT, eps=1e-12)
    mask = mask_BT.astype(jnp.float32)[..., None]
    n = jnp.maximum(mask.sum(), 1.0)
    t = feat_BTF[:, 1:].astype(jnp.float32)
    mu = (t * mask).sum(axis=(0, 1)) / n
    live = ((jnp.square(t - mu) * mask).sum(axis=(0, 1)) / n > 1e-8).astype(jnp.float32)
    per_slot = (jnp.square(pred_BTF[:, :-1].astype(jnp.float32) - target) * mask).sum(
        axis=(0, 1)) / n
    return jnp.where(mask.sum() > 0, (live * per_slot).sum() / jnp.maximum(live.sum(), 1.0), 0.0)
