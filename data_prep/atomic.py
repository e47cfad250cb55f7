"""Atomic output files: write to a temp file in the target folder, then `os.replace`.

A run that dies mid-write (OOM, PBS walltime, Ctrl-C) leaves either the old file or none,
never a truncated `.npz` that a later resume would mistake for a finished shape.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

import numpy as np

from nepa3d_jax import io

TMP_PREFIX = ".tmp_"

# `--compress` of the cache writers: zlib (`np.savez_compressed`, the original's format and our
# default) or none (`np.savez`: ~2.5x larger, no zlib on every read). The original and our
# loaders read both.
COMPRESSIONS = ("zlib", "none")


def add_compress_arg(ap) -> None:
    ap.add_argument("--compress", choices=COMPRESSIONS, default="zlib",
                    help="cache .npz compression (none: larger files, faster reads)")


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Yield a file object for a temp file beside `path`; rename onto `path` on success.

    The package's writer (`nepa3d_jax.io`): the file gets the user's umask bits, not 0600,
    since corpora are shared between users.
    """
    with io.atomic_open(path, mode) as f:
        yield f


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temp path beside `path` for the caller to fill; rename onto `path` on success."""
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=".part", dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, io.shared_mode())  # mkstemp's 0600 -> what open() would give
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def atomic_savez(path: str | os.PathLike, arrays: dict[str, np.ndarray],
                 compressed: bool = True) -> None:
    """`np.savez[_compressed]` to exactly `path` (a file object, so no second `.npz` suffix)."""
    save = np.savez_compressed if compressed else np.savez
    with atomic_open(path, "wb") as f:
        save(f, **arrays)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def remove_stale_temps(folder: str | os.PathLike, min_age_s: float = 3600.0) -> int:
    """Delete temp files a killed run left in `folder` (recursively); returns how many.

    Only files older than `min_age_s`, so a concurrent shard's writes in flight survive.
    """
    import time
    n, now = 0, time.time()
    for dirpath, _, files in os.walk(os.fspath(folder)):
        for name in files:
            if name.startswith(TMP_PREFIX) and name.endswith(".part"):
                p = os.path.join(dirpath, name)
                with contextlib.suppress(FileNotFoundError):
                    if now - os.path.getmtime(p) >= min_age_s:
                        os.remove(p)
                        n += 1
    return n
