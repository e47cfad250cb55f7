"""Pack a cache root into a tensorflow-datasets (ArrayRecord) build: one record per shape.

  python -m data_prep.to_tfds --cache_root data/cache --out_dir data/cache_tfds \\
      [--splits train,test] [--workers 8] [--shards 0] [--overwrite] [--drop_keys k1,k2]

`--drop_keys` leaves out arrays no run of yours reads (the index records what was kept).
Works for any of our layouts (`<root>/<split>/<class>/<id>.npz`: mesh caches, ScanObjectNN
caches, the CPAC split view). Every array of a shape is stored raw (tfds `Tensor` features with
BYTES encoding: no zlib, a read is one `np.frombuffer` per key), with the class label, the split
and the relative path. The features spec holds each key's dtype and shape (None where lengths
vary); `metadata.json` holds the record order and per-record lengths (see
`nepa3d_jax.data.tfds_source`). Records keep the folder's sorted file order (tfds shuffling is
disabled), so a run reading the build sees the same sample stream as one reading the folder.

Atomic and resumable: tfds writes into `incomplete.*` and renames the finished version folder;
a second call finds it and returns at once (`--overwrite` rebuilds). A killed build leaves no
usable-looking output. The corpus is checked first (headers of every file); a bad file stops
the build with a list naming file and key, since skipping it would shift every sample index.
TensorFlow is not needed (tfds' numpy path, `array_record` writer).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from data_prep.runner import process_context
from nepa3d_jax.data import schema, tfds_source
from nepa3d_jax.data.schema import CacheError

# ArrayRecord writer options: one record per chunk (random access, tfds' own choice) and no
# compression. tfds' adapter keeps the library default (brotli), which would put a decompression
# back on every read, the cost this form exists to remove.
RECORD_OPTIONS = "group_size:1,uncompressed"

# Target shard size: large enough to keep the file count small on Lustre/GPFS, small enough that
# many workers read different shards (tfds' own default is similar).
SHARD_BYTES = 512 << 20


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


def _read_example(args: tuple[str, str, str, int, tuple[str, ...]]) -> dict[str, Any]:
    path, rel, split, label, keys = args
    arrays = schema.load_cache(path, keys)
    ex: dict[str, Any] = dict(arrays)
    ex[tfds_source.PATH_FEATURE] = rel
    ex[tfds_source.SPLIT_FEATURE] = split
    ex[tfds_source.LABEL_FEATURE] = label
    return ex


def make_builder(index: dict[str, Any], cache_root: str, out_dir: str, workers: int,
                 shards: int = 0):
    """A tfds builder for this index (the class is made here so tfds stays an optional import
    for every other tool)."""
    import tensorflow_datasets as tfds

    class Nepa3dCaches(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        """NEPA-3D shape caches, one record per shape."""
        VERSION = tfds.core.Version(tfds_source.BUILD_VERSION)
        RELEASE_NOTES = {tfds_source.BUILD_VERSION: "Raw arrays of the .npz caches."}

        def _info(self):
            feats: dict[str, Any] = {
                k: tfds.features.Tensor(shape=tuple(s["shape"]), dtype=np.dtype(s["dtype"]),
                                        encoding=tfds.features.Encoding.BYTES)
                for k, s in index["spec"].items()}
            feats[tfds_source.LABEL_FEATURE] = tfds.features.ClassLabel(names=index["classes"])
            feats[tfds_source.PATH_FEATURE] = tfds.features.Text()
            feats[tfds_source.SPLIT_FEATURE] = tfds.features.Text()
            return tfds.core.DatasetInfo(
                builder=self, description=__doc__.split("\n")[0],
                disable_shuffling=True,  # record i == i-th file of the sorted folder
                features=tfds.features.FeaturesDict(feats),
                metadata=tfds.core.MetadataDict({tfds_source.INDEX_KEY: index}))

        def _split_generators(self, dl_manager):
            return {s: self._generate_examples(s) for s in index["splits"]}

        def _generate_examples(self, split: str = "train") -> Iterator[tuple[int, dict]]:
            keys = tuple(index["spec"])
            jobs = [(os.path.join(cache_root, rel), rel, split,
                     index["classes"].index(rel.split("/")[-2]), keys)
                    for rel in index["splits"][split]["files"]]
            with contextlib.ExitStack() as stack:
                if workers > 1 and len(jobs) > 1:
                    pool = stack.enter_context(process_context().Pool(workers))
                    it = pool.imap(_read_example, jobs, chunksize=4)  # ordered
                else:
                    it = map(_read_example, jobs)
                yield from enumerate(it)

    cfg = dict(num_shards=shards or None)
    if not shards:
        total = max(index["bytes_per_split"].values())
        cfg["num_shards"] = max(1, -(-total // SHARD_BYTES))
    builder = Nepa3dCaches(data_dir=out_dir, file_format="array_record")
    return builder, tfds.download.DownloadConfig(**cfg)


@contextlib.contextmanager
def _uncompressed_array_record() -> Iterator[None]:
    """tfds' ArrayRecord adapter, writing with RECORD_OPTIONS, for the duration of a build."""
    from array_record.python import array_record_module
    from tensorflow_datasets.core import file_adapters as fa

    class RawArrayRecord(fa.ArrayRecordFileAdapter):
        @classmethod
        def write_examples(cls, path, iterator):
            writer = array_record_module.ArrayRecordWriter(os.fspath(path), RECORD_OPTIONS)
            for _, serialized in iterator:
                writer.write(serialized)
            writer.close()
            return None

    fmt = fa.FileFormat.ARRAY_RECORD
    old = fa.ADAPTER_FOR_FORMAT[fmt]
    fa.ADAPTER_FOR_FORMAT[fmt] = RawArrayRecord
    try:
        yield
    finally:
        fa.ADAPTER_FOR_FORMAT[fmt] = old


def build(cache_root: str, out_dir: str, splits: Sequence[str] = (), workers: int = 1,
          shards: int = 0, overwrite: bool = False, log=print,
          drop_keys: Sequence[str] = ()) -> str:
    """Build (or find) the TFDS dataset of `cache_root`; returns the versioned build folder."""
    if not os.path.isdir(cache_root):
        raise CacheError(f"{cache_root}: cache root does not exist or is not a directory")
    target = os.path.join(out_dir, tfds_source.BUILD_NAME, tfds_source.BUILD_VERSION)
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
    builder, dl_config = make_builder(index, cache_root, out_dir, workers, shards)
    with _uncompressed_array_record():
        builder.download_and_prepare(download_config=dl_config)
    built = tfds_source.find_build(target)
    if built is None:
        raise RuntimeError(f"tfds finished but {target} is not a readable build")
    return built


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m data_prep.to_tfds", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache_root", required=True)
    ap.add_argument("--out_dir", required=True)
    ap.add_argument("--splits", default="", help="comma-separated; default: every split folder")
    ap.add_argument("--workers", type=int, default=1, help="processes reading the .npz files")
    ap.add_argument("--shards", type=int, default=0,
                    help=f"shards per split; 0: one per {SHARD_BYTES >> 20} MiB of the largest")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--drop_keys", default="",
                    help="comma-separated keys not to pack, e.g. udf_grid,occ_grid for a "
                         "pretraining-only build (~40%% smaller; CPAC grid queries need udf_grid)")
    args = ap.parse_args(argv)
    try:
        path = build(args.cache_root, args.out_dir, [s for s in args.splits.split(",") if s],
                     args.workers, args.shards, args.overwrite,
                     drop_keys=[k for k in args.drop_keys.split(",") if k])
    except (CacheError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"tfds build: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
