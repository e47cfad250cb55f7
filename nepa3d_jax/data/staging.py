"""Copy a run's corpora to node-local disk once per node, then read them from there.

`config.data.stage_dir` (e.g. `$TMPDIR` on PBS; environment variables are expanded): before the
mixture is listed, every component's data (a TFDS build, or a cache root's split folder) is
copied to `<stage_dir>/nepa3d_stage/<name>-<hash of the source path>/` and the component reads
the copy. On a node with several JAX processes only one copies: the others wait on a file lock
and then find the finished copy's marker. A copy is made in a temporary folder and renamed
into place, so a job killed mid-copy leaves nothing a later job would mistake for a finished
copy; the marker records the source's file count and bytes, and a source that changed since
is copied again. Symlinks (the CPAC split view) are copied as the files they point to.

Shape names keep `<split>/<class>/<id>.npz` under the new root, so labels, the sample stream
and every loss are the same as when reading the shared filesystem.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator

from nepa3d_jax.data import tfds_source
from nepa3d_jax.data.mixture import MixSpec

MARKER = ".nepa3d_staged.json"


def _signature(src: str) -> dict[str, int]:
    files = size = 0
    for dirpath, _, names in os.walk(src, followlinks=True):
        for n in names:
            files += 1
            size += os.path.getsize(os.path.join(dirpath, n))
    return dict(files=files, bytes=size)


@contextlib.contextmanager
def _node_lock(path: str) -> Iterator[None]:
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # node-local disk: flock is reliable here
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def stage_tree(src: str, stage_dir: str, log: Callable[[str], None] = print) -> str:
    """Node-local copy of folder `src` (made at most once per node and source state)."""
    src = os.path.abspath(src)
    base = os.path.join(os.path.expandvars(os.path.expanduser(stage_dir)), "nepa3d_stage")
    os.makedirs(base, exist_ok=True)
    tag = hashlib.sha1(src.encode()).hexdigest()[:10]
    dest = os.path.join(base, f"{os.path.basename(src.rstrip('/'))}-{tag}")
    with _node_lock(dest + ".lock"):
        sig = _signature(src)
        marker = os.path.join(dest, MARKER)
        if os.path.isfile(marker):
            with open(marker) as f:
                if json.load(f).get("signature") == sig:
                    return dest
            shutil.rmtree(dest)
        t0 = time.perf_counter()
        tmp = f"{dest}.partial-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp, symlinks=False)
        with open(os.path.join(tmp, MARKER), "w") as f:
            json.dump(dict(source=src, signature=sig), f)
        os.replace(tmp, dest)
        log(f"staged {src} -> {dest}: {sig['files']} files, {sig['bytes'] / 1e9:.2f} GB in "
            f"{time.perf_counter() - t0:.1f}s")
    return dest


def stage_spec(spec: MixSpec, stage_dir: str, log: Callable[[str], None] = print) -> MixSpec:
    """`spec` with each component's cache_root replaced by its node-local copy."""
    comps = []
    for c in spec.components:
        build = tfds_source.find_build(c.cache_root)
        if build is not None:
            root = stage_tree(build, stage_dir, log)  # the versioned build folder itself
        else:
            # Only the split this component reads, under the same relative name.
            split_copy = stage_tree(os.path.join(c.cache_root, c.split), stage_dir, log)
            root = split_copy + ".root"
            link = os.path.join(root, c.split)
            os.makedirs(root, exist_ok=True)
            if not os.path.islink(link):
                with contextlib.suppress(FileExistsError):
                    os.symlink(split_copy, link)
        comps.append(dataclasses.replace(c, cache_root=root))
    return dataclasses.replace(spec, components=tuple(comps))
