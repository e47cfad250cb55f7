"""Representation-collapse and shortcut diagnostics of the pretraining targets.

A tiny NEPA loss means either a good predictor or a trivial target. Two checks tell them apart:

* collapse (SimSiam's diagnostic): the per-channel standard deviation of the l2-normalised
  embeddings, averaged over channels, is ~1/sqrt(D) for spread-out embeddings and ~0 when
  every token maps to one direction; the effective rank (Roy & Vetterli 2007: exp of the
  entropy of the normalised singular values) says how many directions a batch really uses
  (1 = total collapse, D = isotropic). Both are taken over every present token (not
  MISSING_RAY) of the input embeddings z and of the hidden states h, the representation the
  probes read. The verdict reads h: answer tokens carry a scalar or two (distance, hit, t),
  so their embeddings lie near a curve whatever the training does.
* shortcut: z = content + type_pos, where type_pos = type_emb + pos_emb is known to the
  predictor before it sees the answer (the next token's type follows from the layout, its
  position from the index). `target_typepos_share` is |type_pos|^2 / (|type_pos|^2 +
  |content|^2) summed over the loss's targets; `typepos_only_loss` is the NEPA loss a
  predictor would get by emitting the next token's type_pos alone (against the full z).

The jnp functions run inside the jitted step (no host sync); the loop reads their values at
the logging interval together with the loss.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from nepa3d_jax.model.losses import cosine_similarity, nepa_token_mask

# z_std * sqrt(D) under this fraction of the isotropic value, or an effective rank under
# COLLAPSE_MIN_ERANK, is reported as a collapse.
COLLAPSE_STD_FRACTION = 0.1
COLLAPSE_MIN_ERANK = 2.0
# The metrics `train.step` computes on logged steps only (see `step.when_logged`).
DIAGNOSTIC_KEYS = frozenset({"z_std", "z_erank", "h_std", "h_erank", "target_typepos_share",
                             "typepos_only_loss"})
_EPS = 1e-12


def _unit_rows(z_ND: jax.Array) -> jax.Array:
    z = z_ND.astype(jnp.float32)
    return z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-8)


def channel_std(z_ND: jax.Array, w_N: jax.Array) -> jax.Array:
    """Mean over channels of the weighted per-channel std of the l2-normalised rows."""
    u = _unit_rows(z_ND)
    w = w_N.astype(jnp.float32)[:, None]
    n = jnp.maximum(jnp.sum(w), 1.0)
    mean = jnp.sum(u * w, axis=0) / n
    var = jnp.sum(w * jnp.square(u - mean), axis=0) / n
    return jnp.mean(jnp.sqrt(var))


def effective_rank(z_ND: jax.Array, w_N: jax.Array) -> jax.Array:
    """exp(entropy of p), p = singular values of the (masked, l2-normalised) rows / their sum.

    The singular values come from the D x D Gram matrix (O(N D^2), no N x N work)."""
    u = _unit_rows(z_ND) * w_N.astype(jnp.float32)[:, None]
    eig = jnp.linalg.eigvalsh(u.T @ u)
    s = jnp.sqrt(jnp.maximum(eig, 0.0))
    p = s / jnp.maximum(jnp.sum(s), _EPS)
    return jnp.exp(-jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.maximum(p, _EPS)), 0.0)))


def collapse_metrics(z_BTD: jax.Array, mask_BT: jax.Array, name: str = "z"
                     ) -> dict[str, jax.Array]:
    """{"<name>_std", "<name>_erank"} over the tokens where `mask_BT` is true."""
    d = z_BTD.shape[-1]
    z = jax.lax.stop_gradient(z_BTD).reshape(-1, d)
    w = mask_BT.reshape(-1)
    return {f"{name}_std": channel_std(z, w), f"{name}_erank": effective_rank(z, w)}


def shortcut_metrics(z_BTD: jax.Array, content_BTD: jax.Array, type_pos_BTD: jax.Array,
                     type_id_BT: jax.Array) -> dict[str, jax.Array]:
    """Share of the NEPA targets' squared norm from type + position, and the loss of a
    predictor that outputs the next token's type + position embedding alone."""
    z, c, tp = (jax.lax.stop_gradient(a[:, 1:]).astype(jnp.float32)
                for a in (z_BTD, content_BTD, type_pos_BTD))
    mask = nepa_token_mask(type_id_BT).astype(jnp.float32)
    tp2 = jnp.sum(jnp.sum(jnp.square(tp), -1) * mask)
    c2 = jnp.sum(jnp.sum(jnp.square(c), -1) * mask)
    count = jnp.maximum(jnp.sum(mask), 1.0)
    loss = jnp.sum((1.0 - cosine_similarity(tp, z)) * mask) / count
    return {"target_typepos_share": tp2 / jnp.maximum(tp2 + c2, _EPS),
            "typepos_only_loss": loss}


def _finite_or_none(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def collapse_report(values: Mapping[str, Any], d_model: int) -> dict[str, Any] | None:
    """Host-side verdict on logged values: None when they hold no collapse metrics.

    The verdict reads the hidden states h when they were logged, else z."""
    basis = "h" if "h_std" in values else "z"
    if f"{basis}_std" not in values or f"{basis}_erank" not in values:
        return None
    std, erank = float(values[f"{basis}_std"]), float(values[f"{basis}_erank"])
    healthy = 1.0 / math.sqrt(d_model)
    reasons = []
    if not math.isfinite(std) or std < COLLAPSE_STD_FRACTION * healthy:
        reasons.append(f"per-channel std of normalised {basis} {std:.4g} < "
                       f"{COLLAPSE_STD_FRACTION} x 1/sqrt(D) = {COLLAPSE_STD_FRACTION * healthy:.4g}")
    if not math.isfinite(erank) or erank < COLLAPSE_MIN_ERANK:
        reasons.append(f"effective rank of {basis} {erank:.3g} < {COLLAPSE_MIN_ERANK}")
    report = {k: _finite_or_none(values[k]) for k in
              ("z_std", "z_erank", "h_std", "h_erank", "target_typepos_share",
               "typepos_only_loss") if k in values}
    report.update(basis=basis, std_isotropic=healthy, d_model=int(d_model),
                  collapsed=bool(reasons))
    if reasons:
        report["warning"] = "representation collapse: " + "; ".join(reasons)
    return report
