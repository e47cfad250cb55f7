"""Mesh folder -> per-shape caches (ModelNet or ShapeNetCore.v2 layout).

  python -m data_prep.meshes --layout modelnet --root ModelNet40 --out cache \\
      --split all --workers 8 [--seed 0] [--overwrite] [profile flags]

Each shape gets its own RNG from (--seed, "<split>/<class>/<name>"), so results do not depend
on the worker count or on which shapes were already done. Finished outputs are kept unless
--overwrite; outputs appear atomically. Bad meshes are skipped with a one-line reason; the
exit status is non-zero only when nothing could be written.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from data_prep import layout
from data_prep.atomic import add_compress_arg, remove_stale_temps
from data_prep.mesh_cache import mesh_file_to_cache
from data_prep.profile import Profile, add_profile_args, profile_from_args
from data_prep.runner import Job, Summary, run_jobs
from nepa3d_jax import cli
from nepa3d_jax import atomic_io


def build_jobs(items: list[layout.MeshItem], out_root: str, profile: Profile, seed: int) -> list[Job]:
    return [Job(it.shape_id, it.out_path(out_root), mesh_file_to_cache,
                (it.mesh_path, profile, seed, it.shape_id)) for it in items]


def process_modelnet(root: str, out_root: str, profile: Profile, splits: list[str],
                     seed: int = 0, workers: int = 1, overwrite: bool = False,
                     ext: str = "off", num_shards: int = 1, shard_id: int = 0,
                     log=print, compress: str = "zlib") -> Summary:
    items, warnings = layout.modelnet_items(root, splits, ext)
    for w in warnings:
        log(f"warning: {w}")
    items = layout.shard(items, num_shards, shard_id)
    if os.path.isdir(out_root):
        remove_stale_temps(out_root)
    return run_jobs(build_jobs(items, out_root, profile, seed), workers, overwrite,
                    desc="meshes", log=log, compress=compress)


def write_provenance(args: argparse.Namespace, profile: Profile, summary: Summary) -> None:
    """`<out_root>/_meta/meshes_<split>_source.json`: what this run was asked to do."""
    meta = {"tool": "data_prep.meshes", "layout": args.layout,
            "root": os.path.abspath(args.root), "split": args.split, "seed": args.seed,
            "num_shards": args.num_shards, "shard_id": args.shard_id,
            "profile": dataclasses.asdict(profile),
            "result": {"total": summary.total, "written": summary.written,
                       "existing": summary.existing, "skipped": len(summary.failed)}}
    name = f"meshes_{args.split}_source" + (f"_shard{args.shard_id}" if args.num_shards > 1 else "")
    atomic_io.write_text_atomic(os.path.join(args.out_root, "_meta", f"{name}.json"),
                      atomic_io.dumps(meta, indent=2))


def main(argv: list[str] | None = None) -> int:
    ap = cli.ArgumentParser(prog="python -m data_prep.meshes", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layout", choices=("modelnet", "shapenet"), default="modelnet")
    ap.add_argument("--root", required=True, help="mesh root folder")
    ap.add_argument("--out", "--out_root", dest="out_root", required=True,
                    help="cache root to write")
    ap.add_argument("--split", choices=("train", "test", "all"), default="all")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--ext", default="off", help="mesh file extension (modelnet layout)")
    ap.add_argument("--mesh_glob", default="*/*/models/model_normalized.obj",
                    help="glob under --root (shapenet layout)")
    ap.add_argument("--split_list", default=None,
                    help="folder with train.txt/test.txt (shapenet layout; default: --test_ratio)")
    ap.add_argument("--test_ratio", type=float, default=0.1)
    ap.add_argument("--split_seed", type=int, default=0)
    ap.add_argument("--num_shards", type=int, default=1, help="split the shape list into N jobs")
    ap.add_argument("--shard_id", type=int, default=0, help="0-based shard of this job")
    add_profile_args(ap)
    add_compress_arg(ap)
    args = ap.parse_args(argv)
    splits = ["train", "test"] if args.split == "all" else [args.split]
    try:
        if args.layout == "modelnet":
            profile = profile_from_args(args, "mesh")
            summary = process_modelnet(args.root, args.out_root, profile, splits, args.seed,
                                       args.workers, args.overwrite, args.ext,
                                       args.num_shards, args.shard_id,
                                       compress=args.compress)
        else:
            profile = profile_from_args(args, "kdtree")
            paths = layout.shapenet_mesh_paths(args.root, args.mesh_glob)
            split_map = (layout.list_split(paths, args.split_list) if args.split_list else
                         layout.ratio_split(paths, args.test_ratio, args.split_seed))
            if len(split_map) < len(paths):
                print(f"warning: {len(paths) - len(split_map)} meshes are in neither split list")
            items = layout.shard(layout.shapenet_items(splits, split_map, args.out_root),
                                 args.num_shards, args.shard_id)
            remove_stale_temps(args.out_root)
            summary = run_jobs(build_jobs(items, args.out_root, profile, args.seed),
                               args.workers, args.overwrite, desc="meshes",
                               compress=args.compress)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_provenance(args, profile, summary)
    print(summary.line())
    return summary.exit_code()


if __name__ == "__main__":
    sys.exit(main())
