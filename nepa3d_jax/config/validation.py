"""Start-up validation: every invalid combination fails before compilation, naming the fields."""

from __future__ import annotations

from typing import Any, Callable

import ml_collections

from nepa3d_jax import jobs
from nepa3d_jax.config.derived import required_length
from nepa3d_jax.config.errors import ConfigError
from nepa3d_jax.config.lock_rules import check_stale_hours
from nepa3d_jax.config.schedule import LR_SCHEDULES, parse_schedule
from nepa3d_jax.data.schema import BACKENDS
from nepa3d_jax.tokenizer import modes

__all__ = ["CHOICES", "ConfigError", "get_path", "validate"]

# Allowed values per dotted field, each list imported from its owner; checked only where the
# field exists in the config.
CHOICES: dict[str, tuple[Any, ...]] = {
    "data.qa_tokens": (0, 1),
    "data.qa_layout": modes.QA_LAYOUTS,
    "data.pt_sample_mode_train": modes.PT_SAMPLE_MODES,
    "data.point_order_mode": modes.POINT_ORDER_MODES,
    "model.arch": ("causal",),
    "model.attention": ("auto", "xla", "cudnn", "blockwise"),
    "model.compute_dtype": ("auto", "float32", "bfloat16"),
    "model.nepa_target": modes.NEPA_TARGETS,
    "model.final_norm": (False, True),
    "train.objective": ("nepa", "mae"),
    "train.lr_schedule": LR_SCHEDULES,
    "data.aug_yaw": (0, 1),
}


def get_path(config: ml_collections.ConfigDict, dotted: str, default: Any = None) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not hasattr(node, "get") or part not in node:
            return default
        node = node[part]
    return node


def _check(problems: list[str], config, dotted: str, ok: Callable[[Any], bool], why: str) -> None:
    value = get_path(config, dotted)
    if value is not None and not ok(value):
        problems.append(f"{dotted}={value!r}: {why}")


def _check_choices(config, problems: list[str]) -> None:
    for dotted, allowed in CHOICES.items():
        _check(problems, config, dotted, lambda v, a=allowed: v in a,
               f"must be one of {', '.join(map(repr, allowed))}")


def _check_jobs(config, problems: list[str]) -> None:
    """`job` and `train.eval_after` name entries of the job registry (read at call time)."""
    for dotted, evaluators_only in (("job", False), ("train.eval_after", True)):
        value = get_path(config, dotted)
        if value is None or (dotted != "job" and value == ""):
            continue
        try:
            jobs.get(value, dotted, evaluators_only)
        except ValueError as err:
            problems.append(str(err))


def _check_mixture(data, problems: list[str]) -> None:
    if data.mix_config:
        return  # an original-format YAML replaces `mix`; the data pipeline validates it
    mix = data.mix
    if len(mix) == 0:
        problems.append("data.mix is empty: name at least one component (or set data.mix_config)")
    for name, comp in mix.items():
        where = f"data.mix.{name}"
        weight = comp.get("weight") if hasattr(comp, "get") else None
        if not isinstance(weight, (int, float)) or weight <= 0:
            problems.append(f"{where}.weight={weight!r}: mixture weights must be > 0")
        backend = comp.get("backend") if hasattr(comp, "get") else None
        if backend not in BACKENDS:
            problems.append(f"{where}.backend={backend!r}: must be one of {', '.join(BACKENDS)}")
        if not (hasattr(comp, "get") and comp.get("cache_root")):
            problems.append(f"{where}.cache_root is empty")


def _check_data(data, problems: list[str]) -> None:
    """`config.data` of a pretraining config (loaded: every field is there)."""
    before = len(problems)
    for key in ("n_point", "n_ray"):
        if int(data[key]) < 0:
            problems.append(f"data.{key}={data[key]}: must be >= 0")
    if int(data.n_point) + int(data.n_ray) <= 0:
        problems.append(f"data.n_point={data.n_point} and data.n_ray={data.n_ray}: "
                        "a sequence needs at least one point or ray")
    for key in ("n_point_schedule", "n_ray_schedule"):
        try:
            parse_schedule(data[key], f"data.{key}")
        except ValueError:
            problems.append(f"data.{key}={data[key]!r}: expected 'epoch:n,epoch:n'")
            return
    if len(problems) == before:
        need = required_length(data)
        max_len = int(data.max_len)
        if max_len != -1 and max_len < need:
            problems.append(
                f"data.max_len={max_len} is below the required sequence length {need} for "
                f"data.n_point={data.n_point}, data.n_ray={data.n_ray}, "
                f"data.qa_tokens={data.qa_tokens}, data.add_eos={data.add_eos} "
                "(and any n_point/n_ray schedule); raise data.max_len or set it to -1")
        elif max_len < -1 or max_len == 0:
            problems.append(f"data.max_len={max_len}: must be -1 (auto) or a positive length")
    if int(data.mix_num_samples) <= 0:
        problems.append(f"data.mix_num_samples={data.mix_num_samples}: must be > 0")
    if not 0.0 <= float(data.drop_ray_prob) <= 1.0:
        problems.append(f"data.drop_ray_prob={data.drop_ray_prob}: must be in [0, 1]")
    _check_mixture(data, problems)


def _check_model_train(config, problems: list[str]) -> None:
    model, train = config.get("model"), config.get("train")
    if model is not None and "d_model" in model and "heads" in model:
        if int(model.heads) <= 0 or int(model.d_model) % int(model.heads):
            problems.append(f"model.d_model={model.d_model} must be divisible by "
                            f"model.heads={model.heads} (> 0)")
    positive = ("train.batch_per_device", "train.base_lr", "train.lr_ref_batch", "model.layers",
                "model.d_model", "parallel.fsdp", "model.type_emb_std")
    for dotted in positive:
        _check(problems, config, dotted, lambda v: v > 0, "must be > 0")
    _check(problems, config, "train.num_steps", lambda v: v >= 0, "must be >= 0 (0: use epochs)")
    _check(problems, config, "train.answer_loss_weight", lambda v: v >= 0, "must be >= 0 (0: off)")
    _check(problems, config, "data.aug_scale", lambda v: 0.0 <= v < 1.0, "must be in [0, 1)")
    _check(problems, config, "data.aug_shift", lambda v: v >= 0, "must be >= 0 (0: off)")
    _check(problems, config, "train.lr_warmup_steps", lambda v: v >= 0, "must be >= 0")
    _check(problems, config, "train.grad_clip", lambda v: v >= 0, "must be >= 0 (0: off)")
    _check(problems, config, "train.mask_ratio", lambda v: 0.0 <= v < 1.0, "must be in [0, 1)")
    if train is not None and "lock_stale_hours" in train:
        why = check_stale_hours(float(train.lock_stale_hours))
        if why:
            problems.append(why)
    if train is not None and "epochs" in train and int(train.num_steps) <= 0:
        if int(train.epochs) <= 0:
            problems.append(f"train.epochs={train.epochs} with train.num_steps="
                            f"{train.num_steps}: one of them must be > 0")


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError listing every invalid field or combination (nothing is compiled yet)."""
    problems: list[str] = []
    _check_choices(config, problems)
    _check_jobs(config, problems)
    if config.get("data") is not None:
        _check_data(config.data, problems)
    _check_model_train(config, problems)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
