"""Hand-crafted baseline of the study corpus: how hard is its classification without learning?

  python -m data_prep.study_baseline --corpus data/study [--ks 1,5,10] [--episodes 10]
      [--roots cache,scan_cache] [--out baseline.json]

Features of each cache's `pc_xyz` (the point cloud every backend starts from): the D2 shape
distribution (histogram of the distances between all pairs of the first 256 points of the
cache's FPS order, 32 bins on [0, 2]; Osada et al. 2002) and the PCA eigenvalues of the cloud
(sorted, with their two ratios), standardised on the training shapes. Classifier: multinomial
logistic regression with an L2 penalty (scipy Newton-CG; loss C * sum of cross-entropies +
|W|^2 / 2, bias not penalised), C from {0.01, 0.1, 1, 10, 100} by stratified k-fold accuracy
on the training shapes (k = min(5, shapes per class); with one shape per class there is nothing to
validate on and C = 1).

Protocol: the labeled pool is the `train` split, the test set the `test` split. For each K,
episode e trains on `nepa3d_jax.eval.cls.split.stratified_kshot(pool, K, seed=e)`, the files a
classification run with `fewshot_k=K, fewshot_seed=e` (and no validation split) trains on;
accuracy is reported as the mean over episodes with a 95% Student t interval. `pool` uses the
whole labeled pool once. Chance is 1 / number of classes. `cache` holds complete surfaces,
`scan_cache` partial single-view scans of the same shapes.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import numpy as np
from scipy.spatial.distance import pdist

from nepa3d_jax import cli
from nepa3d_jax import atomic_io
from nepa3d_jax.data.paths import label_from_path
from nepa3d_jax.data.schema import CacheError, list_cache_files, load_cache
from nepa3d_jax.eval.cls.split import stratified_kshot
from nepa3d_jax.eval.probe.classifiers import train_and_test
from nepa3d_jax.eval.stats import t_interval

D2_POINTS, D2_BINS = 256, 32


def shape_features(pc_xyz: np.ndarray, fps_order: np.ndarray | None = None) -> np.ndarray:
    """D2 histogram (D2_BINS, sums to 1) + PCA eigenvalues (3, descending) + 2 ratios."""
    pc = np.asarray(pc_xyz, np.float64)
    sub = pc[np.asarray(fps_order)[:D2_POINTS]] if fps_order is not None else pc[:D2_POINTS]
    hist = np.histogram(pdist(sub), bins=D2_BINS, range=(0.0, 2.0))[0].astype(np.float64)
    hist /= max(hist.sum(), 1.0)
    ev = np.sort(np.linalg.eigvalsh(np.cov(pc.T)))[::-1]
    ratios = ev[1:] / max(ev[0], 1e-12)
    return np.concatenate([hist, ev, ratios])


def split_features(root: str, split: str) -> tuple[list[str], np.ndarray]:
    """(sorted paths, features (N, F)) of every cache of `<root>/<split>/<class>/`."""
    paths = list_cache_files(root, split)
    if not paths:
        raise FileNotFoundError(f"no caches under {os.path.join(root, split)}/<class>/")
    feats = []
    for p in paths:
        z = load_cache(p, ["pc_xyz", "pc_fps_order"])
        feats.append(shape_features(z["pc_xyz"], z["pc_fps_order"]))
    return paths, np.stack(feats)


def _confused_pairs(y: np.ndarray, pred: np.ndarray, classes: Sequence[str], top: int = 6):
    m = np.zeros((len(classes), len(classes)), np.int64)
    np.add.at(m, (y, pred), 1)
    sym = m + m.T
    pairs = [(int(sym[i, j]), classes[i], classes[j]) for i in range(len(classes))
             for j in range(i + 1, len(classes)) if sym[i, j] > 0]
    return [{"pair": [a, b], "errors": n} for n, a, b in sorted(pairs, reverse=True)[:top]]


def evaluate_root(root: str, ks: Sequence[int] = (1, 5, 10), episodes: int = 10,
                  train_split: str = "train", test_split: str = "test",
                  names: Sequence[str] | None = None) -> dict:
    """The baseline on one cache root: accuracy per K (over episodes) and on the whole pool.
    `names`: label index -> class name, to name `class_<NNN>` folders (scan caches)."""
    tr_paths, x_tr = split_features(root, train_split)
    te_paths, x_te = split_features(root, test_split)
    classes = sorted({label_from_path(p) for p in tr_paths})
    index = {c: i for i, c in enumerate(classes)}
    missing = sorted({label_from_path(p) for p in te_paths} - set(index))
    if missing:
        raise ValueError(f"{root}: test classes {missing} have no labeled shapes")
    y_tr = np.array([index[label_from_path(p)] for p in tr_paths])
    y_te = np.array([index[label_from_path(p)] for p in te_paths])
    row_of = {p: i for i, p in enumerate(tr_paths)}
    out = {"root": root, "n_classes": len(classes), "chance": 1.0 / len(classes),
           "n_pool": len(tr_paths), "n_test": len(te_paths), "by_k": {}}
    for k in ks:
        accs, cs = [], []
        for e in range(episodes):
            rows = [row_of[p] for p in stratified_kshot(tr_paths, int(k), seed=e)]
            r = train_and_test(x_tr[rows], y_tr[rows], x_te, y_te, len(classes))
            accs.append(r["acc"])
            cs.append(r["C"])
        out["by_k"][str(k)] = {**t_interval(accs), "C": cs}
    r = train_and_test(x_tr, y_tr, x_te, y_te, len(classes))
    shown = [names[int(c[6:])] if names and c.startswith("class_") and c[6:].isdigit() else c
             for c in classes]
    out["pool"] = {"acc": r["acc"], "C": r["C"],
                   "most_confused": _confused_pairs(y_te, r["pred"], shown)}
    return out


def format_table(results: dict) -> str:
    lines = ["| root | chance | " + " | ".join(f"K={k}" for k in
                                                next(iter(results.values()))["by_k"])
             + " | pool |", "|---" * (3 + len(next(iter(results.values()))["by_k"])) + "|"]
    for name, r in results.items():
        cells = []
        for v in r["by_k"].values():
            ci = "" if v["ci_low"] is None else f" [{v['ci_low']:.3f}, {v['ci_high']:.3f}]"
            cells.append(f"{v['mean']:.3f}{ci}")
        lines.append(f"| {name} | {r['chance']:.3f} | " + " | ".join(cells)
                     + f" | {r['pool']['acc']:.3f} (n={r['n_pool']}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = cli.ArgumentParser(prog="python -m data_prep.study_baseline", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True, help="study corpus folder (data_prep.synthetic "
                    "--profile study)")
    cli.add_list(ap, "--roots", default=("cache", "scan_cache"), help="cache roots under it")
    cli.add_list(ap, "--ks", default=(1, 5, 10), item_type=int, help="labeled shapes per class")
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--out", default=None, help="results JSON to write")
    args = ap.parse_args(argv)
    if args.episodes < 1 or any(k < 1 for k in args.ks):
        print("error: --episodes and every --ks value must be >= 1", file=sys.stderr)
        return 2
    names_file = os.path.join(args.corpus, "classes.txt")
    names = open(names_file, encoding="utf-8").read().split() if os.path.isfile(names_file) \
        else None
    try:
        results = {r: evaluate_root(os.path.join(args.corpus, r), args.ks, args.episodes,
                                    names=names) for r in args.roots}
    except (FileNotFoundError, ValueError, CacheError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.out:
        atomic_io.write_text_atomic(args.out, atomic_io.dumps(results, indent=2))
    print(format_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
