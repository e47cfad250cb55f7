"""The run record `config.json`: resolved config + "derived" block + where the config came from.

The training code writes it with `to_run_json`; `config_diff --run` reads it with `from_run_json`.
Layout (top level): every config field, then
  "derived":       {seq_len, max_len, num_devices, num_processes, global_batch, lr, ...}
  "config_source": {"path": "configs/runA.py", "overrides": ["data.n_ray=0", ...]}
"""

from __future__ import annotations

from typing import Any, Sequence

import ml_collections

DERIVED_KEY = "derived"
SOURCE_KEY = "config_source"


def to_run_json(config: ml_collections.ConfigDict, derived: ml_collections.ConfigDict | dict,
                config_path: str | None = None, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """A JSON-ready dict for `<workdir>/config.json`."""
    out = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    out[DERIVED_KEY] = derived.to_dict() if hasattr(derived, "to_dict") else dict(derived)
    out[SOURCE_KEY] = {"path": config_path, "overrides": list(overrides)}
    return out


def from_run_json(record: dict[str, Any]) -> tuple[ml_collections.ConfigDict, dict, dict]:
    """Splits a `config.json` dict into (config, derived, source); tolerant of a missing block."""
    record = dict(record)
    derived = record.pop(DERIVED_KEY, None) or {}
    source = record.pop(SOURCE_KEY, None) or {}
    if not source.get("path"):  # older or hand-written records
        for key in ("config_path", "config_file"):
            if record.get(key) or derived.get(key):
                source = {"path": record.pop(key, None) or derived.get(key), "overrides": []}
    return ml_collections.ConfigDict(record), derived, source


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"data.n_ray": 1024, ...}; mixture components stay one value each (a readable summary)."""
    if hasattr(tree, "to_dict"):
        tree = tree.to_dict()
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if hasattr(value, "to_dict"):
            value = value.to_dict()
        if dotted == "data.mix" and isinstance(value, dict):
            for name, comp in value.items():
                out[f"data.mix.{name}"] = mix_summary(comp)
        elif isinstance(value, dict):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def mix_summary(comp: Any) -> str:
    if hasattr(comp, "to_dict"):
        comp = comp.to_dict()
    if not isinstance(comp, dict):
        return repr(comp)
    text = f"{comp.get('backend')} w={comp.get('weight')} {comp.get('cache_root')}"
    split = comp.get("split")  # absent in records written before splits were recorded
    return text if split in (None, "train") else f"{text} split={split}"
