"""ONE jitted train step: tokenize on device, forward, NEPA (or MAE) loss, AdamW update.

The step receives the padded pools of the global batch (sharded over the mesh's batch axes)
and the train state (donated: the update happens in place). Every random choice is a pure
function of (seed, step, sample_id), never of the device count or layout, so the same config
gives the same numbers on 1 or 8 devices:
  tokenizer key  fold_in(fold_in(key(seed), step), sample_id)      (docs/architecture.md)
  dual mask      fold_in(fold_in(key(seed), step), DUAL_MASK_STREAM)
  MAE mask       fold_in(fold_in(fold_in(key(seed), step), MAE_STREAM), sample_id)
  augmentation   fold_in(fold_in(fold_in(key(seed), step), AUGMENT_STREAM), sample_id)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import Mesh

from nepa3d_jax import tokenizer
from nepa3d_jax.parallel import batch_sharding, replicated
from nepa3d_jax.tokenizer.options import TokenOptions
from nepa3d_jax.train import augment, masks
from nepa3d_jax.train.augment import Augment
from nepa3d_jax.train.schedule import Sizes
from nepa3d_jax.train.state import TrainState
from nepa3d_jax.tokenizer.types import TYPE_MISSING_RAY

# fold_in data values no sample_id reaches (sample ids are < mix_num_samples < 2**31 - 2).
DUAL_MASK_STREAM = 2**31 - 1
MAE_STREAM = 2**31 - 2
AUGMENT_STREAM = 2**31 - 3

# Pool fields the step reads; the loop sends only these to the devices.
BATCH_FIELDS = tokenizer.POOL_FIELDS + ("sample_id",)


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """Everything static about one compiled step (a new value = a new compilation)."""
    sizes: Sizes
    tokens: TokenOptions
    objective: str
    nepa_target: str
    mask_ratio: float
    dual_mask_near: float
    dual_mask_far: float
    dual_mask_type_aware: bool
    dual_mask_warmup_steps: int
    answer_loss_weight: float
    augment: Augment
    seed: int
    # Collapse / shortcut diagnostics (`train.collapse`) on the steps the loop logs only: their
    # eigen-decompositions are a fixed cost per step that an accelerator step would notice.
    diagnostics_every: int

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict, sizes: Sizes,
                    warmup_steps: int) -> "StepSpec":
        data, train = config.data, config.train
        tokens = TokenOptions(
            n_point=sizes.n_point, n_ray=sizes.n_ray, qa_tokens=bool(int(data.qa_tokens)),
            qa_layout=str(data.qa_layout), add_eos=bool(int(data.add_eos)),
            pt_sample_mode=str(data.pt_sample_mode_train),
            point_order_mode=str(data.point_order_mode), pt_rfps_m=int(data.pt_rfps_m),
            drop_ray_prob=float(data.drop_ray_prob))
        return cls(
            sizes=sizes, tokens=tokens, objective=str(train.objective),
            nepa_target=str(config.model.nepa_target), mask_ratio=float(train.mask_ratio),
            dual_mask_near=float(train.dual_mask_near), dual_mask_far=float(train.dual_mask_far),
            dual_mask_type_aware=bool(int(train.dual_mask_type_aware)),
            dual_mask_warmup_steps=int(warmup_steps),
            answer_loss_weight=float(train.answer_loss_weight),
            augment=Augment.from_config(data), seed=int(config.seed),
            diagnostics_every=max(1, int(train.log_every_steps)))

    @property
    def dual_mask_on(self) -> bool:
        # The original keeps dual masking off for the MAE objective.
        return self.objective == "nepa" and (self.dual_mask_near > 0 or self.dual_mask_far > 0)

    @property
    def seq_len(self) -> int:
        return self.tokens.seq_len


def tokenize(spec: StepSpec, batch: Mapping[str, jax.Array], step_key: jax.Array
             ) -> tuple[jax.Array, jax.Array]:
    """(feat (B, T, 15), type_id (B, T)) of the batch's pools, one key per sample_id."""
    keys = jax.vmap(lambda i: jax.random.fold_in(step_key, i))(batch["sample_id"])
    return tokenizer.build_batch(batch, keys, **spec.tokens.kwargs())


