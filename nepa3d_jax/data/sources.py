"""Where a mixture component's shapes come from: a `.npz` cache folder or a TFDS build.

Both forms present the same interface (shape names in the folder's sorted order, `record(i)`
-> a checked Mapping of arrays, `scan(...)` -> problems + pool sizes), so the sample stream,
labels and pads do not depend on the form. Picklable, for worker processes.
"""

from __future__ import annotations

import os
from typing import Any

from nepa3d_jax.data import records, schema, tfds_source
from nepa3d_jax.data.schema import CacheError


class NpzSplit:
    """`<root>/<split>/<class>/<id>.npz` files, one per shape."""

    def __init__(self, root: str, split: str):
        self.root, self.split = os.fspath(root), split
        self.names = schema.list_cache_files(root, split)

    def __len__(self) -> int:
        return len(self.names)

    def layout_problems(self) -> list[str]:
        return [str(p) for p in schema.check_cache_root(self.root, [self.split])]

    def record(self, i: int) -> records.CheckedRecord:
        return records.CheckedRecord(self.names[i])

    def scan(self, opts: records.SampleOptions, *, values: bool = False, workers: int = 8,
             pads: tuple[int, int] = (0, 0)) -> tuple[list[str], records.RecordSizes]:
        return records.scan_files(self.names, opts, values=values, workers=workers, pads=pads)


class TfdsBuildSplit(tfds_source.TfdsSplit):
    """One split of a `data_prep.to_tfds` build."""

    def layout_problems(self) -> list[str]:
        return [] if self.names else [f"{self.build_dir}: split '{self.split}' is empty"]

    def scan(self, opts: records.SampleOptions, *, values: bool = False, workers: int = 8,
             pads: tuple[int, int] = (0, 0)) -> tuple[list[str], records.RecordSizes]:
        return tfds_source.scan_split(self, opts, values=values, pads=pads)


Source = NpzSplit | TfdsBuildSplit


def open_split(root: str, split: str) -> Source:
    """The folder form, or the TFDS build when `root` is one (auto-detected)."""
    if tfds_source.find_build(root) is not None:
        return TfdsBuildSplit(root, split)
    return NpzSplit(root, split)


def describe_form(src: Any) -> str:
    return "tfds" if isinstance(src, TfdsBuildSplit) else "npz"


__all__ = ["CacheError", "NpzSplit", "TfdsBuildSplit", "open_split", "describe_form"]
