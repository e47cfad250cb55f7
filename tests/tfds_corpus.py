"""The small synthetic corpus and its TFDS build shared by the TFDS and loader-worker tests,
with the data config they read it through and a damaged copy of the build."""

import pathlib
import shutil

import ml_collections

from data_prep import to_tfds
from data_prep.synthetic import build_synthetic_corpus
from nepa3d_jax.config.loading import fill_defaults
from nepa3d_jax.data import tfds_source

REPO = pathlib.Path(__file__).resolve().parents[1]


def make(tmp_path_factory) -> tuple[pathlib.Path, pathlib.Path]:
    """(cache root, its TFDS build): 2 classes x 3 shapes, small profile, 2 shards per split."""
    base = tmp_path_factory.mktemp("tfds")
    paths = build_synthetic_corpus(str(base / "syn"), n_per_class=3, classes=["box", "torus"],
                                   log=lambda *a: None)
    build = to_tfds.build(paths["cache"], str(base / "tfds"), workers=1, shards=2,
                          log=lambda *a: None)
    return pathlib.Path(paths["cache"]), pathlib.Path(build)


def data_cfg(root, loader, **kw):
    c = dict(mix={"a_mesh": dict(cache_root=str(root), split="train", backend="mesh", weight=1.0),
                  "b_udf": dict(cache_root=str(root), split="train", backend="udfgrid",
                                weight=0.5)},
             mix_config="", mix_num_samples=12, mix_seed=5, replacement=True, validate="full",
             prefetch=2, loader=loader, workers=2)
    c.update(kw)
    return fill_defaults(ml_collections.ConfigDict(dict(data=c))).data


def damaged_copy(build, tmp_path, how):
    dst = tmp_path / "copy" / tfds_source.BUILD_NAME / build.name
    shutil.copytree(build, dst)
    shard = sorted(dst.glob("*-train.array_record-*"))[-1]
    data = bytearray(shard.read_bytes())
    if how == "flip":
        mid = len(data) // 2
        data[mid:mid + 64] = bytes(b ^ 0xFF for b in data[mid:mid + 64])
    else:
        data = data[: len(data) // 2]
    shard.write_bytes(bytes(data))
    return dst, shard
