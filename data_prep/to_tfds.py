"""Pack a cache root into a tensorflow-datasets (ArrayRecord) build: one record per shape.

  python -m data_prep.to_tfds --cache_root data/cache --out data/cache_tfds \\
      [--splits train,test] [--workers 8] [--shards 0] [--overwrite] [--drop_keys k1,k2]

`--drop_keys` leaves out arrays no run of yours reads (the index records what was kept).
Works for any of our layouts (`<root>/<split>/<class>/<id>.npz`: mesh caches, ScanObjectNN
caches, the CPAC split view). Every array of a shape is stored raw (tfds `Tensor` features with
BYTES encoding: no zlib, a read is one `np.frombuffer` per key), with the class label, the split
and the relative path. The features spec holds each key's dtype and shape (None where lengths
vary); `metadata.json` holds the record order and per-record lengths (see
`nepa3d_jax.data.tfds_source`). Records keep the folder's sorted file order (tfds shuffling is
disabled), so a run reading the build sees the same sample stream as one reading the folder.

Atomic and resumable, like the other data_prep tools: the corpus is checked first (headers of
every file; a bad file stops the build with a list naming file and key, since skipping it
would shift every sample index). Each shard (a contiguous block of a split's sorted files) is
then written by one worker process (`--workers` shards at a time, `data_prep.tfds_shards`) into
the staging folder `<out>/nepa3d_caches/<version>.incomplete/`, which also holds the plan
(index, shard assignment, source sizes and mtimes). A build killed midway is finished by the
next call with the same plan: it writes only the missing shards; a changed corpus starts over.
tfds then writes its metadata files and the staging folder is renamed to the version folder, so
a finished build is found at once (`--overwrite` rebuilds). TensorFlow is not needed (tfds'
numpy path, `array_record` writer). Test hook: `tfds_shards.PAUSE_ENV`.

One build per output folder: `<out>/to_tfds.lock` is taken the way a training run takes its
`run.lock` (`nepa3d_jax.checkpoint.lock`): a second build into the same `--out` is refused
with the holder's host and pid (it would delete the first one's files in flight); the lock of
a dead build on this host is taken over at once, one on another host after `--lock_stale_hours`
without a heartbeat (one per finished shard).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import shutil
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from tqdm import tqdm

from data_prep import tfds_shards
from data_prep.runner import process_context
from nepa3d_jax import cli
from nepa3d_jax.checkpoint.lock import RunLock, RunLockedError
from nepa3d_jax import atomic_io
from nepa3d_jax.data import schema, tfds_source
from nepa3d_jax.data.schema import CacheError
from nepa3d_jax.process_pool import process_pool

# Target shard size: large enough to keep the file count small on Lustre/GPFS, small enough that
# many workers read different shards (tfds' own default is similar).
SHARD_BYTES = 512 << 20

PLAN_FILE = "plan.json"
LOCK_FILE = "to_tfds.lock"


def plan_build(cache_root: str, splits: Sequence[str], workers: int = 8,
               drop_keys: Sequence[str] = ()) -> dict[str, Any]:
    """Header scan of every file: the index (files, spec, varying lengths) or CacheError."""
    problems = [str(p) for p in schema.check_cache_root(cache_root, splits)]
    files = {s: schema.list_cache_files(cache_root, s) for s in splits}
    flat = [f for s in splits for f in files[s]]
    with ThreadPoolExecutor(max(1, workers)) as ex:
        def one(path: str):
            try:
                return schema.read_headers(path)
            except CacheError as e:
                return e
        headers = dict(zip(flat, ex.map(one, flat)))
    drop = set(drop_keys)
    headers = {f: h if isinstance(h, CacheError) else {k: v for k, v in h.items() if k not in drop}
               for f, h in headers.items()}
    problems += [str(h) for h in headers.values() if isinstance(h, CacheError)]
    for path, h in headers.items():  # before any array is read (hostile headers allocate nothing)
        if not isinstance(h, CacheError):
            problems += schema.size_problems(path, h)
    if problems:
        raise CacheError(f"{len(problems)} problem(s) in {cache_root}:\n" + "\n".join(problems[:20])
                         + ("\n..." if len(problems) > 20 else ""))
    first = flat[0]
    ref = headers[first]
    spec: dict[str, dict[str, Any]] = {}
    for key, h in sorted(ref.items()):
        spec[key] = dict(shape=list(h.shape), dtype=h.dtype.str)
    for path in flat:
        h = headers[path]
        if set(h) != set(ref):
            diff = sorted(set(h) ^ set(ref))
            raise CacheError(f"{path}: keys differ from {first} in {', '.join(diff)}; a build "
                             "needs one key set (build such roots separately)")
        for key, a in h.items():
            s = spec[key]
            if np.dtype(s["dtype"]) != a.dtype or len(s["shape"]) != len(a.shape):
                raise CacheError(f"{path} [{key}]: {a.dtype}{list(a.shape)} differs from "
                                 f"{first} ({s['dtype']}{s['shape']})")
            s["shape"] = [d if d == n else None for d, n in zip(s["shape"], a.shape)]
    classes = sorted({os.path.basename(os.path.dirname(f)) for f in flat})
    index: dict[str, Any] = dict(format=tfds_source.INDEX_FORMAT, spec=spec, classes=classes,
                                 source_root=os.path.abspath(cache_root), splits={})
    varying = [k for k, s in spec.items() if None in s["shape"]]
    for s in splits:
        index["splits"][s] = dict(
            files=[os.path.relpath(f, cache_root).replace(os.sep, "/") for f in files[s]],
            shapes={k: [list(headers[f][k].shape) for f in files[s]] for k in varying})
    index["bytes_per_split"] = {
        s: int(sum(int(np.prod(h.shape)) * h.dtype.itemsize for f in files[s]
                   for h in headers[f].values())) for s in splits}
    return index


def make_plan(index: dict[str, Any], cache_root: str, shards: int = 0) -> dict[str, Any]:
    """What a build writes: the index, each split's shards as [start, end) of its file list
    (tfds' own boundaries), and each source file's size and mtime (a rewritten file changes
    the plan, so a resumed build never mixes two versions of a corpus)."""
    from tensorflow_datasets.core.utils import shard_utils

    n = shards or max(1, -(-max(index["bytes_per_split"].values()) // SHARD_BYTES))
    plan: dict[str, Any] = dict(index=index, options=tfds_shards.RECORD_OPTIONS, shards={},
                                sources={})
    for split, entry in index["splits"].items():
        count = len(entry["files"])
        ends = shard_utils.get_shard_boundaries(count, min(n, count))
        plan["shards"][split] = [[a, b] for a, b in zip([0, *ends[:-1]], ends)]
        stats = [os.stat(os.path.join(cache_root, rel)) for rel in entry["files"]]
        plan["sources"][split] = [[st.st_size, st.st_mtime_ns] for st in stats]
    return json.loads(json.dumps(plan))  # as it reads back from plan.json


def _plan_change(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """Why a staged plan cannot be resumed, in words."""
    if old is None:
        return "its plan.json is missing or unreadable"
    o_idx, n_idx = old.get("index", {}), new["index"]
    o_splits, n_splits = o_idx.get("splits", {}), n_idx["splits"]
    if sorted(o_splits) != sorted(n_splits):
        return f"splits {sorted(o_splits)} -> {sorted(n_splits)}"
    for s in n_splits:
        a, b = o_splits[s].get("files", []), n_splits[s]["files"]
        if a != b:
            return f"split {s}: {len(a)} -> {len(b)} files ({sorted(set(a) ^ set(b))[:3]} differ)"
    for key, what in (("sources", "a source file's size or mtime changed"),
                      ("shards", "the shard count changed")):
        if old.get(key) != new[key]:
            return what
    return "the index (keys, shapes, classes or source root) changed"


def _write_metadata(staging: str, index: dict[str, Any], sizes: dict[str, list[dict]]) -> None:
    """dataset_info.json, features.json, label.labels.txt and metadata.json, by tfds itself."""
    import tensorflow_datasets as tfds
    from etils import epath
    from tensorflow_datasets.core import dataset_info, file_adapters, naming
    from tensorflow_datasets.core import splits as split_lib

    identity = dataset_info.DatasetIdentity(
        name=tfds_source.BUILD_NAME, version=tfds.core.Version(tfds_source.BUILD_VERSION),
        data_dir=staging, module_name="data_prep.to_tfds",
        release_notes={tfds_source.BUILD_VERSION: "Raw arrays of the .npz caches."})
    info = tfds.core.DatasetInfo(
        builder=identity, description=__doc__.split("\n")[0],
        disable_shuffling=True,  # record i == i-th file of the sorted folder
        features=tfds_shards.features_of(tfds_shards.spec_json(index)),
        metadata=tfds.core.MetadataDict({tfds_source.INDEX_KEY: index}))
    info.set_file_format(file_adapters.FileFormat.ARRAY_RECORD)
    template = naming.ShardedFileTemplate(
        data_dir=epath.Path(staging), template=naming.DEFAULT_FILENAME_TEMPLATE,
        dataset_name=tfds_source.BUILD_NAME, filetype_suffix="array_record")
    info.set_splits(split_lib.SplitDict([
        split_lib.SplitInfo(name=s, shard_lengths=[z["records"] for z in sz],
                            num_bytes=sum(z["bytes"] for z in sz),
                            filename_template=template.replace(split=s))
        for s, sz in sizes.items()]))
    info.write_to_directory(staging)


def _write_shards(jobs: list[tfds_shards.ShardJob], workers: int, beat=lambda: None) -> None:
    """Each job in one process (`workers` at a time), a tqdm bar like the other tools;
    `beat()` after each shard (the lock's heartbeat)."""
    with tqdm(total=len(jobs), desc="shards", unit="shard", mininterval=1.0,
              file=sys.stderr) as bar:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                tfds_shards.write_shard(job)
                bar.update(1)
                beat()
            return
        with process_pool(min(workers, len(jobs)), process_context()) as ex:
            futures = [ex.submit(tfds_shards.write_shard, j) for j in jobs]
            try:
                for fut in cf.as_completed(futures):
                    fut.result()
                    bar.update(1)
                    beat()
            except BaseException:
                ex.shutdown(wait=True, cancel_futures=True)
                raise


def _open_staging(staging: str, plan: dict[str, Any], overwrite: bool, log) -> None:
    """Keep a staging folder holding this plan (minus its temp files); else start it over."""
    plan_path = os.path.join(staging, PLAN_FILE)
    if os.path.isdir(staging):
        try:
            with open(plan_path) as f:
                old = json.load(f)
        except (OSError, ValueError):
            old = None
        if overwrite or old != plan:
            why = "--overwrite" if overwrite else _plan_change(old, plan)
            log(f"{staging}: starting over ({why})")
            shutil.rmtree(staging)
        else:
            for name in os.listdir(staging):  # files in flight when the last build died
                if tfds_shards.TMP_INFIX in name or atomic_io.is_temp_name(name):
                    os.remove(os.path.join(staging, name))
    if not os.path.isdir(staging):
        os.makedirs(staging)
        atomic_io.write_text_atomic(plan_path, json.dumps(plan))


def build(cache_root: str, out_dir: str, splits: Sequence[str] = (), workers: int = 1,
          shards: int = 0, overwrite: bool = False, log=print,
          drop_keys: Sequence[str] = (), lock_stale_hours: float = 6.0) -> str:
    """Build (finish, or find) the TFDS dataset of `cache_root`; returns the version folder.

    Holds `<out_dir>/to_tfds.lock` throughout (RunLockedError when another build holds it)."""
    if not os.path.isdir(cache_root):
        raise CacheError(f"{cache_root}: cache root does not exist or is not a directory")
    with RunLock(out_dir, lock_stale_hours, name=LOCK_FILE, field="--lock_stale_hours",
                 guards="the build's files in flight") as lock:
        return _build(cache_root, out_dir, splits, workers, shards, overwrite, log, drop_keys,
                      lock.heartbeat)


def _build(cache_root: str, out_dir: str, splits: Sequence[str], workers: int, shards: int,
           overwrite: bool, log, drop_keys: Sequence[str], beat) -> str:
    target = os.path.join(out_dir, tfds_source.BUILD_NAME, tfds_source.BUILD_VERSION)
    staging = target + tfds_source.STAGING_SUFFIX
    if tfds_source.find_build(target):
        if not overwrite:
            log(f"{target}: already built (use --overwrite to rebuild)")
            return target
        shutil.rmtree(target)
    splits = list(splits) or sorted(d for d in os.listdir(cache_root)
                                    if os.path.isdir(os.path.join(cache_root, d)))
    index = plan_build(cache_root, splits, workers, drop_keys)
    n = sum(len(s["files"]) for s in index["splits"].values())
    log(f"{cache_root}: {n} shapes in {len(splits)} split(s) "
        f"({', '.join(splits)}), {sum(index['bytes_per_split'].values()) / 1e6:.1f} MB raw")
    plan = make_plan(index, cache_root, shards)
    _open_staging(staging, plan, overwrite, log)

    spec = tfds_shards.spec_json(index)
    jobs = [tfds_shards.ShardJob(cache_root, staging, s, k, len(bounds),
                                 tuple(index["splits"][s]["files"][a:b]), spec)
            for s, bounds in plan["shards"].items() for k, (a, b) in enumerate(bounds)]
    names = {j: tfds_shards.shard_name(j.split, j.shard, j.num_shards) for j in jobs}
    todo = [j for j in jobs if tfds_shards.read_size(staging, names[j]) is None]
    if len(todo) < len(jobs):
        log(f"{staging}: resuming, {len(jobs) - len(todo)} of {len(jobs)} shards already "
            "there (kept)")
    _write_shards(todo, workers, beat)

    sizes: dict[str, list[dict]] = {s: [] for s in plan["shards"]}
    for j in jobs:
        size = tfds_shards.read_size(staging, names[j])
        if size is None or size["records"] != len(j.files):
            raise RuntimeError(f"{staging}: shard {names[j]} missing after writing it")
        sizes[j.split].append(size)
    _write_metadata(staging, index, sizes)
    for j in jobs:  # the bookkeeping goes, then one rename publishes the build
        os.remove(os.path.join(staging, names[j] + tfds_shards.SIZE_SUFFIX))
    os.remove(os.path.join(staging, PLAN_FILE))
    if os.path.isdir(target):  # not a build (checked above): a partial leftover
        shutil.rmtree(target)
    os.rename(staging, target)
    built = tfds_source.find_build(target)
    if built is None:
        raise RuntimeError(f"{target} is not a readable build after writing it")
    log(f"{target}: {len(todo)} shard(s) written, {len(jobs) - len(todo)} kept")
    return built


def main(argv: list[str] | None = None) -> int:
    ap = cli.ArgumentParser(prog="python -m data_prep.to_tfds", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache_root", required=True)
    ap.add_argument("--out", "--out_dir", dest="out_dir", required=True,
                    help="the build folder (--out_dir: the older name)")
    ap.add_argument("--splits", default="", help="comma-separated; default: every split folder")
    ap.add_argument("--workers", type=int, default=1,
                    help="processes writing shards (one shard each at a time)")
    ap.add_argument("--shards", type=int, default=0,
                    help=f"shards per split; 0: one per {SHARD_BYTES >> 20} MiB of the largest")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--lock_stale_hours", type=float, default=6.0,
                    help="the lock of a build on another host that has not finished a shard "
                         "for this long is taken over")
    ap.add_argument("--drop_keys", default="",
                    help="comma-separated keys not to pack, e.g. udf_grid,occ_grid for a "
                         "pretraining-only build (~40%% smaller; CPAC grid queries need udf_grid)")
    args = ap.parse_args(argv)
    try:
        path = build(args.cache_root, args.out_dir, [s for s in args.splits.split(",") if s],
                     args.workers, args.shards, args.overwrite,
                     drop_keys=[k for k in args.drop_keys.split(",") if k],
                     lock_stale_hours=args.lock_stale_hours)
    except (CacheError, ValueError, RunLockedError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"tfds build: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
