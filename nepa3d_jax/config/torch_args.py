"""An original `.pt`'s `args` dict (argparse names of `nepa3d.train.pretrain`) -> our config.

Torch-free and side-effect free: it takes the dict, so `config_diff` can compare what an
original run used with a config file. Fields keep the original's names where ours do
(`n_point`, `qa_layout`, `point_order_mode`, ...); the renames are in `_RENAMES`.

The original trains with the learning rate it is given (AdamW, weight decay 0.05, torch
betas), so `train.base_lr = lr` with `train.lr_scale = False`. `max_len < 0` is resolved as
the original does: the longest sequence any n_point / n_ray schedule entry asks for.

Arguments that change the architecture or the loss beyond what we implement raise
`UnsupportedTorchArgs` naming them (with `strict=False` they are only listed in
`config.torch_unsupported`, for review tools).
"""

from __future__ import annotations

from typing import Any, Mapping

import ml_collections

from nepa3d_jax.config.loading import fill_defaults
from nepa3d_jax.config.schedule import schedule_max
from nepa3d_jax.tokenizer.types import sequence_length


# original arg -> dotted field of ours (same meaning, same units).
_RENAMES = {
    "seed": "seed", "save_dir": "workdir",
    "batch": "train.batch_per_device", "epochs": "train.epochs", "lr": "train.base_lr",
    "objective": "train.objective", "mask_ratio": "train.mask_ratio",
    "dual_mask_near": "train.dual_mask_near", "dual_mask_far": "train.dual_mask_far",
    "dual_mask_window": "train.dual_mask_window",
    "dual_mask_warmup_frac": "train.dual_mask_warmup_frac",
    "dual_mask_type_aware": "train.dual_mask_type_aware",
    "arch": "model.arch", "d_model": "model.d_model", "layers": "model.layers",
    "heads": "model.heads",
    **{k: f"data.{k}" for k in (
        "n_point", "n_ray", "qa_tokens", "qa_layout", "add_eos", "pt_xyz_key", "pt_dist_key",
        "ablate_point_dist", "pt_sample_mode_train", "pt_fps_key", "pt_rfps_m",
        "point_order_mode", "drop_ray_prob", "force_missing_ray", "n_point_schedule",
        "n_ray_schedule", "mix_config", "mix_num_samples", "mix_seed")},
}
_REQUIRED = ("d_model", "layers", "heads", "n_point", "n_ray")
# arg -> (value that is fine, why another value is unsupported)
_OFF = {
    "arch": ("causal", "only the causal QueryNepa architecture is implemented (no encdec)"),
    "include_pt_grad": (0, "point-gradient feature slots are not implemented"),
    "include_ray_unc": (0, "ray-uncertainty feature slot is not implemented"),
    "aux_b2_weight": (0.0, "B-2 ray auxiliary heads/loss are not implemented"),
    "aux_b3_weight": (0.0, "B-3 point-distance auxiliary head/loss is not implemented"),
    "aux_e_weight": (0.0, "E point-distance auxiliary head/loss is not implemented"),
    "teacher_distill_weight": (0.0, "teacher distillation is not implemented"),
    "cycle_weight": (0.0, "answer-cycle consistency loss is not implemented"),
    "d_hard_weight": (0.0, "hard answer-token mining loss is not implemented"),
}


class UnsupportedTorchArgs(ValueError):
    """The original run used options this port does not implement."""


def _base_config() -> ml_collections.ConfigDict:
    """The `pretrain` job's defaults (the package owns them; configs/base.py re-exports them)."""
    from nepa3d_jax import jobs

    return jobs.default_config("pretrain")


def resolved_max_len(args: Mapping[str, Any]) -> int:
    """The original's positional capacity: `max_len`, or (if < 0) the longest sequence needed."""
    max_len = int(args.get("max_len", -1))
    if max_len >= 0:
        return max_len
    n_point = schedule_max(args.get("n_point_schedule", ""), int(args["n_point"]),
                           "n_point_schedule")
    n_ray = schedule_max(args.get("n_ray_schedule", ""), int(args["n_ray"]), "n_ray_schedule")
    return sequence_length(n_point, n_ray, bool(int(args.get("qa_tokens", 0))),
                           bool(int(args.get("add_eos", 1))))


