"""Back-fill a farthest-point order (default `pt_fps_order` of `pt_xyz_pool`) into caches.

  python -m data_prep.add_fps_order --cache_root cache [--splits train,test] [--fps_k 2048] \\
      [--pt_key pt_xyz_pool] [--out_key pt_fps_order] [--workers 8] [--overwrite]

In place and atomic: the file is copied beside itself, the new `<out_key>.npy` member is
appended to the copy (no other array is recompressed), and the copy replaces the original.
With --overwrite an existing key is recomputed and the whole archive rewritten. Files that
already hold the key are skipped, so an interrupted run resumes. Symlinked views are
followed to their targets (each target processed once).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import zipfile

import numpy as np
from tqdm import tqdm

from data_prep.atomic import atomic_savez
from data_prep.fps import fps_order
from data_prep.runner import process_context
from nepa3d_jax import atomic_io
from nepa3d_jax import cli
from nepa3d_jax.process_pool import process_pool


def list_caches(cache_root: str, splits: list[str]) -> list[str]:
    files = set()
    for split in splits:
        base = os.path.join(cache_root, split)
        for dirpath, _, names in os.walk(base, followlinks=True):
            files.update(os.path.realpath(os.path.join(dirpath, n))
                         for n in names if n.endswith(".npz"))
    return sorted(files)


def add_order(path: str, pt_key: str = "pt_xyz_pool", out_key: str = "pt_fps_order",
              fps_k: int = 2048, overwrite: bool = False) -> str:
    """'ok' | 'skip' | 'fail: <reason>' for one cache file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if out_key in z.files and not overwrite:
                return "skip"
            if pt_key not in z.files:
                return f"fail: missing key {pt_key} (has: {', '.join(sorted(z.files))})"
            order = fps_order(z[pt_key], fps_k).astype(np.int32)
            if out_key in z.files:
                payload = {k: z[k] for k in z.files}
                payload[out_key] = order
                atomic_savez(path, payload)
                return "ok"
        buf = io.BytesIO()
        np.lib.format.write_array(buf, order, allow_pickle=False)
        with atomic_io.atomic_path(path) as tmp:
            shutil.copyfile(path, tmp)
            with zipfile.ZipFile(tmp, mode="a") as zf:
                zf.writestr(f"{out_key}.npy", buf.getvalue(), compress_type=zipfile.ZIP_STORED)
        return "ok"
    except Exception as e:  # one broken file must not stop the migration
        return f"fail: {type(e).__name__}: {e}"


def _one(args: tuple) -> tuple[str, str]:
    path, kw = args
    return path, add_order(path, **kw)


def run(cache_root: str, splits: list[str], workers: int = 1, **kw) -> dict[str, int]:
    files = list_caches(cache_root, splits)
    if not files:
        raise FileNotFoundError(f"no .npz under {cache_root} for splits {splits}")
    stats = {"ok": 0, "skip": 0, "fail": 0}
    tasks = [(f, kw) for f in files]
    with tqdm(total=len(files), desc="add_fps_order", mininterval=1.0, file=sys.stderr) as bar:
        if workers <= 1:
            results = map(_one, tasks)
        else:
            ex = process_pool(workers, process_context())
            results = ex.map(_one, tasks, chunksize=8)
        for path, status in results:
            bar.update(1)
            key = status.split(":")[0]
            stats[key] += 1
            if key == "fail":
                tqdm.write(f"skipped {path}: {status[6:]}", file=sys.stdout)
        if workers > 1:
            ex.shutdown()
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = cli.ArgumentParser(prog="python -m data_prep.add_fps_order", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache_root", required=True)
    cli.add_list(ap, "--splits", default=("train", "test"), help="split folders")
    ap.add_argument("--fps_k", type=int, default=2048)
    ap.add_argument("--pt_key", default="pt_xyz_pool")
    ap.add_argument("--out_key", default="pt_fps_order")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    splits = [s.strip() for s in args.splits if s.strip()]
    try:
        stats = run(args.cache_root, splits, args.workers, pt_key=args.pt_key,
                    out_key=args.out_key, fps_k=args.fps_k, overwrite=args.overwrite)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"done: ok={stats['ok']} skip={stats['skip']} fail={stats['fail']}")
    return 1 if stats["ok"] + stats["skip"] == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
