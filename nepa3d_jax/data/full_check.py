"""`config.data.validate`: how much of the corpus is checked before the first step.

  off     nothing (values are still checked as each file is read, mid-run)
  header  npy headers of every file: keys, dtypes, shapes, pool lengths (seconds for 50k files)
  full    header + every array a backend reads is decompressed and checked for NaN/Inf,
          index ranges and zip CRC (a corrupt member), in worker processes

`full` is the default: a NaN in `pt_xyz_pool` found hours into a run costs the whole run.
Results are cached per file by (size, mtime) in a JSON file that the caller places where the
run may write (the pretraining loop uses `<workdir>/validated_caches.json`), so a resume or a
requeued job does not redo it; only files that passed are cached.

Old configs and run records hold a boolean: True meant "headers at start" and maps to
`header`, False to `off`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from nepa3d_jax import atomic_io
from nepa3d_jax.data import schema

MODES = ("off", "header", "full")
_LEGACY = {"true": "header", "1": "header", "false": "off", "0": "off", "none": "off", "": "off"}
_VERSION = 2  # bump when the checks change: cached passes of older checks are redone


def parse_mode(value: Any) -> str:
    """`off | header | full` from the config value (old booleans accepted, see module doc)."""
    if isinstance(value, bool):
        return "header" if value else "off"
    text = str(value).strip().lower()
    text = _LEGACY.get(text, text)
    if text not in MODES:
        raise ValueError(f"config.data.validate={value!r}: must be one of {' | '.join(MODES)}")
    return text


def _check_one(task: tuple[str, tuple[str, ...], tuple, Any]) -> list[str]:
    path, keys, required, limits = task
    return schema.check_cache_file(path, required, check_values=True, value_keys=keys,
                                   limits=limits)


def _stamp(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [int(st.st_size), int(st.st_mtime_ns)]


class CheckCache:
    """{abs path: [size, mtime_ns, checked keys]} of files that passed the full check."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = None if path is None else os.fspath(path)
        self.entries: dict[str, list] = {}
        if self.path and os.path.isfile(self.path):
            try:
                data = json.loads(open(self.path, encoding="utf-8").read())
            except (OSError, ValueError):
                data = {}  # unreadable cache: recheck everything (it is only a cache)
            if isinstance(data, dict) and data.get("version") == _VERSION:
                self.entries = dict(data.get("files") or {})

    def passed(self, path: str, keys: Sequence[str]) -> bool:
        entry = self.entries.get(os.path.abspath(path))
        return bool(entry) and entry[:2] == _stamp(path) and set(keys) <= set(entry[2])

    def add(self, path: str, keys: Sequence[str]) -> None:
        stamp = _stamp(path)
        if stamp is not None:
            self.entries[os.path.abspath(path)] = [*stamp, sorted(keys)]

    def save(self) -> None:
        if self.path:
            atomic_io.write_json_atomic(self.path, {"version": _VERSION, "files": self.entries},
                                 indent=None)


def full_check(groups: Sequence[tuple[Sequence[str], Sequence[str], Sequence]],
               cache_path: str | os.PathLike | None = None, workers: int = 8,
               write_cache: bool = True, min_parallel: int = 128,
               limits: dict[str, int] | None = None) -> tuple[list[str], dict[str, int]]:
    """Problems of every file in `groups` = [(paths, value keys, required keys), ...].

    Returns (problems, counts {"checked", "cached"}). Files already cached as passed with the
    same size and mtime are skipped; `limits` bound declared sizes (`schema.size_limits`, checked
    before any value is read). Fewer than `min_parallel` files are checked in this
    process (starting workers costs more than it saves there).
    """
    cache = CheckCache(cache_path)
    tasks, cached = [], 0
    for paths, keys, required in groups:
        keys = tuple(sorted(keys))
        for path in paths:
            if cache.passed(path, keys):
                cached += 1
            else:
                tasks.append((path, keys, tuple(required), limits))
    problems: list[str] = []
    if tasks:
        n = max(1, min(int(workers), os.cpu_count() or 1, len(tasks)))
        if len(tasks) < min_parallel:
            n = 1
        if n == 1:
            results = map(_check_one, tasks)
        else:
            from nepa3d_jax.process_pool import process_pool

            pool = process_pool(n)
            results = pool.map(_check_one, tasks, chunksize=max(1, min(64, len(tasks) // (4 * n))))
        try:
            for (path, keys, _, _), found in zip(tasks, results):
                if found:
                    problems.extend(found)
                else:
                    cache.add(path, keys)
        finally:
            if n > 1:
                pool.shutdown(cancel_futures=True)
        if write_cache:
            cache.save()
    return problems, {"checked": len(tasks), "cached": cached}
