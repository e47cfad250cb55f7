"""Reading a TFDS (ArrayRecord) build of a cache root: one record per shape, no TensorFlow.

A build made by `python -m data_prep.to_tfds` is a tensorflow-datasets dataset directory
(`<out>/nepa3d_caches/<version>/`: `dataset_info.json`, `features.json`, ArrayRecord shards
`nepa3d_caches-<split>.array_record-0000i-of-0000n`) plus tfds' `metadata.json` holding our
index: per split the relative paths `<split>/<class>/<id>.npz` in record order (the sorted order
of the `.npz` folder, so a global sample index means the same shape in either form) and the
per-record lengths of the arrays whose shapes vary. Pool sizes and header checks therefore need
no record reads; `TfdsSplit.record(i)` reads one record with array_record and decodes its
keys lazily (tfds's Example proto; raw BYTES tensors).

Shape names are `<build>/<split>/<class>/<id>.npz` (not files on disk): the class folder gives
the label exactly as for the folder form; errors also name the shard file and record number.
"""

from __future__ import annotations

import bisect
import json
import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from nepa3d_jax.data import schema
from nepa3d_jax.data.schema import CacheError

BUILD_NAME = "nepa3d_caches"       # tfds dataset name (folder and shard file prefix)
BUILD_VERSION = "1.0.0"
STAGING_SUFFIX = ".incomplete"     # `<version>.incomplete`: a build being written, never read
INDEX_FORMAT = 1                   # layout of our part of metadata.json
INDEX_KEY = "nepa3d_index"         # the metadata.json entry holding it
PATH_FEATURE, SPLIT_FEATURE, LABEL_FEATURE = "path", "split", "label"
NON_ARRAY_FEATURES = (PATH_FEATURE, SPLIT_FEATURE, LABEL_FEATURE)

READER_OPTIONS = "readahead_buffer_size:0,max_parallelism:0"  # random access, no thread pool

# tfds' lazy imports (etils) deadlock when two threads import it at once (seen in loader
# threads: both hung in `LazyModule.__getattr__`), so opening a source is serialised.
_OPEN_LOCK = threading.Lock()


def find_build(path: str | os.PathLike) -> str | None:
    """The versioned build folder at `path` (the folder itself, `<path>/nepa3d_caches/<v>` or
    `<path>/<v>`), or None when `path` is not a TFDS build (e.g. an `.npz` cache root)."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        return None

    def is_build(d: str) -> bool:
        return (os.path.isfile(os.path.join(d, "dataset_info.json"))
                and os.path.isfile(os.path.join(d, "metadata.json")))

    if is_build(path):
        return path
    for base in (os.path.join(path, BUILD_NAME), path):
        if not os.path.isdir(base):
            continue
        versions = sorted((v for v in os.listdir(base) if not v.endswith(STAGING_SUFFIX)
                           and is_build(os.path.join(base, v))), key=_version_key)
        if versions:
            return os.path.join(base, versions[-1])
    return None


def _version_key(v: str) -> tuple:
    try:
        return tuple(int(x) for x in v.split("."))
    except ValueError:
        return (-1,)


def read_index(build_dir: str) -> dict[str, Any]:
    """Our index from the build's metadata.json; CacheError naming the file when unusable."""
    path = os.path.join(build_dir, "metadata.json")
    try:
        with open(path) as f:
            meta = json.load(f)
        index = meta[INDEX_KEY]
        fmt = int(index["format"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CacheError(f"{path}: not a nepa3d TFDS build index ({type(e).__name__}: {e}); "
                         "rebuild with python -m data_prep.to_tfds") from e
    if fmt != INDEX_FORMAT:
        raise CacheError(f"{path}: index format {fmt}, this version reads {INDEX_FORMAT}")
    return index


def build_splits(build_dir: str) -> list[str]:
    return sorted(read_index(build_dir)["splits"])


class TfdsRecord(Mapping):
    """One shape; like `records.CheckedRecord`, a key is decoded on first access (a read-only
    view of the record's bytes: no copy, nothing decoded that the backend does not read) and
    NaN/Inf is refused per key."""

    def __init__(self, name: str, fields: Mapping[str, Any],
                 headers: Mapping[str, schema.ArrayHeader]):
        self.path = name
        self._fields, self._headers = fields, headers
        self._arrays: dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._headers:
            raise CacheError(f"{self.path} [{key}]: missing key "
                             f"(record has: {', '.join(sorted(self._headers))})")
        a = self._arrays.get(key)
        if a is None:
            h = self._headers[key]
            try:
                a = np.frombuffer(self._fields[key].bytes_list.value[0], h.dtype).reshape(h.shape)
            except (KeyError, IndexError, ValueError) as e:
                raise CacheError(f"{self.path} [{key}]: record field does not hold "
                                 f"{h.dtype}{list(h.shape)} ({e})") from e
            schema.reject_nonfinite(self.path, key, a)
            self._arrays[key] = a
        return a

    def __contains__(self, key: object) -> bool:
        return key in self._headers

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._headers))

    def __len__(self) -> int:
        return len(self._headers)

    def close(self) -> None:
        pass


