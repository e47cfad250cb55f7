"""Which cache files take part in a classification run: listing, labels, the seeded
stratified validation split, few-shot K-shot and N-way selection.

The selection reproduces the original's protocol draw for draw (a single
`np.random.RandomState(seed)` shared by the classes in sorted-path order, each class list
sorted then shuffled), so the same cache and seeds give the same train / val / test files.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence

import numpy as np

from nepa3d_jax.data.paths import label_from_path


def list_npz(cache_root: str, split: str) -> list[str]:
    """Sorted `<cache_root>/<split>/<class>/<id>.npz` paths; a clear error when there are none."""
    split_dir = os.path.join(cache_root, split)
    if not os.path.isdir(split_dir):
        raise ValueError(f"classification cache split not found: {split_dir} (config field "
                         f"cache_root={cache_root!r}, split {split!r})")
    paths = sorted(glob.glob(os.path.join(cache_root, split, "*", "*.npz")))
    if not paths:
        loose = glob.glob(os.path.join(split_dir, "*.npz"))
        hint = (" (found .npz files directly under the split folder: class folders are missing; "
                "expected <split>/<class>/<id>.npz)") if loose else ""
        raise ValueError(f"empty split: no <class>/*.npz files under {split_dir}{hint}")
    return paths


def build_label_map(paths: Sequence[str]) -> dict[str, int]:
    """Class name -> index, classes sorted by name."""
    return {c: i for i, c in enumerate(sorted({label_from_path(p) for p in paths}))}


def _group_by_class(paths: Sequence[str]) -> dict[str, list[str]]:
    """Classes in the order of the sorted paths (the original always passes sorted lists)."""
    groups: dict[str, list[str]] = {}
    for p in sorted(paths):
        groups.setdefault(label_from_path(p), []).append(p)
    return groups


def stratified_train_val_split(paths: Sequence[str], val_ratio: float = 0.1,
                               seed: int = 0) -> tuple[list[str], list[str]]:
    """Per class: `int(n * val_ratio)` files (at least one when the class has two or more) go
    to validation. Returns sorted (train, val)."""
    paths = list(paths)
    if val_ratio <= 0.0:
        return sorted(paths), []
    rng = np.random.RandomState(int(seed) & 0xFFFFFFFF)
    train: list[str] = []
    val: list[str] = []
    for members in _group_by_class(paths).values():
        members = sorted(members)
        rng.shuffle(members)
        n_val = int(len(members) * float(val_ratio))
        if n_val <= 0 and len(members) >= 2:
            n_val = 1
        val.extend(members[:n_val])
        train.extend(members[n_val:])
    return sorted(train), sorted(val)


def stratified_kshot(paths: Sequence[str], k: int, seed: int = 0) -> list[str]:
    """At most `k` files per class (k <= 0: all), sorted."""
    paths = list(paths)
    if k <= 0:
        return sorted(paths)
    rng = np.random.RandomState(int(seed) & 0xFFFFFFFF)
    out: list[str] = []
    for members in _group_by_class(paths).values():
        members = sorted(members)
        rng.shuffle(members)
        out.extend(members[:int(k)])
    return sorted(out)


def stratified_nway(paths: Sequence[str], n_way: int,
                    seed: int = 0) -> tuple[list[str], list[str]]:
    """Keep every file of `n_way` classes drawn without replacement (n_way <= 0: all).
    Returns (sorted paths, sorted picked classes)."""
    paths = list(paths)
    classes = sorted(_group_by_class(paths))
    if n_way <= 0:
        return sorted(paths), classes
    if n_way > len(classes):
        raise ValueError(f"fewshot_n_way={n_way} exceeds the {len(classes)} classes available")
    rng = np.random.RandomState(int(seed) & 0xFFFFFFFF)
    picked = sorted(classes[i] for i in rng.choice(len(classes), size=int(n_way), replace=False))
    keep = set(picked)
    return sorted(p for p in paths if label_from_path(p) in keep), picked


def select_files(cache_root: str, *, val_ratio: float, val_seed: int, fewshot_k: int,
                 fewshot_seed: int, fewshot_n_way: int, fewshot_way_seed: int,
                 train_split: str = "train", test_split: str = "test") -> dict:
    """The whole file protocol in the original's order: N-way filter, val split, K-shot on the
    remaining train files. Labels index the classes of the (filtered) full train split."""
    train_full = list_npz(cache_root, train_split)
    test = list_npz(cache_root, test_split)
    picked = None
    if fewshot_n_way > 0:
        way_seed = fewshot_seed if fewshot_way_seed < 0 else fewshot_way_seed
        train_full, picked = stratified_nway(train_full, fewshot_n_way, seed=way_seed)
        test = sorted(p for p in test if label_from_path(p) in set(picked))
    train, val = stratified_train_val_split(train_full, val_ratio=val_ratio, seed=val_seed)
    if fewshot_k > 0:
        train = stratified_kshot(train, fewshot_k, seed=fewshot_seed)
    label_map = build_label_map(train_full)
    unknown = sorted({label_from_path(p) for p in test} - set(label_map))
    if unknown:
        raise ValueError(f"test split of {cache_root} has classes absent from train: {unknown}")
    if not train:
        raise ValueError("no training files left after the split/few-shot selection in "
                         f"{cache_root}")
    return dict(train=train, val=val, test=test, label_map=label_map, picked_classes=picked)
