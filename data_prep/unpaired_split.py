"""CPAC split map and split view: which training shapes each modality may see.

  python -m data_prep.unpaired_split map  --cache_root cache --out split.json \\
      [--ratios 0.34 0.33 0.33] [--seed 0] [--train_split train] [--eval_split test]
  python -m data_prep.unpaired_split view --src_cache_root cache --split_json split.json \\
      --out unpaired [--link_mode symlink|hardlink|copy] [--splits ...] [--overwrite]

`map`: within each class, the sorted training caches are shuffled by one
RandomState(seed) (classes in sorted order) and cut into train_mesh / train_pc / train_udf
by the ratios (every part non-empty when a class has >= 3 shapes); eval = the eval split.
The JSON (`meta`, `records` of key / split / src_split / src_relpath) equals the original
tool's for the same inputs. `view`: `<out>/<split>/<class>/<id>.npz` as relative symlinks,
hardlinks or copies, plus `<out>/_meta/split_source.json`.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import sys
from collections import defaultdict

import numpy as np

from nepa3d_jax import atomic_io, cli

TRAIN_PARTS = ("train_mesh", "train_pc", "train_udf")
ALL_PARTS = (*TRAIN_PARTS, "eval")


def _list_npz(cache_root: str, split: str) -> list[str]:
    return sorted(glob.glob(os.path.join(cache_root, split, "*", "*.npz")))


def _key(path: str) -> str:
    return f"{os.path.basename(os.path.dirname(path))}/{os.path.splitext(os.path.basename(path))[0]}"


def _part_counts(n: int, w: np.ndarray) -> list[int]:
    n0 = min(max(int(round(w[0] * n)), 0), n)
    n1 = min(max(int(round(w[1] * n)), 0), n - n0)
    counts = [n0, n1, n - n0 - n1]
    if n >= 3:
        for i in range(3):           # borrow one from the largest part for an empty one
            if counts[i] == 0:
                j = int(np.argmax(counts))
                if counts[j] > 1:
                    counts[j] -= 1
                    counts[i] += 1
    return counts


def assign_parts(train_paths: list[str], ratios, seed: int) -> dict[str, str]:
    w = np.asarray(ratios, np.float64)
    if w.shape != (3,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"--ratios must be 3 non-negative numbers (mesh pc udf) with a "
                         f"positive sum, got {list(ratios)}")
    w = w / w.sum()
    by_class = defaultdict(list)
    for p in train_paths:
        by_class[os.path.basename(os.path.dirname(p))].append(p)
    rng = np.random.RandomState(int(seed) & 0xFFFFFFFF)
    out = {}
    for cls in sorted(by_class):
        paths = sorted(by_class[cls])
        rng.shuffle(paths)
        start = 0
        for part, count in zip(TRAIN_PARTS, _part_counts(len(paths), w)):
            for p in paths[start:start + count]:
                out[_key(p)] = part
            start += count
    return out


def build_split_map(cache_root: str, ratios=(0.34, 0.33, 0.33), seed: int = 0,
                    train_split: str = "train", eval_split: str = "test") -> dict:
    cache_root = os.path.abspath(cache_root)
    train, ev = _list_npz(cache_root, train_split), _list_npz(cache_root, eval_split)
    if not train:
        raise FileNotFoundError(f"no caches under {os.path.join(cache_root, train_split)}/*/")
    if not ev:
        raise FileNotFoundError(f"no caches under {os.path.join(cache_root, eval_split)}/*/")
    parts = assign_parts(train, ratios, seed)
    records = [{"key": _key(p), "split": parts[_key(p)], "src_split": train_split,
                "src_relpath": os.path.relpath(p, cache_root)} for p in train]
    records += [{"key": _key(p), "split": "eval", "src_split": eval_split,
                 "src_relpath": os.path.relpath(p, cache_root)} for p in ev]
    counts: dict[str, int] = defaultdict(int)
    for r in records:
        counts[r["split"]] += 1
    meta = {"cache_root": cache_root, "train_split": train_split, "eval_split": eval_split,
            "seed": int(seed), "ratios_mesh_pc_udf": [float(x) for x in ratios],
            "counts": dict(counts)}
    return {"meta": meta, "records": records}


def _place(src: str, dst: str, mode: str) -> None:
    if mode == "symlink":
        os.symlink(os.path.relpath(src, os.path.dirname(dst)), dst)
    elif mode == "hardlink":
        os.link(src, dst)
    elif mode == "copy":
        with open(src, "rb") as fs, atomic_io.atomic_open(dst, "wb") as fd:
            shutil.copyfileobj(fs, fd)
    else:
        raise ValueError(f"unknown link mode {mode!r} (symlink, hardlink, copy)")


def _plain_name(text: object) -> bool:
    return (isinstance(text, str) and text not in ("", ".", "..")
            and not any(c in text for c in ("/", "\\", "\0")))


def check_split_map(split_map: object, where: str = "split map") -> list[dict]:
    """The records of a split map, each checked before anything is written: `split` one of
    ALL_PARTS, `key` `<class>/<id>` of plain names, `src_relpath` a relative path that stays
    inside the source root. A map is a file from elsewhere: a key such as `../x` must not
    write outside the view root. ValueError naming the record and field otherwise."""
    records = split_map.get("records") if isinstance(split_map, dict) else None
    if not isinstance(records, list) or not records:
        raise ValueError(f"{where} has no 'records' list")
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise ValueError(f"{where}: records[{i}] is not an object")
        if r.get("split") not in ALL_PARTS:
            raise ValueError(f"{where}: records[{i}].split={r.get('split')!r} is not one of "
                             f"{', '.join(ALL_PARTS)}")
        key = r.get("key")
        parts = key.split("/") if isinstance(key, str) else []
        if len(parts) != 2 or not all(map(_plain_name, parts)):
            raise ValueError(f"{where}: records[{i}].key={key!r} is not '<class>/<id>' of plain "
                             "names (no '..', no separators)")
        rel = r.get("src_relpath")
        norm = os.path.normpath(rel) if isinstance(rel, str) and rel else ""
        if (not norm or os.path.isabs(norm) or norm == ".."
                or norm.startswith(".." + os.sep) or "\0" in norm):
            raise ValueError(f"{where}: records[{i}].src_relpath={rel!r} must be a relative "
                             "path inside the source cache root")
    return records


def materialize_view(src_cache_root: str, split_map: dict, out_root: str,
                     splits=ALL_PARTS, link_mode: str = "symlink",
                     overwrite: bool = False) -> dict[str, int]:
    records = check_split_map(split_map)
    src_root, out_root = os.path.abspath(src_cache_root), os.path.abspath(out_root)
    stats = {"created": 0, "skipped": 0, "missing": 0}
    for r in records:
        if r["split"] not in splits:
            continue
        cls, inst = r["key"].split("/")
        src = os.path.join(src_root, r["src_relpath"])
        dst = os.path.join(out_root, r["split"], cls, f"{inst}.npz")
        if not os.path.isfile(src):
            stats["missing"] += 1
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.lexists(dst):
            if not overwrite:
                stats["skipped"] += 1
                continue
            os.remove(dst)
        _place(src, dst, link_mode)
        stats["created"] += 1
    atomic_io.write_text_atomic(
        os.path.join(out_root, "_meta", "split_source.json"), atomic_io.dumps(
            {"src_cache_root": src_root, "splits": sorted(splits), "link_mode": link_mode,
             **stats}, indent=2))
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = cli.ArgumentParser(prog="python -m data_prep.unpaired_split", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    m = sub.add_parser("map", help="write the split map JSON")
    m.add_argument("--cache_root", required=True)
    m.add_argument("--out", "--out_json", dest="out_json", required=True,
                   help="split map (.json) to write")
    m.add_argument("--train_split", default="train")
    m.add_argument("--eval_split", default="test")
    cli.add_list(m, "--ratios", default=(0.34, 0.33, 0.33), item_type=float,
                 help="mesh, pc and udf shares")
    m.add_argument("--seed", type=int, default=0)
    v = sub.add_parser("view", help="materialise the split folders from a map")
    v.add_argument("--src_cache_root", required=True)
    v.add_argument("--split_json", required=True)
    v.add_argument("--out", "--out_root", dest="out_root", required=True,
                   help="view root to write")
    cli.add_list(v, "--splits", default=ALL_PARTS, help="parts of the view")
    v.add_argument("--link_mode", choices=("symlink", "hardlink", "copy"), default="symlink")
    v.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    if args.mode == "map" and len(args.ratios) != 3:
        ap.error(f"--ratios takes 3 values (mesh, pc, udf), got {args.ratios}")
    try:
        if args.mode == "map":
            payload = build_split_map(args.cache_root, args.ratios, args.seed,
                                      args.train_split, args.eval_split)
            atomic_io.write_text_atomic(args.out_json, atomic_io.dumps(payload, indent=2))
            print(f"wrote {args.out_json}: {payload['meta']['counts']}")
        else:
            with open(args.split_json, encoding="utf-8") as f:
                payload = json.load(f)
            check_split_map(payload, args.split_json)
            stats = materialize_view(args.src_cache_root, payload, args.out_root, args.splits,
                                     args.link_mode, args.overwrite)
            print(f"view {args.out_root}: {stats}")
            if stats["created"] + stats["skipped"] == 0:
                return 1
    except (FileNotFoundError, ValueError, json.JSONDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