class TfdsSplit:
    """One split of a build: shape names in record order, headers from the index, records.

    Picklable for worker processes: the tfds data source is opened lazily in each process.
    """

    def __init__(self, root: str, split: str):
        build = find_build(root)
        if build is None:
            raise CacheError(f"{root}: not a TFDS build (no dataset_info.json + metadata.json)")
        self.root, self.build_dir, self.split = os.fspath(root), build, split
        index = read_index(build)
        if split not in index["splits"]:
            raise CacheError(f"{build}: split '{split}' not in the build "
                             f"(has: {', '.join(sorted(index['splits']))})")
        entry = index["splits"][split]
        self.rel_paths: list[str] = list(entry["files"])
        self.names = [os.path.join(self.root, r) for r in self.rel_paths]
        self.spec = {k: (tuple(v["shape"]), np.dtype(v["dtype"])) for k, v in
                     index["spec"].items()}
        self.shapes = {k: v for k, v in entry.get("shapes", {}).items()}
        self._shards: list[tuple[str, int]] | None = None
        self._readers: dict[str, Any] = {}
        self._example: Any = None

    def __len__(self) -> int:
        return len(self.rel_paths)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_readers"], state["_example"] = {}, None
        return state

    # --- headers without reading records -----------------------------------------------------
    def headers(self, i: int) -> dict[str, schema.ArrayHeader]:
        out = {}
        for key, (shape, dtype) in self.spec.items():
            if None in shape:
                shape = self.shapes[key][i]
            out[key] = schema.ArrayHeader(tuple(int(s) for s in shape), dtype)
        return out

    # --- records -----------------------------------------------------------------------------
    def shard_of(self, i: int) -> tuple[str, int]:
        """(shard file, record number inside it) of record `i`, for error messages."""
        if self._shards is None:
            with open(os.path.join(self.build_dir, "dataset_info.json")) as f:
                info = json.load(f)
            lengths: list[int] = []
            for s in info.get("splits", []):
                if s.get("name") == self.split:
                    lengths = [int(n) for n in s.get("shardLengths", [])]
            n = len(lengths)
            self._shards = [(f"{BUILD_NAME}-{self.split}.array_record-{k:05d}-of-{n:05d}",
                             int(c)) for k, c in enumerate(np.cumsum(lengths))]
        ends = [e for _, e in self._shards]
        k = bisect.bisect_right(ends, i)
        if k >= len(self._shards):
            return "(no shard)", i
        start = ends[k - 1] if k else 0
        return os.path.join(self.build_dir, self._shards[k][0]), i - start

    def _where(self, i: int) -> str:
        shard, rec = self.shard_of(i)
        return f"{shard} record {rec} ({self.rel_paths[i]})"

    def _reader(self, shard: str) -> Any:
        """array_record reader of one shard, opened on first use (per process).

        Not `builder.as_data_source()`: its reader keeps array_record's default
        `max_parallelism` (a thread pool per read), ~4 ms of CPU per 2 MB record here against
        ~0.8 ms without; and one reader per shard confines a damaged shard's errors to it.
        """
        reader = self._readers.get(shard)
        if reader is None:
            from array_record.python import array_record_module

            with _OPEN_LOCK:
                reader = array_record_module.ArrayRecordReader(shard, READER_OPTIONS)
            self._readers[shard] = reader
        return reader

    def record(self, i: int) -> TfdsRecord:
        if self._example is None:
            with _OPEN_LOCK:  # tfds' proto module only: the tfds package itself is not needed
                from tensorflow_datasets.proto import tf_example_pb2
            self._example = tf_example_pb2.Example
        shard, rec = self.shard_of(i)
        try:
            fields = self._example.FromString(self._reader(shard).read([rec])[0]).features.feature
        except Exception as e:  # corrupt/truncated shard: array_record/protobuf errors
            raise CacheError(f"{self._where(i)}: unreadable ArrayRecord data "
                             f"({type(e).__name__}: {e})") from e
        path = fields.get(PATH_FEATURE)
        got = path.bytes_list.value[0].decode() if path and path.bytes_list.value else ""
        if got != self.rel_paths[i]:
            raise CacheError(f"{self._where(i)}: holds '{got}', the index says "
                             f"'{self.rel_paths[i]}' (shards and metadata.json out of step)")
        return TfdsRecord(os.path.join(self.root, got), fields, self.headers(i))

    def check_values(self, i: int, keys: set[str]) -> list[str]:
        """NaN/Inf and FPS-order index problems of record `i` (config.data.validate=full)."""
        try:
            rec = self.record(i)
        except CacheError as e:
            return [str(e)]
        problems = []
        for key in sorted(keys & set(rec)):
            try:
                a = rec[key]
            except CacheError as e:
                problems.append(str(e))
                continue
            pool = schema.FPS_ORDER_OF.get(key)
            if pool and a.size and pool in rec:
                n = rec[pool].shape[0]
                if int(a.min()) < 0 or int(a.max()) >= n:
                    problems.append(f"{rec.path} [{key}]: indices outside [0, {n})")
        return problems


def scan_split(split: TfdsSplit, opts: Any, *, values: bool = False,
               pads: tuple[int, int] = (0, 0)) -> tuple[list[str], Any]:
    """`records.scan_files` for a build: header checks and pool sizes from the index alone;
    `values` (config.data.validate=full) decodes every record for NaN/Inf and index checks."""
    from nepa3d_jax.data import records  # local: records imports the backends

    required = schema.BACKEND_REQUIRED_KEYS[opts.backend]
    limits = schema.size_limits(*pads)
    problems: list[str] = []
    sizes = []
    value_keys = set(schema.KEY_SPECS)
    for i, name in enumerate(split.names):
        headers = split.headers(i)
        probs = schema.check_headers(name, headers, required, limits)
        if values and not probs:
            probs = split.check_values(i, value_keys)
        problems += probs
        sizes.append(records.header_sizes(headers, opts))
    problems += records.outlier_problems(split.names, sizes, opts, pads)
    return problems, records.max_sizes(sizes)
