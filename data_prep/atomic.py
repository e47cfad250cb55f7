"""Cache files of data preparation: compressed `.npz` written atomically, stale temps swept.

The writer itself is the package's (`nepa3d_jax.atomic_io`: a temp file in the target folder,
then `os.replace`, with the user's umask bits since corpora are shared between users). A run
that dies mid-write (OOM, PBS walltime, Ctrl-C) leaves either the old file or none, never a
truncated `.npz` that a later resume would mistake for a finished shape.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from nepa3d_jax import atomic_io

# `--compress` of the cache writers: zlib (`np.savez_compressed`, the original's format and our
# default) or none (`np.savez`: ~2.5x larger, no zlib on every read). The original and our
# loaders read both.
COMPRESSIONS = ("zlib", "none")


def add_compress_arg(ap) -> None:
    ap.add_argument("--compress", choices=COMPRESSIONS, default="zlib",
                    help="cache .npz compression (none: larger files, faster reads)")


def atomic_savez(path: str | os.PathLike, arrays: dict[str, np.ndarray],
                 compressed: bool = True) -> None:
    """`np.savez[_compressed]` to exactly `path` (a file object, so no second `.npz` suffix)."""
    save = np.savez_compressed if compressed else np.savez
    with atomic_io.atomic_open(path, "wb") as f:
        save(f, **arrays)


def remove_stale_temps(folder: str | os.PathLike, min_age_s: float = 3600.0) -> int:
    """Delete temp files a killed run left in `folder` (recursively); returns how many.

    Only files older than `min_age_s`, so a concurrent shard's writes in flight survive.
    """
    import time
    n, now = 0, time.time()
    for dirpath, _, files in os.walk(os.fspath(folder)):
        for name in files:
            if atomic_io.is_temp_name(name):
                p = os.path.join(dirpath, name)
                with contextlib.suppress(FileNotFoundError):
                    if now - os.path.getmtime(p) >= min_age_s:
                        os.remove(p)
                        n += 1
    return n
