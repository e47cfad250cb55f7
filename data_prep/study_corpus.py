"""The study corpus: 16 classes of confusable primitives and composite objects
(`data_prep.study_shapes`), split for pretraining, few-shot training and testing.

  python -m data_prep.synthetic --profile study --out data/study [--scale tiny|small|full]
      [--workers 2] [--seed 0] [--n_pretrain N --n_train N --n_test N]

Splits (shapes per class; every split's shapes are drawn independently, shape i of a split
is the same in every scale, so a smaller scale is a subset of a larger one):

  scale   pretrain  train (labeled pool)  test   total (16 classes)
  tiny         3          2                 2       112   (cheap cache profile, for tests)
  small      192         25                40     4,112
  full       500         40                80     9,920

Layout under DIR:
  meshes/<class>/{pretrain,train,test}/<class>_<split>_<i>.off   the generated meshes
  cache/{pretrain,train,test}/<class>/<name>.npz   `meshes` caches (mesh, pointcloud*, udfgrid,
      voxel backends): pretrain = the unlabeled pretraining set (its class folders are
      there only because every cache root has them; pretraining reads no label),
      train = the labeled few-shot pool, test = the test set
  scan_h5/{pretrain_split,main_split}/*_objectdataset.h5   partial, noisy single-view scans
      of the same meshes, ScanObjectNN's format (`data` (N, P, 3) f32, `label` (N,) i64)
  scan_cache/{pretrain,train,test}/class_<NNN>/*.npz   `scanobjectnn` caches of those scans
      (pointcloud_noray backend; class_<NNN> is label NNN of classes.txt)
  unpaired_split.json, unpaired/{train_mesh,train_pc,train_udf,eval}/<class>/*.npz   the CPAC
      split map of the pretrain shapes (eval = test) and its symlink view
  classes.txt   label index -> class name (sorted names, the classification reader's order)
  study.json    what was built (scale, seed, counts per split, cache profile, paths);
      written last, so its presence means the corpus is complete

Every step skips finished outputs (a second call returns in seconds) and is seeded per shape,
so the result depends on neither the worker count nor interruptions. A folder holds one
corpus: asking for another scale, seed or class list there is an error.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence

import h5py
import numpy as np
import trimesh
from tqdm import tqdm

from data_prep import meshes, scanobjectnn, shapes, study_shapes, unpaired_split
from data_prep.profile import Profile
from data_prep.runner import process_context, shape_rng
from nepa3d_jax import atomic_io
from nepa3d_jax.atomic_io import atomic_path
from nepa3d_jax.process_pool import process_pool

SPLITS = ("pretrain", "train", "test")
PRETRAIN_SCAN_SEED_OFFSET = 1_000_000      # scan caches: pretrain seed + this, test + 12345

# The cache profile: pools sized for n_point 64-128 / n_ray 0-64 training and CPAC queries.
STUDY_PROFILE = Profile(pc_points=1024, pt_pool=2048, ray_pool=512, n_views=8,
                        rays_per_view=64, pc_grid=32, df_grid=32)
TINY_PROFILE = Profile(pc_points=256, pt_pool=512, ray_pool=128, n_views=4, rays_per_view=32,
                       pc_grid=16, df_grid=16)


@dataclasses.dataclass(frozen=True)
class Scale:
    pretrain: int        # shapes per class in each split
    train: int
    test: int
    profile: Profile = STUDY_PROFILE
    scan_points: int = 1024


SCALES = {"tiny": Scale(3, 2, 2, TINY_PROFILE, 256),
          "small": Scale(192, 25, 40),
          "full": Scale(500, 40, 80)}


def resolve_scale(scale: str, n_pretrain: int | None = None, n_train: int | None = None,
                  n_test: int | None = None) -> Scale:
    """The named scale with any explicit per-class count replacing its own."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; known: {', '.join(SCALES)}")
    base = SCALES[scale]
    s = dataclasses.replace(base, **{k: int(v) for k, v in
                                     (("pretrain", n_pretrain), ("train", n_train),
                                      ("test", n_test)) if v is not None})
    for split in SPLITS:
        if getattr(s, split) < 1:
            raise ValueError(f"shapes per class in split {split!r} must be >= 1, "
                             f"got {getattr(s, split)}")
    return s


def shape_name(cls: str, split: str, i: int) -> str:
    return f"{cls}_{split}_{i:04d}"


