"""Start-up guards: warnings (not errors) the training code logs and writes into provenance.json.

They target the two silent failures of the original study: an effective learning rate far from
the nominal one (the plan's runs trained at 1/16 of it), and a setting that was given but had no
effect (its `qa_tokens` never reached the trainer).
"""

from __future__ import annotations

from typing import Any, Callable

import ml_collections

from nepa3d_jax.config.validation import get_path

LR_RATIO_LIMIT = 4.0

# Fields only a pretraining job reads; set for another job they do nothing.
PRETRAIN_ONLY = (
    "data.mix", "data.mix_config", "data.mix_num_samples", "data.mix_seed", "data.replacement",
    "data.n_point_schedule", "data.n_ray_schedule", "data.drop_ray_prob", "train.objective",
    "train.mask_ratio", "train.dual_mask_near", "train.dual_mask_far", "train.dual_mask_window",
    "train.dual_mask_warmup_frac", "train.dual_mask_type_aware",
)

_Rule = tuple[str, Callable[[Any], bool], str]


def _dual_mask_off(c) -> bool:
    return not (c.train.dual_mask_near or c.train.dual_mask_far)


# (field, unused(config), why) for a pretraining job (a loaded config: every field is there).
PRETRAIN_RULES: tuple[_Rule, ...] = (
    ("data.qa_layout", lambda c: not c.data.qa_tokens, "data.qa_tokens=0"),
    ("data.pt_rfps_m", lambda c: c.data.pt_sample_mode_train != "rfps",
     "data.pt_sample_mode_train is not 'rfps'"),
    ("data.pt_fps_key", lambda c: c.data.pt_sample_mode_train not in ("fps", "rfps"),
     "data.pt_sample_mode_train is not 'fps'/'rfps'"),
    ("data.drop_ray_prob", lambda c: c.data.n_ray == 0, "data.n_ray=0"),
    ("data.force_missing_ray", lambda c: c.data.n_ray == 0, "data.n_ray=0"),
    ("data.ray_pool_pad", lambda c: c.data.n_ray == 0, "data.n_ray=0"),
    ("data.mix", lambda c: bool(c.data.mix_config), "data.mix_config replaces it"),
    ("train.mask_ratio", lambda c: c.train.objective != "mae",
     "train.objective is not 'mae'"),
    ("train.dual_mask_window", _dual_mask_off, "dual masking is off (near = far = 0)"),
    ("train.dual_mask_warmup_frac", _dual_mask_off, "dual masking is off (near = far = 0)"),
    ("train.dual_mask_type_aware", _dual_mask_off, "dual masking is off (near = far = 0)"),
    ("train.lr_ref_batch", lambda c: not c.train.lr_scale,
     "train.lr_scale=False"),
    ("train.epochs", lambda c: c.train.num_steps > 0, "train.num_steps > 0"),
)


def _defaults() -> ml_collections.ConfigDict:
    from nepa3d_jax import jobs

    return jobs.default_config("pretrain")


def _is_set(config, defaults, dotted: str) -> bool:
    """True when the field exists and differs from the pretrain defaults (so someone chose it)."""
    missing = object()
    value = get_path(config, dotted, missing)
    if value is missing:
        return False
    default = get_path(defaults, dotted, missing)
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if hasattr(default, "to_dict"):
        default = default.to_dict()
    return default is missing or value != default


def lr_warnings(config, derived) -> list[str]:
    nominal = float(config.train.base_lr)
    lr = float(derived.lr)
    ratio = lr / nominal if nominal else float("inf")
    if ratio > LR_RATIO_LIMIT or ratio < 1.0 / LR_RATIO_LIMIT:
        return [f"effective learning rate {lr:.3g} is {ratio:.3g}x the nominal train.base_lr="
                f"{nominal:.3g} (global batch {derived.global_batch}, train.lr_ref_batch="
                f"{config.train.lr_ref_batch}, train.lr_scale={config.train.lr_scale})"]
    return []


def unused_field_warnings(config: ml_collections.ConfigDict,
                          defaults: ml_collections.ConfigDict | None = None) -> list[str]:
    """Fields set away from their default that the chosen `job` never reads."""
    defaults = _defaults() if defaults is None else defaults
    job = config.job
    out = []
    if job == "pretrain":
        for dotted, unused, why in PRETRAIN_RULES:
            if _is_set(config, defaults, dotted) and unused(config):
                out.append(f"{dotted}={get_path(config, dotted)!r} is set but unused: {why}")
    else:
        for dotted in PRETRAIN_ONLY:
            if _is_set(config, defaults, dotted):
                out.append(f"{dotted} is set but unused: job={job!r} does not pretrain")
    return out


def guard_warnings(config: ml_collections.ConfigDict, derived: ml_collections.ConfigDict | None = None,
                   defaults: ml_collections.ConfigDict | None = None) -> list[str]:
    """All start-up warnings as strings (empty when the run looks as intended)."""
    out = unused_field_warnings(config, defaults)
    if derived is not None and "lr" in derived and get_path(config, "train.base_lr") is not None:
        out = lr_warnings(config, derived) + out
    return out