def unsupported_args(args: Mapping[str, Any]) -> list[str]:
    """'name=value (why)' for every arg whose value we cannot reproduce."""
    problems = []
    for name, (fine, why) in _OFF.items():
        if name in args and args[name] is not None and args[name] != fine:
            if isinstance(fine, float) and float(args[name]) == fine:
                continue
            problems.append(f"{name}={args[name]!r} ({why})")
    dual_on = float(args.get("dual_mask_near", 0) or 0) > 0 or float(
        args.get("dual_mask_far", 0) or 0) > 0
    scheduled = bool(str(args.get("n_point_schedule", "") or "").strip()
                     or str(args.get("n_ray_schedule", "") or "").strip())
    if dual_on and scheduled:
        scale = str(args.get("dual_mask_window_scale", "linear"))
        if scale != "linear":
            problems.append(f"dual_mask_window_scale={scale!r} (only linear window scaling "
                            "with the schedule is implemented)")
        if int(args.get("dual_mask_window_ref_total", -1)) > 0:
            problems.append(f"dual_mask_window_ref_total={args['dual_mask_window_ref_total']} "
                            "(the reference total is always the epoch-0 query count)")
    return problems


def _set(c: ml_collections.ConfigDict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = c
    for p in parents:
        node = node[p]
    if leaf in node and node[leaf] is not None and value is not None:
        old = node[leaf]
        if isinstance(old, bool):
            value = bool(value)
        elif isinstance(old, int) and not isinstance(value, bool) and float(value) == int(value):
            value = int(value)
        elif isinstance(old, float):
            value = float(value)
        elif isinstance(old, str):
            value = "" if value is None else str(value)
    with node.ignore_type():
        node[leaf] = value


def config_from_torch_args(args: Mapping[str, Any], *, strict: bool = True
                           ) -> ml_collections.ConfigDict:
    """ConfigDict shaped like `configs/base.py` holding what the original run used."""
    if not isinstance(args, Mapping):
        raise TypeError(f"args must be a dict (the checkpoint's 'args'), got {type(args).__name__}")
    missing = [k for k in _REQUIRED if k not in args]
    if missing:
        raise ValueError(f"checkpoint args lack {', '.join(missing)}: cannot build a config")
    problems = unsupported_args(args)
    if problems and strict:
        raise UnsupportedTorchArgs("original run options not supported by nepa3d_jax: "
                                   + "; ".join(problems))
    c = _base_config()
    c.job = "pretrain"
    for name, dotted in _RENAMES.items():
        if name in args:
            value = args[name]
            if name == "pt_dist_key" and value is None:
                value = ""  # the original's "no distance pool" is None, ours is ""
            _set(c, dotted, value)
    _set(c, "data.max_len", resolved_max_len(args))
    if not args.get("mix_config"):
        # Single corpus: the original's --cache_root/--backend, its train split.
        c.data.mix = ml_collections.ConfigDict({"train": ml_collections.ConfigDict(dict(
            cache_root=str(args.get("cache_root", "")), split="train",
            backend=str(args.get("backend", "mesh")), weight=1.0))})
    else:
        c.data.mix = ml_collections.ConfigDict()
    _set(c, "model.mlp_ratio", 4.0)       # the original never changes it
    _set(c, "train.lr_scale", False)      # the original trains at the lr it is given
    _set(c, "train.weight_decay", 0.05)   # hard-coded in the original's AdamW
    _set(c, "train.b1", 0.9)
    _set(c, "train.b2", 0.999)
    _set(c, "train.grad_clip", 0.0)
    _set(c, "train.lr_schedule", "constant")  # the original never changes the LR
    if problems:
        c.torch_unsupported = list(problems)
    return fill_defaults(c)  # a no-op today (c starts from the defaults): the loaders' one rule