def objective(model: Any, spec: StepSpec, params: Any, feat: jax.Array, type_id: jax.Array,
              step: jax.Array, step_key: jax.Array, sample_id: jax.Array
              ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(loss, extra metrics) of one batch of tokens: NEPA (+ dual mask) or MAE.

    The extra metrics include the collapse and shortcut diagnostics of
    `nepa3d_jax.train.collapse`, computed from values the step has anyway."""
    from nepa3d_jax.model import losses
    from nepa3d_jax.train import collapse

    if spec.objective == "mae":
        key = jax.random.fold_in(step_key, MAE_STREAM)
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(sample_id)
        token_mask = jax.vmap(lambda k, t: masks.mae_token_mask(k, t, spec.mask_ratio))(
            keys, type_id)
        feat_in = jnp.where(token_mask[..., None], 0.0, feat)
        z_target = jax.lax.stop_gradient(_embed(model, params, feat, type_id))
        _, z_hat, h = model.apply({"params": params}, feat_in, type_id, is_causal=True)
        present = type_id != TYPE_MISSING_RAY
        extra = {"mask_fraction": token_mask.mean(), **when_logged(spec, step, lambda: {
            **collapse.collapse_metrics(z_target, present, "z"),
            **collapse.collapse_metrics(h, present, "h")})}
        return losses.mae_loss(z_hat, z_target, token_mask), extra

    ramp = jnp.minimum(1.0, step.astype(jnp.float32) / float(spec.dual_mask_warmup_steps))
    attn_mask = None
    if spec.dual_mask_on:
        attn_mask = masks.dual_mask(
            jax.random.fold_in(step_key, DUAL_MASK_STREAM), type_id,
            near=spec.dual_mask_near * ramp, far=spec.dual_mask_far * ramp,
            window=spec.sizes.dual_mask_window, type_aware=spec.dual_mask_type_aware)
    extra = {"dual_mask_ramp": ramp}
    if hasattr(model, "forward_parts"):
        z, content, type_pos, z_hat, h = model.apply(
            {"params": params}, feat, type_id, is_causal=True, attn_mask_BTT=attn_mask,
            method="forward_parts")
        target = content if spec.nepa_target in ("content", "content_std") else z
        parts = (content, type_pos)
    else:  # a model without the split embedding: the full target only
        z, z_hat, h = model.apply({"params": params}, feat, type_id, is_causal=True,
                                  attn_mask_BTT=attn_mask)
        target, parts = z, None
    present = type_id != TYPE_MISSING_RAY

    def diagnostics() -> dict[str, jax.Array]:
        out = {**collapse.collapse_metrics(z, present, "z"),
               **collapse.collapse_metrics(h, present, "h")}
        if parts is not None:
            out.update(collapse.shortcut_metrics(z, *parts, type_id))
        return out

    extra.update(when_logged(spec, step, diagnostics))
    loss = losses.nepa_loss(target, z_hat, type_id,
                            standardize=spec.nepa_target == "content_std")
    if spec.answer_loss_weight > 0:
        pred = model.apply({"params": params}, h, method="predict_answer")
        answer = losses.answer_regression_loss(pred, feat, type_id)
        extra.update(nepa_loss=loss, answer_loss=answer)
        loss = loss + spec.answer_loss_weight * answer
    return loss, extra


def when_logged(spec: StepSpec, step: jax.Array, fn: Callable[[], dict[str, jax.Array]]
                ) -> dict[str, jax.Array]:
    """`fn()` on the steps the loop logs (`state.step + 1` a multiple of `diagnostics_every`),
    zeros elsewhere, plus `diagnostics` (1.0 where computed) so the loop can tell them apart."""
    every = int(spec.diagnostics_every)
    if every <= 1:
        return {**fn(), "diagnostics": jnp.float32(1.0)}
    on = (step + 1) % every == 0
    shapes = jax.eval_shape(fn)
    out = jax.lax.cond(on, fn, lambda: jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype),
                                                    shapes))
    return {**out, "diagnostics": on.astype(jnp.float32)}


def _embed(model: Any, params: Any, feat: jax.Array, type_id: jax.Array) -> jax.Array:
    """Input embeddings z (the MAE target); the embedding alone when the model exposes it."""
    if hasattr(model, "embed_tokens"):
        return model.apply({"params": params}, feat, type_id, method="embed_tokens")
    z, _, _ = model.apply({"params": params}, feat, type_id, is_causal=True)
    return z


def update(model: Any, optimizer: optax.GradientTransformation, spec: StepSpec,
           state: TrainState, feat: jax.Array, type_id: jax.Array, step_key: jax.Array,
           sample_id: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
    """Gradient of the objective and one optimizer update (the step after tokenization)."""

    def loss_fn(params):
        return objective(model, spec, params, feat, type_id, state.step, step_key, sample_id)

    (loss, extra), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), **extra}
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics


def make_train_step(model: Any, optimizer: optax.GradientTransformation, spec: StepSpec
                    ) -> Callable[[TrainState, Mapping[str, jax.Array]], tuple[TrainState, dict]]:
    """The pure (un-jitted) step: (state, batch of pools) -> (new state, scalar metrics)."""

    def train_step(state: TrainState, batch: Mapping[str, jax.Array]):
        step_key = jax.random.fold_in(jax.random.key(spec.seed), state.step)
        batch = augment.apply(spec.augment, batch, jax.random.fold_in(step_key, AUGMENT_STREAM))
        feat, type_id = tokenize(spec, batch, step_key)
        return update(model, optimizer, spec, state, feat, type_id, step_key,
                      batch["sample_id"])

    return train_step


def jit_train_step(train_step: Callable, state_shardings: TrainState, mesh: Mesh) -> Callable:
    """jit with explicit layouts: state as given (donated), batch on the batch axes."""
    return jax.jit(train_step,
                   in_shardings=(state_shardings, batch_sharding(mesh)),
                   out_shardings=(state_shardings, replicated(mesh)),
                   donate_argnums=(0,))


def device_batch(host_batch: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a host batch the step reads (label etc. stay on the host)."""
    return {k: host_batch[k] for k in BATCH_FIELDS if k in host_batch}
