"""A sha256 manifest of every file of a finished checkpoint step, verified before restoring it.

Orbax (as we use it: OCDBT + zarr) stores no checksum of the array bytes, so a bit flip in a
checkpoint's data restores silently and the run goes on from wrong parameters (issue 27: "the
last finite checkpoint" was the corrupt one and resuming looped). The manifest
`<step>/nepa3d_sha256.json` is written by process 0 once Orbax has finished the step (after
its atomic rename) and lists {relative path: [size, sha256]}; `verify` recomputes it. A step
without a manifest (saved by an older version, or killed between the rename and the manifest)
restores with a warning: it cannot be told apart from a good one.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib

from nepa3d_jax import atomic_io

MANIFEST = "nepa3d_sha256.json"
_VERSION = 1


class ChecksumError(RuntimeError):
    """A checkpoint file's bytes differ from its manifest (bit rot, a partial copy, an edit)."""


def _digest(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(step_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    out = {}
    for root, _, names in os.walk(step_dir):
        for name in names:
            path = pathlib.Path(root) / name
            rel = path.relative_to(step_dir).as_posix()
            if rel != MANIFEST:
                out[rel] = path
    return dict(sorted(out.items()))


def write(step_dir: str | os.PathLike) -> None:
    """Writes the manifest of a finished step (atomically; replaces an older one)."""
    step_dir = pathlib.Path(step_dir)
    files = {rel: [p.stat().st_size, _digest(p)] for rel, p in _files(step_dir).items()}
    atomic_io.write_json_atomic(step_dir / MANIFEST, {"version": _VERSION, "files": files})


def has_manifest(step_dir: str | os.PathLike) -> bool:
    return (pathlib.Path(step_dir) / MANIFEST).is_file()


def verify(step_dir: str | os.PathLike) -> bool:
    """True when the manifest matches; False when there is none; ChecksumError naming the
    first differing file otherwise (a missing, extra, resized or changed file)."""
    step_dir = pathlib.Path(step_dir)
    path = step_dir / MANIFEST
    if not path.is_file():
        return False
    try:
        listed = json.loads(path.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ChecksumError(f"{path}: unreadable checksum manifest ({e})") from e
    found = _files(step_dir)
    for rel in sorted(set(listed) | set(found)):
        if rel not in found:
            raise ChecksumError(f"{step_dir / rel}: missing (listed in {MANIFEST})")
        if rel not in listed:
            raise ChecksumError(f"{step_dir / rel}: not listed in {MANIFEST}")
        size, digest = listed[rel]
        p = found[rel]
        if p.stat().st_size != size or _digest(p) != digest:
            raise ChecksumError(f"{step_dir / rel}: sha256 differs from {MANIFEST} "
                                "(corrupt checkpoint data)")
    return True
