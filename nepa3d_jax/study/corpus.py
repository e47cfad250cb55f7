"""The study corpus: which folders feed pretraining, the probes and CPAC.

The library names its builder by reference (`module:function`, like `data.synthetic` of the
demo) and imports no data-prep code: `ensure(out_dir, scale, builder)` calls it; the builder
makes what is missing (a complete corpus costs a scan) and returns its paths.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

from nepa3d_jax.train.corpus import corpus_builder

STUDY_BUILDER = "data_prep.study_corpus:build_study_corpus"
BASELINE = "data_prep.study_baseline:evaluate_root"  # the hand-crafted baseline (D2 + PCA)
MANIFEST = "study.json"       # the builder writes it last: its presence = a complete corpus


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


def from_builder(paths: dict[str, Any], where: str) -> Corpus:
    """A `Corpus` from what the builder returns (`data_prep.study_corpus.corpus_paths`)."""
    need = ("pretrain_root", "pretrain_split", "scan_root", "fewshot_root", "fewshot_split",
            "test_root", "test_split", "unpaired_root", "classes")
    missing = [k for k in need if k not in paths]
    if missing:
        raise ValueError(f"{where}: the corpus builder returned no {', '.join(missing)}")
    if os.path.normpath(paths["fewshot_root"]) != os.path.normpath(paths["test_root"]):
        raise ValueError(f"{where}: the few-shot pool and the test set must share a cache root "
                         f"(got {paths['fewshot_root']} and {paths['test_root']})")
    return Corpus(mesh_root=paths["pretrain_root"], pretrain_split=paths["pretrain_split"],
                  scan_root=paths["scan_root"], scan_split=paths["pretrain_split"],
                  labeled_root=paths["fewshot_root"], labeled_train=paths["fewshot_split"],
                  labeled_test=paths["test_split"], cpac_root=paths["unpaired_root"],
                  classes=tuple(paths["classes"]))


def ensure(out_dir: str, scale: str, builder: str = STUDY_BUILDER, *,
           log: Callable[[str], None] = print, workers: int = 2) -> Corpus:
    """The corpus at `out_dir`, built (or finished: the builder skips finished files and
    returns in seconds when everything is there) at `scale`."""
    if not os.path.isfile(os.path.join(out_dir, MANIFEST)):
        log(f"[study] building the study corpus ({scale}) in {out_dir} (first run only)")
    paths = corpus_builder(builder, "study corpus builder")(
        out_dir, scale=scale, workers=workers, log=log if not os.path.isfile(
            os.path.join(out_dir, MANIFEST)) else (lambda *_: None))
    return from_builder(paths, builder)


def baseline(corpus: Corpus, shots: list[int], episodes: int, out_json: str,
             ref: str = BASELINE) -> dict[str, float]:
    """Test accuracy (points) per K of the hand-crafted baseline on the study's labelled split,
    episode e = the probes' episode e; computed once and kept in `out_json`."""
    import json

    from nepa3d_jax import atomic_io

    ks = [int(k) for k in shots if int(k) > 0]
    want = {"root": corpus.labeled_root, "ks": ks, "episodes": int(episodes)}
    if os.path.isfile(out_json):
        with open(out_json, encoding="utf-8") as f:
            done = json.load(f)
        if done.get("request") == want:
            return done["points"]
    result = corpus_builder(ref, "study baseline")(
        corpus.labeled_root, ks=ks, episodes=int(episodes), train_split=corpus.labeled_train,
        test_split=corpus.labeled_test)
    points = {f"K{k}": 100.0 * float(result["by_k"][str(k)]["mean"]) for k in ks}
    atomic_io.write_json_atomic(out_json, {"request": want, "points": points, "result": result})
    return points
