"""What ran vs what was intended: compare a run record or an original `.pt`'s args with a config.

Used by `nepa3d-config diff --run`. Each check returns a list of `Mismatch` rows;
an empty list means the run used exactly the config file (plus its recorded overrides).
A run directory or `.pt` is untrusted input: its JSON is read and its pickle is read
weights-only; no file it names is imported (the config file to compare with comes from the
reviewer's command line).
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from typing import Any, Sequence

import ml_collections

from nepa3d_jax.config.derived import derive, effective_lr, required_length
from nepa3d_jax.config.loading import fill_defaults, load_config
from nepa3d_jax.config.record import flatten, from_run_json
from nepa3d_jax.config.torch_args import config_from_torch_args
from nepa3d_jax.review.mix_check import mixture_rows

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


def recorded_source(workdir: str) -> tuple[dict[str, Any], str | None, str]:
    """(the run's `config.json` as a dict, the recorded config path or None, the record's path).

    Only reads JSON: nothing a run directory names is imported or run."""
    record_path = pathlib.Path(workdir) / "config.json"
    if not record_path.is_file():
        raise ValueError(f"{record_path} not found: not a run directory")
    try:
        record = json.loads(record_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{record_path} is not valid JSON: {err}") from err
    if not isinstance(record, dict):
        raise ValueError(f"{record_path} holds {type(record).__name__}, not a run record")
    _, _, source = from_run_json(record)
    path = source.get("path") if isinstance(source, dict) else None
    return record, (str(path) if path else None), str(record_path)


def source_text(workdir: str) -> str:
    """The recorded config file as text (read, never imported), or why it cannot be shown.

    The path is taken as recorded: relative paths from the working directory, where the run
    was launched (normally the repository root)."""
    _, path, record_path = recorded_source(workdir)
    if path is None:
        return f"{record_path} records no config file (config_source.path)"
    try:
        text = pathlib.Path(path).read_text(errors="replace")
    except OSError as err:
        return f"config file {path!r} recorded in {record_path} cannot be read: {err}"
    return f"# {path} (recorded in {record_path}; shown as text, not run)\n{text}"


def check_run_dir(workdir: str, config_path: str | None = None,
                  use_overrides: bool = True) -> tuple[list[Mismatch], dict[str, Any]]:
    """Mismatches between `<workdir>/config.json` and what it should hold.

    With `config_path` (given by the reviewer): the saved resolved config against that file +
    the recorded overrides, and the saved derived values against those recomputed. Without it:
    only the saved derived values against those recomputed from the saved config, because the
    config file a run directory names is untrusted input and is never run (issue 27).
    """
    record, recorded_path, record_path = recorded_source(workdir)
    saved, saved_derived, source = from_run_json(record)
    overrides: Sequence[str] = (source.get("overrides") or ()) if use_overrides else ()
    rows: list[Mismatch] = []
    try:
        if config_path is None:
            intended = fill_defaults(ml_collections.ConfigDict(saved.to_dict()))
            overrides = ()
        else:
            intended = load_config(config_path, overrides)
            rows = compare_flat(flatten(saved), flatten(intended))
        if saved_derived:
            num_devices = int(saved_derived.get("num_devices") or 0)
            if num_devices <= 0:
                rows.append(Mismatch("derived.num_devices", saved_derived.get("num_devices"), "?"))
            else:
                recomputed = derive(intended, num_devices,
                                    int(saved_derived.get("num_processes") or 1))
                rows += [Mismatch(f"derived.{m.field}", m.ran, m.intended) for m in compare_flat(
                    saved_derived, recomputed.to_dict(), only_common=True)]
    except (AttributeError, KeyError, TypeError) as err:
        raise ValueError(f"{record_path}: not a pretraining run record this version can check "
                         f"({type(err).__name__}: {err})") from err
    info = {"config": config_path or f"not loaded: pass it to compare (recorded: {recorded_path})",
            "overrides": list(overrides), "derived": saved_derived}
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
