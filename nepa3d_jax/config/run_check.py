"""What ran vs what was intended: compare a run record or an original `.pt`'s args with a config.

Used by `nepa3d-config diff --run`. Each check returns a list of `Mismatch` rows;
an empty list means the run used exactly the config file (plus its recorded overrides).
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from typing import Any, Sequence

from nepa3d_jax.config.derived import derive, effective_lr
from nepa3d_jax.config.loading import load_config
from nepa3d_jax.config.mix_check import mixture_rows
from nepa3d_jax.config.record import flatten, from_run_json
from nepa3d_jax.config.torch_args import config_from_torch_args

# Same intent, different representation: the original names a YAML and 0 means "the YAML's";
# the mixture itself is compared as a whole by `mix_check` (components, roots, weights, ...).
NOT_COMPARED = ("workdir", "data.mix", "data.mix_config", "data.mix_num_samples")


@dataclasses.dataclass(frozen=True)
class Mismatch:
    field: str
    ran: Any        # what the run (record or .pt args) says
    intended: Any   # what the config file says


def values_equal(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0) or a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    return a == b


def compare_flat(ran: dict[str, Any], intended: dict[str, Any],
                 only_common: bool = False) -> list[Mismatch]:
    missing = "<absent>"
    keys = (ran.keys() & intended.keys()) if only_common else (ran.keys() | intended.keys())
    rows = []
    for key in sorted(keys):
        a, b = ran.get(key, missing), intended.get(key, missing)
        if not values_equal(a, b):
            rows.append(Mismatch(key, a, b))
    return rows


def _resolve_path(path: str, workdir: pathlib.Path) -> str:
    """A recorded config path is relative to the launch directory (normally the repo root)."""
    candidates = [pathlib.Path(path), pathlib.Path(__file__).resolve().parents[2] / path,
                  workdir / path]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    raise ValueError(f"config file {path!r} recorded in {workdir / 'config.json'} not found "
                     "(pass the config file as the second argument)")


def check_run_dir(workdir: str, config_path: str | None = None,
                  use_overrides: bool = True) -> tuple[list[Mismatch], dict[str, Any]]:
    """Mismatches between `<workdir>/config.json` and the config file (+ recorded overrides)."""
    record_path = pathlib.Path(workdir) / "config.json"
    if not record_path.is_file():
        raise ValueError(f"{record_path} not found: not a run directory")
    try:
        record = json.loads(record_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{record_path} is not valid JSON: {err}") from err
    saved, saved_derived, source = from_run_json(record)
    overrides: Sequence[str] = (source.get("overrides") or ()) if use_overrides else ()
    if config_path is None:
        if not source.get("path"):
            raise ValueError(f"{record_path} does not record its config file "
                             "(config_source.path); pass the config file as the second argument")
        config_path = _resolve_path(source["path"], pathlib.Path(workdir))
    intended = load_config(config_path, overrides)
    rows = compare_flat(flatten(saved), flatten(intended))
    if saved_derived:
        num_devices = int(saved_derived.get("num_devices", 0))
        if num_devices <= 0:
            rows.append(Mismatch("derived.num_devices", saved_derived.get("num_devices"), "?"))
        else:
            recomputed = derive(intended, num_devices, int(saved_derived.get("num_processes", 1)))
            rows += [Mismatch(f"derived.{m.field}", m.ran, m.intended) for m in compare_flat(
                saved_derived, recomputed.to_dict(), only_common=True)]
    info = {"config": config_path, "overrides": list(overrides), "derived": saved_derived}
    return rows, info


def torch_args(pt_path: str) -> dict[str, Any]:
    """The `args` of an original `.pt`, read weights-only (a pickle never runs code here)."""
    from nepa3d_jax.checkpoint.torch_file import load_torch_file

    try:
        ckpt = load_torch_file(pt_path)
    except ImportError as err:
        raise ValueError(f"reading {pt_path} needs torch (pip install '.[torch]')") from err
    except OSError as err:
        raise ValueError(f"cannot read checkpoint {pt_path}: {err}") from err
    args = ckpt.get("args") if isinstance(ckpt, dict) else None
    if args is None:
        raise ValueError(f"{pt_path} has no 'args' entry: cannot tell what it was trained with")
    return dict(args) if isinstance(args, dict) else dict(vars(args))


def _args_as_fields(args: dict[str, Any]) -> tuple[dict[str, Any], str]:
    return flatten(config_from_torch_args(args)), "config_from_torch_args"


def check_torch_ckpt(pt_path: str, config_path: str, overrides: Sequence[str] = (),
                     num_devices: int = 8) -> tuple[list[Mismatch], dict[str, Any]]:
    """Mismatches between an original `.pt`'s `args` and the config file (fields both know).

    The original trains at the `lr` it is given, so that value is compared with the
    effective learning rate the config asks for at `num_devices` (our linear scaling rule),
    not with `train.base_lr`; `lr_scale` / `lr_ref_batch` are how we express it, not what ran.
    """
    args = torch_args(pt_path)
    ran, how = _args_as_fields(args)
    intended_config = load_config(config_path, overrides)
    intended = flatten(intended_config)
    for key in ("train.lr_scale", "train.lr_ref_batch"):
        ran.pop(key, None)
        intended.pop(key, None)
    if "train.base_lr" in ran and "train.base_lr" in intended:
        ran["train.lr (effective)"] = ran.pop("train.base_lr")
        intended.pop("train.base_lr")
        global_batch = int(intended_config.train.batch_per_device) * int(num_devices)
        intended["train.lr (effective)"] = effective_lr(intended_config.train, global_batch)
    if intended.get("data.max_len") == -1:  # the original stores the resolved capacity
        from nepa3d_jax.config.derived import required_length
        intended["data.max_len"] = required_length(intended_config.data)
    for key in list(ran):
        if key.startswith(NOT_COMPARED):
            ran.pop(key)
    rows = compare_flat(ran, intended, only_common=True)
    mix_rows, mix_note = mixture_rows(args, pt_path, intended_config)
    rows += [Mismatch(*row) for row in mix_rows]
    info = {"config": config_path, "overrides": list(overrides), "read_with": how,
            "devices": num_devices,
            "compared_fields": len(ran.keys() & intended.keys()), "mixture": mix_note}
    return rows, info