def _mesh_and_scan(path: str, cls: str, split: str, i: int, seed: int,
                   scan_points: int) -> np.ndarray | None:
    """Write the mesh if missing; return its partial scan (None when scan_points == 0).

    The scan is taken from the mesh as read back from its file, so a resumed build scans
    exactly what a fresh one does."""
    name = shape_name(cls, split, i)
    if not os.path.exists(path):
        mesh = study_shapes.make_study_shape(cls, shape_rng(seed, f"study/{cls}/{name}"))
        atomic_io.write_text_atomic(path, mesh.export(file_type="off"))
    if scan_points <= 0:
        return None
    mesh = trimesh.load(path, force="mesh", process=False)
    return shapes.partial_scan(mesh, scan_points, shape_rng(seed, f"study_scan/{cls}/{name}"))


def _call(args):
    return args[:4], _mesh_and_scan(*args)


def _scan_h5_path(out_dir: str, split: str) -> str:
    if split == "pretrain":
        return os.path.join(out_dir, "scan_h5", "pretrain_split", "training_objectdataset.h5")
    name = "training" if split == "train" else "test"
    return os.path.join(out_dir, "scan_h5", "main_split", f"{name}_objectdataset.h5")


def _write_h5(path: str, data: np.ndarray, label: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("data", data=data)
            f.create_dataset("label", data=label)


def write_meshes_and_scans(out_dir: str, classes: Sequence[str], scale: Scale, seed: int,
                           workers: int, log=print) -> None:
    """Generate the missing meshes (in parallel) and the scan h5 file of each split."""
    tasks, want = [], {}
    for split in SPLITS:
        h5 = _scan_h5_path(out_dir, split)
        want[split] = not os.path.exists(h5)
        for cls in classes:
            for i in range(getattr(scale, split)):
                path = os.path.join(out_dir, "meshes", cls, split,
                                    shape_name(cls, split, i) + ".off")
                if want[split] or not os.path.exists(path):
                    tasks.append((path, cls, split, i, seed,
                                  scale.scan_points if want[split] else 0))
    if not tasks:
        return
    scans: dict[tuple[str, str, int], np.ndarray] = {}
    bar = tqdm(total=len(tasks), desc="study meshes", unit="shape", mininterval=1.0,
               file=sys.stderr)
    t0 = time.perf_counter()
    if workers <= 1:
        results = map(_call, tasks)
    else:
        pool = process_pool(workers, process_context())
        results = pool.map(_call, tasks, chunksize=8)
    try:
        for (path, cls, split, i), scan in results:
            if scan is not None:
                scans[(split, cls, i)] = scan
            bar.update(1)
    finally:
        if workers > 1:
            pool.shutdown(cancel_futures=True)
        bar.close()
    log(f"study meshes: {len(tasks)} shapes in {time.perf_counter() - t0:.1f}s")
    for split in SPLITS:
        if want[split]:
            keys = [(split, c, i) for c in classes for i in range(getattr(scale, split))]
            data = np.stack([scans[k] for k in keys]).astype(np.float32)
            label = np.array([list(classes).index(k[1]) for k in keys], np.int64)
            _write_h5(_scan_h5_path(out_dir, split), data, label)


def _request(scale: Scale, seed: int, classes: Sequence[str]) -> dict:
    return {"profile": "study", "seed": int(seed), "classes": list(classes),
            "per_class": {s: getattr(scale, s) for s in SPLITS},
            "scan_points": scale.scan_points, "cache_profile": dataclasses.asdict(scale.profile)}


def _check_request(out_dir: str, request: dict) -> None:
    """A folder holds one corpus: refuse to mix a different request into a started one."""
    for name in ("study.json", os.path.join("_meta", "study_request.json")):
        path = os.path.join(out_dir, name)
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
        old = old.get("request", old)
        if old != request:
            diff = sorted(k for k in set(old) | set(request) if old.get(k) != request.get(k))
            raise ValueError(f"{path}: {out_dir} holds a study corpus built with other settings "
                             f"(differs in: {', '.join(diff)}); use another --out folder")
    atomic_io.write_text_atomic(os.path.join(out_dir, "_meta", "study_request.json"),
                      atomic_io.dumps(request, indent=2))


PATH_KEYS = ("pretrain_root", "fewshot_root", "test_root", "scan_root", "unpaired_root",
             "split_json", "meshes", "scan_h5")


def corpus_paths(out_dir: str, classes: Sequence[str]) -> dict:
    """What the study reads: cache roots with their split names, the CPAC view, the classes."""
    cache = os.path.join(out_dir, "cache")
    return {
        "root": out_dir, "classes": list(classes),
        "pretrain_root": cache, "pretrain_split": "pretrain",
        "fewshot_root": cache, "fewshot_split": "train",
        "test_root": cache, "test_split": "test",
        "scan_root": os.path.join(out_dir, "scan_cache"),
        "unpaired_root": os.path.join(out_dir, "unpaired"),
        "split_json": os.path.join(out_dir, "unpaired_split.json"),
        "meshes": os.path.join(out_dir, "meshes"),
        "scan_h5": os.path.join(out_dir, "scan_h5"),
        "manifest": os.path.join(out_dir, "study.json"),
    }


def build_study_corpus(out_dir: str, scale: str = "small", seed: int = 0, workers: int = 2,
                       classes: Sequence[str] | None = None, profile: Profile | None = None,
                       n_pretrain: int | None = None, n_train: int | None = None,
                       n_test: int | None = None, log=print, compress: str = "zlib") -> dict:
    """Build (or finish) the study corpus under `out_dir`; returns `corpus_paths` plus
    `scale`, `seed` and `per_class` (shapes per class of each split).

    `classes` (default: all of `study_shapes.STUDY_CLASSES`) and `profile` (default: the
    scale's) exist for quick tests and experiments; the counts override the scale's."""
    t0 = time.perf_counter()
    sc = resolve_scale(scale, n_pretrain, n_train, n_test)
    if profile is not None:
        sc = dataclasses.replace(sc, profile=profile)
    classes = list(study_shapes.STUDY_CLASSES if classes is None else classes)
    unknown = [c for c in classes if c not in study_shapes.STUDY_CLASSES]
    if unknown or not classes:
        raise ValueError(f"unknown study classes {unknown or '(none given)'}; known: "
                         f"{', '.join(study_shapes.STUDY_CLASSES)}")
    classes = sorted(set(classes))
    out_dir = os.fspath(out_dir)
    request = _request(sc, seed, classes)
    _check_request(out_dir, request)
    paths = corpus_paths(out_dir, classes)
    paths.update(scale=scale, seed=int(seed), per_class={k: getattr(sc, k) for k in SPLITS})
    atomic_io.write_text_atomic(os.path.join(out_dir, "classes.txt"), "\n".join(classes) + "\n")

    write_meshes_and_scans(out_dir, classes, sc, seed, max(1, int(workers)), log)
    s = meshes.process_modelnet(paths["meshes"], paths["pretrain_root"], sc.profile,
                                list(SPLITS), seed, workers, log=log, compress=compress)
    log(s.line())
    if s.failed:
        raise RuntimeError(f"study meshes failed: {s.failed[:3]}")
    p = sc.profile
    for split in SPLITS:
        offset = {"pretrain": PRETRAIN_SCAN_SEED_OFFSET,
                  "test": scanobjectnn.TEST_SEED_OFFSET}.get(split, 0)
        s = scanobjectnn.process_split(
            os.path.dirname(_scan_h5_path(out_dir, split)), paths["scan_root"],
            "test" if split == "test" else "train", p.pt_pool, p.ray_pool, seed + offset,
            workers=workers, surface_ratio=p.pt_surface_ratio,
            surface_sigma=p.pt_surface_sigma, log=log, compress=compress, out_split=split)
        log(s.line("samples"))
        if s.failed:
            raise RuntimeError(f"study scans failed: {s.failed[:3]}")
    if not os.path.exists(paths["split_json"]):
        split_map = unpaired_split.build_split_map(paths["pretrain_root"], seed=seed,
                                                   train_split="pretrain", eval_split="test")
        atomic_io.write_text_atomic(paths["split_json"], atomic_io.dumps(split_map, indent=2))
    with open(paths["split_json"], encoding="utf-8") as f:
        unpaired_split.materialize_view(paths["pretrain_root"], json.load(f),
                                        paths["unpaired_root"])
    if not os.path.exists(paths["manifest"]):
        counts = {s: len(classes) * getattr(sc, s) for s in SPLITS}
        rel = {k: os.path.relpath(paths[k], out_dir) for k in PATH_KEYS}
        atomic_io.write_text_atomic(paths["manifest"], atomic_io.dumps(
            {"request": request, "shapes": counts, "paths": rel,
             "build_seconds": round(time.perf_counter() - t0, 1),
             "workers": int(workers)}, indent=2))
    return paths
