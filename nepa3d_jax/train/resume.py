"""What a resume may change: the checkpoint's config against the one given now.

* Fields that fix parameter shapes (`SHAPE_FIELDS`) can never change in one run directory.
* Fields that change the data stream or the optimisation (all of `data.*` and `train.*`
  except the bookkeeping in `FREE_FIELDS`, plus `seed` and the derived global batch and
  learning rate) are refused, listed, unless named in `train.allow_resume_changes`
  (comma-separated fields or prefixes such as `train.base_lr,data.mix`; `*` allows all).
* Everything else (logging, checkpoint cadence, `num_steps` to extend a run, the attention
  kernel) may change.

The mixture is compared whole: the run record's `derived.mixture` holds every component as
resolved (from `data.mix` or the `data.mix_config` YAML, whose contents a path alone would
not show), and a component added, removed or changed in any option is a change of
`data.mix.<name>` (allowed by `data.mix` or `data.mix.<name>`), like the mixture's seed,
sample count and replacement (`derived.mixture_seed` ...).

`config.json` keeps the run's first segment as started; every resume that changes anything
appends one line to `config_history.jsonl` (step, time, each changed field as [before, after],
the fields that were allowed, and the full new record), so no segment's settings are lost.
"""

from __future__ import annotations

import datetime
import json
import pathlib
from typing import Any, Mapping

from nepa3d_jax import atomic_io
from nepa3d_jax.config.record import flatten

HISTORY = "config_history.jsonl"
SHAPE_FIELDS = ("model.d_model", "model.layers", "model.heads", "model.mlp_ratio",
                "data.qa_tokens")
GUARDED_PREFIXES = ("data.", "train.", "seed")
GUARDED_DERIVED = ("derived.global_batch", "derived.lr", "derived.mixture_num_samples",
                   "derived.mixture_seed", "derived.mixture_replacement")
MIXTURE_KEY = "mixture"  # in the record's derived block: `mixture_record`
# Fields that do not change the trained model: how batches are read (not which), what is
# checked, logged and kept. `compare` groups runs that differ only in these and the seeds.
NO_EFFECT_FIELDS = frozenset({
    "data.prefetch", "data.validate", "data.pt_pool_pad", "data.ray_pool_pad",
    "data.loader", "data.workers", "data.stage_dir",
    "train.log_every_steps", "train.checkpoint_every_steps", "train.keep_checkpoints",
    "train.eval_after", "train.lock_stale_hours", "train.allow_resume_changes"})
FREE_FIELDS = NO_EFFECT_FIELDS | {"train.num_steps", "train.epochs"}
_ABSENT = "<absent>"


class ResumeChangeError(ValueError):
    """A resume would change fields it cannot honour (or was not told to accept)."""


MIX_PREFIX = "data.mix."


def mixture_record(spec: Any) -> dict[str, Any]:
    """The resolved mixture (`data.mixture.MixSpec`) as JSON for the run record's derived
    block: {"components": {name: {cache_root, split, backend, weight, overrides}}, "seed",
    "num_samples", "replacement"}."""
    return json.loads(atomic_io.dumps({
        "components": {c.name: {"cache_root": c.cache_root, "split": c.split,
                                "backend": c.backend, "weight": c.weight,
                                "overrides": dict(c.overrides)} for c in spec.components},
        "seed": spec.seed, "num_samples": spec.num_samples, "replacement": spec.replacement}))


def _has_resolved(record: Mapping[str, Any]) -> bool:
    return isinstance((record.get("derived") or {}).get(MIXTURE_KEY), Mapping)


def _flat(record: Mapping[str, Any], use_resolved: bool = True) -> tuple[dict[str, Any], bool]:
    """(flat fields, whether the resolved mixture was used). `use_resolved=False` compares the
    inline `data.mix` summary instead (when the other record predates the resolved one, both
    sides must be read the same way)."""
    record = json.loads(atomic_io.dumps(dict(record), undefined_key=None))  # tuples == lists
    derived = record.pop("derived", None) or {}
    record.pop("config_source", None)
    resolved = derived.pop(MIXTURE_KEY, None)
    data = record.get("data")
    mix = data.pop("mix", None) if isinstance(data, dict) else None
    out = flatten(record)
    out.update({f"derived.{k}": v for k, v in flatten(derived).items()})
    if isinstance(resolved, dict) and use_resolved:
        for name, comp in (resolved.get("components") or {}).items():
            out[f"{MIX_PREFIX}{name}"] = comp
        for k in ("seed", "num_samples", "replacement"):
            out[f"derived.mixture_{k}"] = resolved.get(k)
    elif mix is not None:  # a record without it (older runs): the inline summary
        out.update({k: v for k, v in flatten({"data": {"mix": mix}}).items()})
    return out, isinstance(resolved, dict) and use_resolved


