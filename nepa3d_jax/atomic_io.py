"""The package's one writer of JSON and text files: atomic, standard JSON, the user's umask.

Every JSON the package writes (run records, results, evaluator outputs, metric lines) goes
through here so that three promises hold in one place:

* atomic: a temp file in the target folder is renamed onto the path, so a reader or a resume
  never sees half a file (SIGKILL, walltime, disk full leave the old file or none);
* standard JSON: `allow_nan=False`; a non-finite number becomes `null` and its key path is
  listed under `"undefined"` with the reason (`json_safe`), never a bare `NaN` that strict
  parsers (jq, JavaScript, pandas' default) reject;
* shareable: files get `0o666 & ~umask` like `open()` would give, not `mkstemp`'s 0600.

Data preparation (`data_prep`: caches, TFDS builds), the evaluators' PNG sheets and the run
directory write through `atomic_open` / `atomic_path`; temp files are named
`TMP_PREFIX...TMP_SUFFIX` (`is_temp_name`), which is what clean-ups of a killed run look for.
(Named `atomic_io`, not `io`, so it never shadows the standard library's `io`.)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from typing import Any, Iterator

UNDEFINED_KEY = "undefined"
# Temp files beside their target: `.tmp_<random>.part` (`tempfile.mkstemp`).
TMP_PREFIX = ".tmp_"
TMP_SUFFIX = ".part"


def is_temp_name(name: str) -> bool:
    """True for the file name of a temp file this module creates (left behind by a kill)."""
    return name.startswith(TMP_PREFIX) and name.endswith(TMP_SUFFIX)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def shared_mode() -> int:
    """The permission bits a plain `open(path, "w")` would give a new file."""
    return 0o666 & ~_umask()


def json_default(obj: Any) -> Any:
    """numpy / jax scalars and arrays, ConfigDicts, paths: their plain JSON form."""
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "tolist"):  # numpy / jax arrays and scalars
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return str(obj)


def _plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=json_default, allow_nan=True))


def json_safe(obj: Any) -> tuple[Any, dict[str, str]]:
    """(copy with every non-finite float replaced by None, {key path: reason}).

    The reason is the value's spelling (`nan`, `inf`, `-inf`): "the metric was undefined",
    e.g. an IoU with an empty union or a loss that diverged.
    """
    undefined: dict[str, str] = {}

    def walk(x: Any, where: str) -> Any:
        if isinstance(x, dict):
            return {str(k): walk(v, f"{where}.{k}" if where else str(k)) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v, f"{where}[{i}]") for i, v in enumerate(x)]
        if isinstance(x, float) and not math.isfinite(x):
            undefined[where or "<root>"] = f"non-finite value ({x})"
            return None
        return x

    return walk(_plain(obj), ""), undefined


def dumps(obj: Any, *, indent: int | None = 1, sort_keys: bool = False,
          undefined_key: str | None = UNDEFINED_KEY) -> str:
    """Standard JSON of `obj`; non-finite floats become null (listed under `undefined_key` of a
    top-level dict, when given)."""
    clean, undefined = json_safe(obj)
    if undefined and undefined_key and isinstance(clean, dict):
        clean[undefined_key] = {**(clean.get(undefined_key) or {}), **undefined}
    return json.dumps(clean, indent=indent, sort_keys=sort_keys, allow_nan=False)


def _temp_beside(path: str) -> tuple[int, str]:
    """(fd, name) of a new temp file in `path`'s folder (made if missing), named so that
    `is_temp_name` knows it; `path` must not be a directory."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory, expected a file path")
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    return tempfile.mkstemp(prefix=TMP_PREFIX, suffix=TMP_SUFFIX, dir=folder)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[Any]:
    """A file object on a temp file beside `path`, renamed onto `path` when the block succeeds.

    The temp file is removed on any error; the final file has the user's umask bits.
    """
    path = os.fspath(path)
    fd, tmp = _temp_beside(path)
    try:
        os.fchmod(fd, shared_mode())
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """A temp path beside `path` for a writer that wants a file name (np.savez, savefig, ...);
    renamed onto `path` with the user's umask bits when the block succeeds, removed otherwise."""
    path = os.fspath(path)
    fd, tmp = _temp_beside(path)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, shared_mode())  # mkstemp's 0600 -> what open() would give
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> str:
    with atomic_open(path) as f:
        f.write(text)
    return os.fspath(path)


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int | None = 1,
                      sort_keys: bool = False) -> str:
    """`dumps(obj)` written atomically to `path`; returns the path."""
    return write_text_atomic(path, dumps(obj, indent=indent, sort_keys=sort_keys) + "\n")


def append_json_line(path: str | os.PathLike, obj: Any) -> None:
    """One standard-JSON line appended to a JSON-lines log (non-finite values -> null)."""
    line = dumps(obj, indent=None, undefined_key=UNDEFINED_KEY)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
