"""The jitted classification steps: augment -> tokenize (vmap, on device) -> backbone ->
pool -> linear head; one train step (AdamW update, donated state) and one MC eval step.

Batches are sharded on the `data` axis of a mesh over every local device; parameters and
optimizer state are replicated. A per-sample weight of 0 marks batch padding, so a
partial last batch or a batch not divisible by the device count changes no number.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from nepa3d_jax.config.schedule import LR_SCHEDULES
from nepa3d_jax.eval.cls import augment as cls_augment
from nepa3d_jax.eval.cls import mc as cls_mc
from nepa3d_jax.eval.cls import model as cls_model
from nepa3d_jax.tokenizer.options import TokenOptions
from nepa3d_jax.tokenizer.sequence import build_batch

AUG_FIELDS = ("pt_xyz", "pt_dist", "ray_o", "ray_d", "ray_n", "ray_t")


def data_mesh() -> Mesh:
    return Mesh(np.asarray(jax.devices()), ("data",))


def tokenize(keys_B: jax.Array, pools: dict, tok: TokenOptions,
             aug: cls_augment.AugParams | None) -> tuple[jax.Array, jax.Array]:
    """(B,) keys + padded pools -> (feat (B,T,15), type_id (B,T)); augmentation first."""
    k_aug, k_tok = jnp.moveaxis(jax.vmap(jax.random.split)(keys_B), 1, 0)
    if aug is not None and aug.active:
        sub = {k: pools[k] for k in AUG_FIELDS}
        sub = jax.vmap(lambda k, s: cls_augment.augment(k, s, aug))(k_aug, sub)
        pools = {**pools, **sub}
    return build_batch(pools, k_tok, **tok.kwargs())


def learning_rate(lr: float, schedule: str, warmup_steps: int, total_steps: int
                  ) -> float | optax.Schedule:
    """The fine-tune's learning rate per optimizer step, as pretraining's `train.lr_schedule`:
    `constant` is the original's (a plain float, no warmup); `cosine` rises linearly from 0 to
    `lr` over `warmup_steps`, then decays along a half cosine to 0 at `total_steps`."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"config.lr_schedule={schedule!r}: expected one of {LR_SCHEDULES}")
    if schedule == "constant":
        if warmup_steps:
            raise ValueError("config.lr_warmup_epochs > 0 needs config.lr_schedule='cosine' "
                             "(the constant schedule has no warmup)")
        return lr
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(f"warmup of {warmup_steps} steps must be shorter than the "
                         f"{total_steps} training steps (config.lr_warmup_epochs)")
    return optax.warmup_cosine_decay_schedule(0.0, lr, warmup_steps, total_steps, 0.0)


def make_optimizer(lr: float | optax.Schedule, weight_decay: float, freeze_backbone: bool
                   ) -> optax.GradientTransformation:
    """torch.optim.AdamW defaults (betas 0.9/0.999, eps 1e-8, decay on every parameter) at
    `lr` (a float: constant, as the original; or a `learning_rate` schedule); a frozen backbone
    gets zero updates."""
    adamw = optax.adamw(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=weight_decay)
    if not freeze_backbone:
        return adamw
    def labels(params):
        return {name: jax.tree.map(lambda _: "frozen" if name == "backbone" else "train", sub)
                for name, sub in params.items()}
    return optax.multi_transform({"train": adamw, "frozen": optax.set_to_zero()}, labels)


def make_train_step(logits_fn: Callable, tx: optax.GradientTransformation, tok: TokenOptions,
                    aug: cls_augment.AugParams, seed: int, mesh: Mesh) -> Callable:
    """`step(state, batch) -> (state, metrics)`; state = {params, opt_state, step}."""
    base_key = jax.random.key(seed)

    def step(state, batch):
        b = batch["label"].shape[0]
        keys_B = jax.random.split(jax.random.fold_in(base_key, state["step"]), b)
        feat, type_id = tokenize(keys_B, batch, tok, aug)

        def loss_fn(params):
            logits = logits_fn(params, feat, type_id)
            return cls_model.cross_entropy(logits, batch["label"], batch["weight"]), logits

        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        correct = ((logits.argmax(-1) == batch["label"]) * batch["weight"]).sum()
        metrics = dict(loss=loss, correct=correct, count=batch["weight"].sum())
        return dict(params=params, opt_state=opt_state, step=state["step"] + 1), metrics

    repl = NamedSharding(mesh, P())
    data = NamedSharding(mesh, P("data"))
    return jax.jit(step, in_shardings=(repl, data), out_shardings=(repl, repl),
                   donate_argnums=(0,))


def make_eval_step(logits_fn: Callable, tok: TokenOptions, aug: cls_augment.AugParams | None,
                   mesh: Mesh) -> Callable:
    """`eval_step(params, batch, mc_k) -> logits (B,C)` averaged over `mc_k` (an int32
    scalar, not a compile-time constant) deterministic resamples per shape (keys from
    `batch["seed"]`)."""

    def eval_step(params, batch, mc_k):
        def logits_of(keys_B):
            feat, type_id = tokenize(keys_B, batch, tok, aug)
            return logits_fn(params, feat, type_id).astype(jnp.float32)
        return cls_mc.mc_logits(logits_of, batch["seed"], mc_k)

    repl = NamedSharding(mesh, P())
    data = NamedSharding(mesh, P("data"))
    return jax.jit(eval_step, in_shardings=(repl, data, repl), out_shardings=data)


def gather_batch(split: dict, idx: np.ndarray, size: int, mesh: Mesh) -> dict:
    """Rows `idx` of a loaded split, padded to `size` with weight-0 copies of the first row,
    placed on the mesh (sharded along `data`)."""
    n = len(idx)
    full = np.concatenate([idx, np.full((size - n,), idx[0], idx.dtype)]) if n < size else idx
    arrays = {k: v[full] for k, v in split["arrays"].items()}
    arrays["label"] = split["label"][full]
    arrays["seed"] = split["seed"][full]
    arrays["weight"] = (np.arange(size) < n).astype(np.float32)
    return jax.device_put(arrays, NamedSharding(mesh, P("data")))


def batch_size_for(batch: int, n_devices: int) -> int:
    """Global batch rounded up to a multiple of the device count (the extra rows are padding)."""
    if batch <= 0:
        raise ValueError(f"batch must be positive, got {batch}")
    return -(-batch // n_devices) * n_devices


def evaluate(eval_step: Callable, params, split: dict, batch: int, mesh: Mesh,
             mc_k: int = 1) -> tuple[float, np.ndarray]:
    """Accuracy over every shape of a split (exact: padding rows are dropped) and the logits."""
    n = len(split["label"])
    if n == 0:
        return float("nan"), np.zeros((0,), np.float32)
    if mc_k < 1:
        raise ValueError(f"MC resample count must be >= 1, got {mc_k}")
    k = jnp.asarray(mc_k, jnp.int32)
    out = []
    for start in range(0, n, batch):
        idx = np.arange(start, min(start + batch, n))
        logits = eval_step(params, gather_batch(split, idx, batch, mesh), k)
        out.append(np.asarray(jax.device_get(logits))[:len(idx)])
    logits = np.concatenate(out)
    return float((logits.argmax(-1) == split["label"]).mean()), logits
