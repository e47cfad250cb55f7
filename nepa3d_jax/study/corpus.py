"""The study corpus: which folders feed pretraining, the probes and CPAC.

The library names its builder by reference (`module:function`, like `data.synthetic` of the
demo) and imports no data-prep code: `ensure(out_dir, scale, builder)` calls it when the corpus
is missing and reads back the paths it wrote to `<out_dir>/study_corpus.json`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable

from nepa3d_jax import io as nio
from nepa3d_jax.train.corpus import corpus_builder

STUDY_BUILDER = "data_prep.study_corpus:build_study_corpus"
MANIFEST = "study_corpus.json"


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Folders of a built study corpus (`<root>/<split>/<class>/<id>.npz` each)."""
    mesh_root: str          # meshes -> caches: mesh / udfgrid / pointcloud backends
    pretrain_split: str     # the unlabelled pretraining split of mesh_root
    scan_root: str          # partial-view point clouds (ScanObjectNN-style)
    scan_split: str
    labeled_root: str       # labelled shapes: `labeled_train` (few-shot pool) and `labeled_test`
    labeled_train: str
    labeled_test: str
    cpac_root: str          # the CPAC split view (train_udf / eval)
    classes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def from_json(data: dict[str, Any], where: str) -> Corpus:
    fields = [f.name for f in dataclasses.fields(Corpus)]
    missing = [f for f in fields if f not in data]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)} (rebuild the corpus)")
    return Corpus(**{**{f: data[f] for f in fields}, "classes": tuple(data["classes"])})


def ensure(out_dir: str, scale: str, builder: str = STUDY_BUILDER, *,
           log: Callable[[str], None] = print, workers: int = 2) -> Corpus:
    """The corpus at `out_dir`, built first (resumable: finished files are skipped) when its
    manifest is missing."""
    manifest = os.path.join(out_dir, MANIFEST)
    if not os.path.isfile(manifest):
        log(f"[study] building the study corpus ({scale}) in {out_dir} (first run only)")
        paths = corpus_builder(builder, "study corpus builder")(
            out_dir, scale=scale, workers=workers, log=log)
        nio.write_json_atomic(manifest, dict(paths, scale=scale))
    with open(manifest, encoding="utf-8") as f:
        data = json.load(f)
    if data.get("scale") != scale:
        raise ValueError(f"{manifest}: corpus was built at scale {data.get('scale')!r}, the "
                         f"preset wants {scale!r}; use another --corpus folder")
    return from_json(data, manifest)
