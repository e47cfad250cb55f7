"""Where meshes live and where their caches go.

ModelNet: `<root>/<class>/<split>/<name>.off` -> `<out>/<split>/<class>/<name>.npz`.
ShapeNetCore.v2: `<root>/<synset>/<model>/models/model_normalized.obj`
  -> `<out>/<split>/<synset>/<model>.npz`; the split comes from a list (`train.txt` /
  `test.txt` holding mesh paths or `synset/model` keys) or from a seeded ratio: within each
  synset, models sorted by md5("<synset>/<model>:<split_seed>"), the first round(ratio*n)
  (at least 1 when n >= 10) are test, the original's rule, so both tools agree. The chosen
  split is written to `<out>/_splits/{train,test}.txt` (one mesh path per line).
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import os
from collections import defaultdict

from nepa3d_jax import atomic_io



@dataclasses.dataclass(frozen=True)
class MeshItem:
    mesh_path: str
    split: str
    cls: str
    name: str

    @property
    def shape_id(self) -> str:
        return f"{self.split}/{self.cls}/{self.name}"

    def out_path(self, out_root: str) -> str:
        return os.path.join(out_root, self.split, self.cls, f"{self.name}.npz")


def modelnet_items(root: str, splits: list[str], ext: str = "off") -> tuple[list[MeshItem], list[str]]:
    """(items sorted by path, warnings about class folders without meshes)."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"mesh root {root} does not exist")
    items, warnings = [], []
    classes = sorted(c for c in os.listdir(root) if os.path.isdir(os.path.join(root, c)))
    if not classes:
        raise FileNotFoundError(f"no class folders under {root} (expected <root>/<class>/<split>/*.{ext})")
    for cls in classes:
        for split in splits:
            paths = sorted(glob.glob(os.path.join(root, cls, split, f"*.{ext}")))
            if not paths:
                warnings.append(f"class folder {os.path.join(root, cls, split)} has no .{ext} files")
            for p in paths:
                items.append(MeshItem(p, split, cls, os.path.splitext(os.path.basename(p))[0]))
    return items, warnings


def shapenet_synset_model(mesh_path: str) -> tuple[str, str]:
    """(synset, model) from `.../<synset>/<model>/models/<file>` or `.../<synset>/<model>.<ext>`."""
    parts = mesh_path.replace("\\", "/").split("/")
    if "models" in parts:
        i = len(parts) - 1 - parts[::-1].index("models")
        if i >= 2:
            return parts[i - 2], parts[i - 1]
    if len(parts) >= 2:
        return parts[-2], os.path.splitext(parts[-1])[0]
    return "unknown", os.path.splitext(os.path.basename(mesh_path))[0]


def _md5_int(text: str) -> int:
    return int(hashlib.md5(text.encode("utf-8")).hexdigest()[:8], 16)


def ratio_split(mesh_paths: list[str], test_ratio: float = 0.1, split_seed: int = 0) -> dict[str, str]:
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for p in mesh_paths:
        synset, model = shapenet_synset_model(p)
        groups[synset].append((model, p))
    out = {}
    for synset, members in groups.items():
        members.sort()
        n = len(members)
        n_test = int(round(float(test_ratio) * n))
        n_test = min(max(n_test, 1 if n >= 10 else 0), n)
        order = sorted(range(n), key=lambda i: _md5_int(f"{synset}/{members[i][0]}:{int(split_seed)}"))
        test = set(order[:n_test])
        for i, (_, p) in enumerate(members):
            out[p] = "test" if i in test else "train"
    return out


def list_split(mesh_paths: list[str], split_dir: str) -> dict[str, str]:
    """Split from `<split_dir>/{train,test}.txt`; lines are mesh paths or `synset/model` keys."""
    by_key = {}
    for split in ("train", "test"):
        f = os.path.join(split_dir, f"{split}.txt")
        if not os.path.isfile(f):
            raise FileNotFoundError(f"split list {f} not found")
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if line:
                    key = line if line.count("/") == 1 and not line.endswith(".obj") else \
                        "/".join(shapenet_synset_model(line))
                    by_key[key] = split
    return {p: by_key[k] for p in mesh_paths if (k := "/".join(shapenet_synset_model(p))) in by_key}


def shapenet_items(splits: list[str], split_map: dict[str, str], out_root: str) -> list[MeshItem]:
    """Items of the wanted splits; writes `<out_root>/_splits/{train,test}.txt`."""
    for split in ("train", "test"):
        lines = "".join(p + "\n" for p in sorted(split_map) if split_map[p] == split)
        atomic_io.write_text_atomic(os.path.join(out_root, "_splits", f"{split}.txt"), lines)
    items = []
    for p in sorted(split_map):
        if split_map[p] in splits:
            synset, model = shapenet_synset_model(p)
            items.append(MeshItem(p, split_map[p], synset, model))
    return items


def shard(items: list, num_shards: int = 1, shard_id: int = 0) -> list:
    """Every num_shards-th item starting at shard_id (for one PBS job per shard)."""
    if num_shards <= 1:
        return list(items)
    if not 0 <= shard_id < num_shards:
        raise ValueError(f"--shard_id {shard_id} must be in [0, --num_shards {num_shards})")
    return [it for i, it in enumerate(items) if i % num_shards == shard_id]


def shapenet_mesh_paths(root: str, mesh_glob: str) -> list[str]:
    paths = sorted(glob.glob(os.path.join(root, mesh_glob)))
    if not paths:
        raise FileNotFoundError(f"no mesh matches {os.path.join(root, mesh_glob)}")
    return paths
