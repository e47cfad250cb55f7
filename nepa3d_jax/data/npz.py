"""`.npz` reading that is safe on thread pools.

numpy parses every npy header with `ast.literal_eval`. In CPython 3.11 the AST constructor's
recursion counter is interpreter-wide, so two threads parsing at once (a GIL switch inside the
parse is enough, e.g. a finaliser run by the garbage collector) can fail with
`SystemError: AST constructor recursion depth mismatch` (python/cpython#106905 and its
relatives). Our loaders read caches on thread pools, so every header parse here holds one
process-wide lock. The zip decompression, where the time goes, runs outside it.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

import numpy as np

HEADER_LOCK = threading.Lock()


def read_header(f: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of the npy stream `f`, positioned at its magic string."""
    version = np.lib.format.read_magic(f)
    with HEADER_LOCK:
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f)
        if version == (2, 0):
            return np.lib.format.read_array_header_2_0(f)
    raise ValueError(f"npy format version {version[0]}.{version[1]} is not supported")


class Npz(Mapping):
    """A lazily read `.npz`: `z[key]` decompresses one member (KeyError when absent).

    Raises what `np.load` raises for an unreadable file, and ValueError for a bare `.npy`.
    """

    def __init__(self, path: str | os.PathLike):
        with HEADER_LOCK:  # a bare .npy would have its header parsed here
            z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        self._z = z
        self.files: list[str] = list(z.files)
        self._names = set(z.zip.namelist())

    def __getitem__(self, key: str) -> np.ndarray:
        name = f"{key}.npy"
        if name not in self._names:
            raise KeyError(key)
        raw = self._z.zip.read(name)  # zlib releases the GIL: threads overlap here
        buf = io.BytesIO(raw)
        shape, _, dtype = read_header(buf)
        # A header may declare far more than the member holds (a hostile or truncated file):
        # refuse before numpy allocates the declared size.
        need = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
        if need > len(raw) - buf.tell():
            raise ValueError(f"declared shape {tuple(shape)} ({dtype}) needs {need} bytes, the "
                             f"member holds {len(raw) - buf.tell()}")
        buf.seek(0)
        with HEADER_LOCK:
            return np.lib.format.read_array(buf, allow_pickle=False)

    def __contains__(self, key: object) -> bool:
        return f"{key}.npy" in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def close(self) -> None:
        self._z.close()

    def __enter__(self) -> Npz:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
