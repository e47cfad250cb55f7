"""Write one ArrayRecord shard of a TFDS build (`data_prep.to_tfds`): one process, one file.

A shard is a contiguous block of a split's sorted file list. Its records are tfds' own Example
encoding (`FeaturesDict.encode_example`, then tfds' `ExampleSerializer`, as tfds' `Writer`) of
the same features a tfds builder would use, written straight to ArrayRecord: no shuffle buffer,
no bucket files, one read of each `.npz`. The proto is serialized deterministically (tfds'
`serialize_example` orders the feature map differently in each process: same Example, other
bytes), so a build, resumed or not, is reproducible byte for byte.
The shard goes to `<name>.tmp-<pid>` and is renamed when complete, after its size file
(`<name>.size.json`: records and serialized bytes, for `dataset_info.json`), so a shard with its
final name is always whole and a resumed build knows its sizes without reading it.

Test hook (one place, read by `write_shard`): with `NEPA3D_TO_TFDS_PAUSE_AFTER_RECORDS=n` in the
environment, a process that has written n records prints `paused` and sleeps, so a test can
SIGKILL a build midway at a known point (tests/test_tfds.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import sys
import time
from typing import Any

from nepa3d_jax import atomic_io
from nepa3d_jax.data import schema, tfds_source

# ArrayRecord writer options: one record per chunk (random access, tfds' own choice) and no
# compression. tfds' adapter keeps the library default (brotli), which would put a decompression
# back on every read, the cost this form exists to remove.
RECORD_OPTIONS = "group_size:1,uncompressed"

SIZE_SUFFIX = ".size.json"
TMP_INFIX = ".tmp-"

PAUSE_ENV = "NEPA3D_TO_TFDS_PAUSE_AFTER_RECORDS"
_written = 0


@dataclasses.dataclass(frozen=True)
class ShardJob:
    cache_root: str
    staging: str
    split: str
    shard: int                 # index of this shard in the split
    num_shards: int
    files: tuple[str, ...]     # relative paths `<split>/<class>/<id>.npz`, record order
    spec_json: str             # the index's spec and classes (hashable: features are cached)


def shard_name(split: str, shard: int, num_shards: int) -> str:
    """tfds' file name of a shard (`nepa3d_caches-<split>.array_record-0000k-of-0000n`)."""
    from tensorflow_datasets.core import naming

    template = naming.ShardedFileTemplate(
        data_dir=".", template=naming.DEFAULT_FILENAME_TEMPLATE,
        dataset_name=tfds_source.BUILD_NAME, split=split, filetype_suffix="array_record")
    return template.relative_filepath(shard_index=shard, num_shards=num_shards)


def spec_json(index: dict[str, Any]) -> str:
    return json.dumps(dict(spec=index["spec"], classes=index["classes"]), sort_keys=True)


@functools.lru_cache(maxsize=4)
def features_of(spec: str):
    """The build's tfds `FeaturesDict`: raw BYTES tensors, class label, path and split texts."""
    import numpy as np
    import tensorflow_datasets as tfds

    s = json.loads(spec)
    feats: dict[str, Any] = {
        k: tfds.features.Tensor(shape=tuple(v["shape"]), dtype=np.dtype(v["dtype"]),
                                encoding=tfds.features.Encoding.BYTES)
        for k, v in s["spec"].items()}
    feats[tfds_source.LABEL_FEATURE] = tfds.features.ClassLabel(names=s["classes"])
    feats[tfds_source.PATH_FEATURE] = tfds.features.Text()
    feats[tfds_source.SPLIT_FEATURE] = tfds.features.Text()
    return tfds.features.FeaturesDict(feats)


@functools.lru_cache(maxsize=4)
def _serializer(spec: str):
    from tensorflow_datasets.core import example_serializer

    return example_serializer.ExampleSerializer(features_of(spec).get_serialized_info())


def serialize(spec: str, example: dict[str, Any]) -> bytes:
    """One record: the tf.train.Example of `example` under the build's features."""
    proto = _serializer(spec).get_tf_example(features_of(spec).encode_example(example))
    return proto.SerializeToString(deterministic=True)


def read_size(staging: str, name: str) -> dict[str, int] | None:
    """The size file of a finished shard, or None when the shard is missing or incomplete."""
    path = os.path.join(staging, name)
    if not os.path.isfile(path):
        return None
    try:
        with open(path + SIZE_SUFFIX) as f:
            size = json.load(f)
        return dict(records=int(size["records"]), bytes=int(size["bytes"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _pause_hook() -> None:
    global _written
    _written += 1
    limit = os.environ.get(PAUSE_ENV)
    if limit and _written == int(limit):
        print("paused", flush=True)
        time.sleep(600)
        sys.exit(3)  # the test kills us long before


def write_shard(job: ShardJob) -> tuple[str, int, int]:
    """Write one shard; returns (file name, records, serialized bytes)."""
    from array_record.python import array_record_module

    classes = json.loads(job.spec_json)["classes"]
    keys = list(json.loads(job.spec_json)["spec"])
    name = shard_name(job.split, job.shard, job.num_shards)
    final = os.path.join(job.staging, name)
    tmp = f"{final}{TMP_INFIX}{os.getpid()}"
    nbytes = 0
    try:
        writer = array_record_module.ArrayRecordWriter(tmp, RECORD_OPTIONS)
        try:
            for rel in job.files:
                ex: dict[str, Any] = dict(
                    schema.load_cache(os.path.join(job.cache_root, rel), keys))
                ex[tfds_source.PATH_FEATURE] = rel
                ex[tfds_source.SPLIT_FEATURE] = job.split
                ex[tfds_source.LABEL_FEATURE] = classes.index(rel.split("/")[-2])
                data = serialize(job.spec_json, ex)
                writer.write(data)
                nbytes += len(data)
                _pause_hook()
        finally:
            writer.close()
        fd = os.open(tmp, os.O_RDONLY)  # on disk before it gets its final name
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        atomic_io.write_text_atomic(final + SIZE_SUFFIX,
                          json.dumps(dict(records=len(job.files), bytes=nbytes)))
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    return name, len(job.files), nbytes
