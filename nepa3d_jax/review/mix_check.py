"""The mixture an original `.pt` trained on vs a config's: components, roots, backends, weights.

`config_diff --run X.pt` needs it because the original names its mixture by a YAML path
(`args.mix_config`) while our configs state it inline: a checkpoint trained on Run B's mixture
must not read "OK" against Run A. The YAML is looked for as the original resolved it (the
working directory), then beside and above the checkpoint (the original writes checkpoints
under its launch directory); when it is nowhere, the result says the mixture was not compared.
"""

from __future__ import annotations

import math
import os
import pathlib
from typing import Any, Mapping

import ml_collections

from nepa3d_jax.data.mixture import MixComponent, MixSpec, load_mix_yaml, mix_spec_from_config

Row = tuple[str, Any, Any]  # (field, ran, intended)


def find_mix_yaml(mix_config: str, pt_path: str) -> str | None:
    """`mix_config` from the working directory, else from the checkpoint's folder or above."""
    if os.path.isabs(mix_config) or os.path.isfile(mix_config):
        return mix_config if os.path.isfile(mix_config) else None
    for folder in pathlib.Path(pt_path).resolve().parents:
        if (folder / mix_config).is_file():
            return str(folder / mix_config)
    return None


def ran_spec(args: Mapping[str, Any], pt_path: str) -> tuple[MixSpec | None, str]:
    """(the original run's mixture, how it was found) or (None, why it could not be read)."""
    mix_config = str(args.get("mix_config") or "")
    if not mix_config:  # single corpus: the original's --cache_root / --backend, train split
        comp = MixComponent("train", str(args.get("cache_root", "")), "train",
                            str(args.get("backend", "mesh")), 1.0)
        return (MixSpec((comp,), int(args.get("mix_num_samples", 0) or 0), 0, True),
                "single corpus")
    found = find_mix_yaml(mix_config, pt_path)
    if found is None:
        return None, (f"mixture not compared: mix_config {mix_config!r} not found (looked in the "
                      "working directory and beside/above the checkpoint)")
    data = ml_collections.ConfigDict(dict(mix_config=found,
                                          mix_num_samples=int(args.get("mix_num_samples", 0) or 0),
                                          mix_seed=int(args.get("mix_seed", 0) or 0)))
    return mix_spec_from_config(data), f"mix_config {found}"


def _same_root(a: str, b: str) -> bool:
    return os.path.normpath(a) == os.path.normpath(b) or (
        os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b))


def compare_specs(ran: MixSpec, intended: MixSpec, with_sampling: bool = True) -> list[Row]:
    """Rows for every difference, component by component in sampling order."""
    rows: list[Row] = []
    if len(ran.components) != len(intended.components):
        rows.append(("data.mix (components)", [c.name for c in ran.components],
                     [c.name for c in intended.components]))
        return rows
    total_a = sum(c.weight for c in ran.components) or 1.0
    total_b = sum(c.weight for c in intended.components) or 1.0
    for i, (a, b) in enumerate(zip(ran.components, intended.components)):
        where = f"data.mix[{i}] ({b.name})"
        if not _same_root(a.cache_root, b.cache_root):
            rows.append((f"{where}.cache_root", a.cache_root, b.cache_root))
        for field in ("split", "backend"):
            if getattr(a, field) != getattr(b, field):
                rows.append((f"{where}.{field}", getattr(a, field), getattr(b, field)))
        wa, wb = a.weight / total_a, b.weight / total_b
        if not math.isclose(wa, wb, rel_tol=1e-9):
            rows.append((f"{where}.weight (normalised)", round(wa, 6), round(wb, 6)))
    if with_sampling:
        for field in ("num_samples", "seed", "replacement"):
            if getattr(ran, field) != getattr(intended, field):
                rows.append((f"data.mix ({field})", getattr(ran, field), getattr(intended, field)))
    return rows


def mixture_rows(args: Mapping[str, Any], pt_path: str,
                 intended_config: ml_collections.ConfigDict) -> tuple[list[Row], str]:
    """(difference rows, a note saying what was compared or why it was not)."""
    ran, how = ran_spec(args, pt_path)
    if ran is None:
        return [], how
    try:
        intended = mix_spec_from_config(intended_config.data)
    except ValueError as err:
        return [], f"mixture not compared: the config's mixture cannot be read ({err})"
    single = not args.get("mix_config")
    return compare_specs(ran, intended, with_sampling=not single), f"mixture compared ({how})"
