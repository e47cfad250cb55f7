"""ScanObjectNN h5 files (`data` (N, P, 3), `label` (N,)) -> per-sample caches.

  python -m data_prep.scanobjectnn --scan_root h5_files/main_split --out scan_cache \\
      [--split all] [--workers 4] [--seed 0] [--rng per_sample|sequential] [--overwrite]

Output `<out>/<split>/class_<label:03d>/<h5 stem>_<index:06d>.npz` with the original's keys:
`pc_xyz` (centroid-centred, unit ball), `pc_n` (zeros), `pc_fps_order`, `pt_xyz_pool`
(uniform + jittered points), `pt_dist_pool` (distance to the point cloud) and zero ray pools
(point clouds carry no rays; train them with `pointcloud_noray`). Train files are those
whose name or folder contains "train"/"training", test files "test"; the test split uses
seed + 12345. RNG: `per_sample` (default; RandomState(seed + global index), parallel and
resumable, equal to the original's multi-worker mode) or `sequential` (one RandomState per
split, single process: the original's default mode, bit for bit). Duplicate h5 basenames
within a split are refused (their outputs would overwrite each other). Provenance goes to
`<out>/_meta/scanobjectnn_<split>_source.txt`.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from collections import defaultdict

import h5py
import numpy as np
from scipy.spatial import cKDTree

from data_prep.atomic import add_compress_arg, remove_stale_temps
from data_prep.fps import fps_order
from data_prep.normalize import unit_ball_points
from data_prep.runner import BadShape, Job, Summary, run_jobs
from data_prep.surface_sampling import query_pool
from nepa3d_jax import atomic_io
from nepa3d_jax import cli

TEST_SEED_OFFSET = 12345


def find_split_files(scan_root: str, split: str) -> list[str]:
    keys = ("train", "training") if split == "train" else ("test",)
    out = set()
    for p in glob.glob(os.path.join(scan_root, "**", "*.h5"), recursive=True):
        name = os.path.basename(p).lower()
        parent = os.path.basename(os.path.dirname(p)).lower()
        if any(k in name or k in parent for k in keys):
            out.add(p)
    return sorted(out)


def check_unique_stems(paths: list[str]) -> None:
    by_stem = defaultdict(list)
    for p in paths:
        by_stem[os.path.splitext(os.path.basename(p))[0]].append(p)
    dup = {k: v for k, v in sorted(by_stem.items()) if len(v) > 1}
    if dup:
        lines = [f"  {k}: {' | '.join(v)}" for k, v in list(dup.items())[:5]]
        raise ValueError(
            f"{len(dup)} duplicate h5 basename(s) under the scan root; their caches would "
            "overwrite each other. Point --scan_root at one variant folder (e.g. main_split) "
            "or pass --allow_duplicate_stems.\n" + "\n".join(lines))


def sample_cache(pc: np.ndarray, pt_pool: int, ray_pool: int, rng, surface_ratio: float,
                 surface_sigma: float) -> dict:
    """Cache arrays of one raw point cloud; `rng` a RandomState (or an int seed for one)."""
    pc = np.asarray(pc)
    if pc.ndim != 2 or pc.shape[1] != 3 or pc.shape[0] == 0:
        raise BadShape(f"point cloud has shape {pc.shape}, expected (P, 3)")
    if not np.isfinite(pc).all():
        raise BadShape(f"point cloud has {int((~np.isfinite(pc)).any(axis=1).sum())} NaN/Inf points")
    if not isinstance(rng, np.random.RandomState):
        rng = np.random.RandomState(int(rng) & 0xFFFFFFFF)
    pc_xyz = unit_ball_points(pc)
    pt_xyz = query_pool(pc_xyz, pt_pool, rng, surface_ratio, surface_sigma)
    pt_dist = cKDTree(pc_xyz).query(pt_xyz, k=1)[0].astype(np.float32)
    z3, z1 = np.zeros((ray_pool, 3), np.float32), np.zeros((ray_pool,), np.float32)
    return {
        "pc_xyz": pc_xyz.astype(np.float32, copy=False), "pc_n": np.zeros_like(pc_xyz),
        "pc_fps_order": fps_order(pc_xyz, pc_xyz.shape[0]),
        "pt_xyz_pool": pt_xyz, "pt_dist_pool": pt_dist,
        "ray_o_pool": z3, "ray_d_pool": z3.copy(), "ray_hit_pool": z1,
        "ray_t_pool": z1.copy(), "ray_n_pool": z3.copy(),
    }


def _read_h5(path: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with h5py.File(path, "r") as f:
            if "data" not in f or "label" not in f:
                raise BadShape(f"h5 has no 'data'/'label' datasets (has: {', '.join(f)})")
            data, label = f["data"][:], f["label"][:].reshape(-1)
    except BadShape:
        raise
    except Exception as e:
        raise BadShape(f"unreadable h5 ({type(e).__name__}: {e})") from e
    if data.ndim != 3 or data.shape[2] != 3 or data.shape[0] != label.shape[0]:
        raise BadShape(f"'data' shape {data.shape} / 'label' shape {label.shape}: "
                       "expected (N, P, 3) and (N,)")
    return data, label.astype(np.int64)


def process_split(scan_root: str, out_root: str, split: str, pt_pool: int = 2000,
                  ray_pool: int = 1000, seed: int = 0, rng_mode: str = "per_sample",
                  workers: int = 1, overwrite: bool = False, surface_ratio: float = 0.5,
                  surface_sigma: float = 0.02, allow_duplicate_stems: bool = False,
                  log=print, compress: str = "zlib", out_split: str | None = None) -> Summary:
    """Cache the `split` h5 files under `<out_root>/<out_split or split>/`."""
    out_split = out_split or split
    paths = find_split_files(scan_root, split)
    if not paths:
        raise FileNotFoundError(f"no {split} h5 files under {scan_root}")
    if not allow_duplicate_stems:
        check_unique_stems(paths)
    meta = [f"scan_root={os.path.abspath(scan_root)}", f"split={split}", f"seed={int(seed)}",
            f"pt_pool={int(pt_pool)}", f"ray_pool={int(ray_pool)}",
            f"pt_surface_ratio={float(surface_ratio)}", f"pt_surface_sigma={float(surface_sigma)}",
            f"rng={rng_mode}", f"h5_count={len(paths)}", *map(os.path.abspath, paths)]
    if out_split != split:
        meta.insert(2, f"out_split={out_split}")
    atomic_io.write_text_atomic(os.path.join(out_root, "_meta", f"scanobjectnn_{out_split}_source.txt"),
                      "\n".join(meta) + "\n")
    remove_stale_temps(os.path.join(out_root, out_split))
    jobs, bad_files, offset = [], [], 0
    shared_rng = np.random.RandomState(int(seed) & 0xFFFFFFFF)
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        try:
            data, label = _read_h5(path)
        except BadShape as e:
            bad_files.append((path, str(e)))
            log(f"skipped {path}: {e}")
            continue
        for i in range(data.shape[0]):
            rng = shared_rng if rng_mode == "sequential" else int(seed) + offset + i
            out = os.path.join(out_root, out_split, f"class_{int(label[i]):03d}",
                               f"{stem}_{i:06d}.npz")
            jobs.append(Job(f"{out_split}/{stem}[{i}]", out, sample_cache,
                            (data[i], pt_pool, ray_pool, rng, surface_ratio, surface_sigma)))
        offset += data.shape[0]
    log(f"{out_split}: {len(jobs)} samples from {len(paths) - len(bad_files)} h5 files")
    summary = run_jobs(jobs, 1 if rng_mode == "sequential" else workers, overwrite,
                       desc=f"scanobjectnn {out_split}", log=log, compress=compress)
    summary.failed = bad_files + summary.failed
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = cli.ArgumentParser(prog="python -m data_prep.scanobjectnn", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scan_root", required=True)
    ap.add_argument("--out", "--out_root", dest="out_root", required=True,
                    help="cache root to write")
    ap.add_argument("--split", choices=("train", "test", "all"), default="all")
    ap.add_argument("--pt_pool", type=int, default=2000)
    ap.add_argument("--ray_pool", type=int, default=1000)
    ap.add_argument("--pt_surface_ratio", type=float, default=0.5)
    ap.add_argument("--pt_surface_sigma", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rng", choices=("per_sample", "sequential"), default="per_sample")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--allow_duplicate_stems", action="store_true")
    add_compress_arg(ap)
    args = ap.parse_args(argv)
    total = Summary()
    try:
        for split in (["train", "test"] if args.split == "all" else [args.split]):
            seed = args.seed + (TEST_SEED_OFFSET if split == "test" else 0)
            total.merge(process_split(
                args.scan_root, args.out_root, split, args.pt_pool, args.ray_pool, seed,
                args.rng, args.workers, args.overwrite, args.pt_surface_ratio,
                args.pt_surface_sigma, args.allow_duplicate_stems, compress=args.compress))
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(total.line("samples"))
    return total.exit_code()


if __name__ == "__main__":
    sys.exit(main())