def changed_fields(saved: Mapping[str, Any], now: Mapping[str, Any]) -> dict[str, list]:
    """{field: [checkpoint value, new value]} for every field that differs.

    Mixture components present in only one record count too (added or removed: `<absent>` on
    one side) when both records hold the resolved mixture; elsewhere only fields present in
    both count, so a config field introduced by a newer version of the package does not block
    resuming an older run.
    """
    both = _has_resolved(saved) and _has_resolved(now)
    (a, a_full), (b, b_full) = _flat(saved, both), _flat(now, both)
    keys = a.keys() & b.keys()
    if a_full and b_full:
        keys |= {k for k in a.keys() ^ b.keys() if k.startswith(MIX_PREFIX)}
    return {k: [a.get(k, _ABSENT), b.get(k, _ABSENT)] for k in sorted(keys)
            if a.get(k, _ABSENT) != b.get(k, _ABSENT)}


def _guarded(field: str) -> bool:
    if field in FREE_FIELDS:
        return False
    return field.startswith(GUARDED_PREFIXES) or field in GUARDED_DERIVED


def _allowed(field: str, allow: list[str]) -> bool:
    return "*" in allow or any(field == a or field.startswith(a.rstrip(".") + ".")
                               for a in allow)


def check(saved: Mapping[str, Any], now: Mapping[str, Any], workdir: str | pathlib.Path,
          allow: str = "") -> dict[str, list]:
    """Raise for shape changes and for unallowed guarded changes; return all changes."""
    if not saved:
        return {}
    changes = changed_fields(saved, now)
    shape = [f for f in SHAPE_FIELDS + ("derived.max_len",) if f in changes]
    if shape:
        raise ResumeChangeError(
            f"cannot resume {workdir}: the config changed fields that fix the parameter "
            "shapes:\n  " + "\n  ".join(f"{f}: checkpoint {changes[f][0]!r}, config "
                                        f"{changes[f][1]!r}" for f in shape)
            + "\n(use a new workdir, or restore the original values)")
    allow_list = [a.strip() for a in str(allow or "").split(",") if a.strip()]
    refused = [f for f in changes if _guarded(f) and not _allowed(f, allow_list)]
    if refused:
        raise ResumeChangeError(
            f"cannot resume {workdir}: these fields change the data stream or the "
            "optimisation of the run in its checkpoint:\n  "
            + "\n  ".join(f"{f}: checkpoint {changes[f][0]!r}, now {changes[f][1]!r}"
                          for f in refused)
            + "\nRestore them, use a new workdir, or accept the change explicitly with "
            f"--config.train.allow_resume_changes={','.join(refused)} (recorded in "
            f"{HISTORY}).")
    return changes


def convert_position(data_iter: Mapping[str, Any], old_batch: int, new_batch: int,
                     steps_per_epoch: int) -> dict[str, Any]:
    """The iterator position in units of the new global batch (same samples consumed; an
    epoch whose remaining samples no longer fill a batch moves on to the next one)."""
    if not data_iter or old_batch == new_batch:
        return dict(data_iter or {})
    epoch, step = int(data_iter["epoch"]), int(data_iter["step"])
    seen = step * int(old_batch)
    if seen % int(new_batch):
        raise ResumeChangeError(
            f"cannot resume mid-epoch (epoch {epoch}, {seen} samples in) with global batch "
            f"{new_batch}: the checkpoint's batch was {old_batch} and {seen} is not a multiple "
            f"of {new_batch}; resume with train.batch_per_device giving a global batch of "
            f"{old_batch}, or one dividing {seen}")
    step = seen // int(new_batch)
    if step >= steps_per_epoch:
        epoch, step = epoch + 1, 0
    return {**dict(data_iter), "epoch": epoch, "step": step}


def append_history(workdir: str | pathlib.Path, step: int, changes: Mapping[str, list],
                   allow: str, record: Mapping[str, Any]) -> None:
    """One line of `config_history.jsonl` for a resume that changed something."""
    atomic_io.append_json_line(pathlib.Path(workdir) / HISTORY, {
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "resumed_at_step": int(step), "changed": dict(changes),
        "allow_resume_changes": str(allow or ""), "config": dict(record)})
