"""A procedural corpus that exercises every backend, built with the real data-prep tools.

  python -m data_prep.synthetic --out DIR [--n_per_class 4] [--classes box torus ...]
      [--seed 0] [--workers 1] [--scan_points 1024] [profile flags; default: small profile]
  python -m data_prep.synthetic --profile study --out DIR [--scale tiny|small|full]
      [--workers 2] [--seed 0] [--n_pretrain N] [--n_train N] [--n_test N] [--classes ...]

Two profiles. `demo` (the default, described here) is the demo's corpus. `study` is the
corpus of pretraining studies (16 confusable classes, pretrain / few-shot / test splits):
`data_prep.study_corpus` builds it and its docstring describes it; profile flags, --n_per_class,
--scan_points and --test_ratio belong to the demo profile.

Layout under DIR:
  meshes/<class>/{train,test}/<class>_<i>.off         procedural meshes (ModelNet layout)
  cache/{train,test}/<class>/<class>_<i>.npz          `meshes` caches (mesh, pointcloud*,
                                                      udfgrid, voxel backends)
  scan_h5/main_split/{training,test}_objectdataset.h5 partial, noisy views of the same meshes
                                                      (`data` (N, P, 3) f32, `label` (N,) i64)
  scan_cache/{train,test}/class_<NNN>/*.npz (+ _meta) `scanobjectnn` caches
  unpaired_split.json, unpaired/{train_mesh,train_pc,train_udf,eval}/<class>/*.npz
                                                      CPAC split map and its symlink view
  classes.txt                                         label index -> class name

Of n_per_class shapes per class, round(test_ratio * n) (at least 1) are test shapes. Every
step skips finished outputs, so a second call returns at once. The default (small profile,
7 classes x 4 shapes) takes a few seconds on 2 CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import h5py
import numpy as np

from data_prep import meshes, scanobjectnn, shapes, unpaired_split
from data_prep.atomic import add_compress_arg, atomic_path, atomic_write_text
from data_prep.profile import SMALL, Profile, add_profile_args, profile_from_args
from data_prep.runner import shape_rng
from nepa3d_jax import cli
from nepa3d_jax import io as nio


def _write_meshes(mesh_root: str, classes, n_per_class: int, n_test: int, seed: int):
    """Write missing meshes; return [(split, class, name, mesh)] for every shape."""
    out = []
    for cls in classes:
        for i in range(n_per_class):
            split = "test" if i >= n_per_class - n_test else "train"
            name = f"{cls}_{i:04d}"
            mesh = shapes.make_shape(cls, shape_rng(seed, f"mesh/{cls}/{name}"))
            path = os.path.join(mesh_root, cls, split, f"{name}.off")
            if not os.path.exists(path):
                atomic_write_text(path, mesh.export(file_type="off"))
            out.append((split, cls, name, mesh))
    return out


def _write_scan_h5(path: str, items, classes, n_points: int, seed: int) -> None:
    if os.path.exists(path):
        return
    data = np.stack([shapes.partial_scan(m, n_points, shape_rng(seed, f"scan/{c}/{n}"))
                     for _, c, n, m in items]).astype(np.float32)
    label = np.array([classes.index(c) for _, c, _, _ in items], np.int64)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("data", data=data)
            f.create_dataset("label", data=label)


def build_synthetic_corpus(out_dir: str, n_per_class: int = 4, seed: int = 0,
                           profile: Profile = SMALL, classes=shapes.FAMILIES,
                           workers: int = 1, scan_points: int = 1024, test_ratio: float = 0.25,
                           log=print, compress: str = "zlib") -> dict[str, str]:
    """Build (or finish) the corpus under `out_dir`; returns the paths of its parts."""
    classes = list(classes)
    unknown = [c for c in classes if c not in shapes.FAMILIES]
    if unknown:
        raise ValueError(f"unknown classes {unknown}; known: {', '.join(shapes.FAMILIES)}")
    if n_per_class < 2:
        raise ValueError(f"n_per_class must be >= 2 (train and test), got {n_per_class}")
    n_test = min(max(1, int(round(test_ratio * n_per_class))), n_per_class - 1)
    paths = {k: os.path.join(out_dir, k) for k in
             ("meshes", "cache", "scan_h5", "scan_cache", "unpaired")}
    paths["split_json"] = os.path.join(out_dir, "unpaired_split.json")
    atomic_write_text(os.path.join(out_dir, "classes.txt"), "\n".join(classes) + "\n")

    items = _write_meshes(paths["meshes"], classes, n_per_class, n_test, seed)
    s = meshes.process_modelnet(paths["meshes"], paths["cache"], profile, ["train", "test"],
                                seed, workers, log=log, compress=compress)
    log(s.line())
    if s.failed:
        raise RuntimeError(f"synthetic meshes failed: {s.failed[:3]}")
    h5_dir = os.path.join(paths["scan_h5"], "main_split")
    for split, h5 in (("train", "training_objectdataset.h5"), ("test", "test_objectdataset.h5")):
        _write_scan_h5(os.path.join(h5_dir, h5), [it for it in items if it[0] == split],
                       classes, scan_points, seed)
        s = scanobjectnn.process_split(
            h5_dir, paths["scan_cache"], split, profile.pt_pool, profile.ray_pool,
            seed + (scanobjectnn.TEST_SEED_OFFSET if split == "test" else 0),
            workers=workers, surface_ratio=profile.pt_surface_ratio,
            surface_sigma=profile.pt_surface_sigma, log=log, compress=compress)
        log(s.line("samples"))
    split_map = unpaired_split.build_split_map(paths["cache"], seed=seed)
    if not os.path.exists(paths["split_json"]):
        atomic_write_text(paths["split_json"], nio.dumps(split_map, indent=2))
    unpaired_split.materialize_view(paths["cache"], split_map, paths["unpaired"])
    return paths


PROFILES = ("demo", "study")


def _main_study(ap: argparse.ArgumentParser, args: argparse.Namespace) -> dict:
    from data_prep import study_corpus

    defaults = ap.parse_args(["--out", args.out])
    changed = [k for k in vars(args) if k not in ("out", "profile", "scale", "workers", "seed",
                                                  "classes", "compress", "n_pretrain",
                                                  "n_train", "n_test")
               and getattr(args, k) != getattr(defaults, k)]
    if changed:
        raise ValueError(f"--{changed[0]} belongs to the demo profile, not --profile study "
                         "(its sizes come from --scale and --n_pretrain/--n_train/--n_test)")
    return study_corpus.build_study_corpus(
        args.out, args.scale, args.seed, args.workers, args.classes or None,
        n_pretrain=args.n_pretrain, n_train=args.n_train, n_test=args.n_test,
        compress=args.compress)


def main(argv: list[str] | None = None) -> int:
    ap = cli.ArgumentParser(prog="python -m data_prep.synthetic", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="corpus folder to write")
    ap.add_argument("--profile", choices=PROFILES, default="demo",
                    help="demo: the demo's corpus; study: data_prep.study_corpus")
    ap.add_argument("--n_per_class", type=int, default=4)
    cli.add_list(ap, "--classes", help=f"shape families (demo default: all of "
                 f"{', '.join(shapes.FAMILIES)}; study default: all 16 study classes)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=None,
                    help="processes (default: 1 for demo, 2 for study)")
    g = ap.add_argument_group("study profile")
    g.add_argument("--scale", choices=("tiny", "small", "full"), default="small")
    g.add_argument("--n_pretrain", type=int, default=None, help="shapes per class (overrides)")
    g.add_argument("--n_train", type=int, default=None, help="labeled shapes per class")
    g.add_argument("--n_test", type=int, default=None, help="test shapes per class")
    ap.add_argument("--scan_points", type=int, default=1024)
    ap.add_argument("--test_ratio", type=float, default=0.25)
    add_profile_args(ap, SMALL)
    add_compress_arg(ap)
    args = ap.parse_args(argv)
    try:
        if args.profile == "study":
            args.workers = 2 if args.workers is None else args.workers
            paths = _main_study(ap, args)
        else:
            if args.scale != "small" or any(getattr(args, f"n_{k}") is not None
                                             for k in ("pretrain", "train", "test")):
                raise ValueError("--scale and --n_pretrain/--n_train/--n_test belong to "
                                 "--profile study")
            paths = build_synthetic_corpus(
                args.out, args.n_per_class, args.seed, profile_from_args(args, "mesh"),
                args.classes or shapes.FAMILIES, args.workers or 1, args.scan_points,
                args.test_ratio, compress=args.compress)
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("synthetic corpus:", json.dumps(paths, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
