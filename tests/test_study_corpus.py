"""The study corpus (data_prep.study_corpus, `data_prep.synthetic --profile study`) at tiny
scale: layout, counts, cache contract, CPAC view, determinism, resume, refusals; its
confusable classes differ geometrically; the hand-crafted baseline runs."""

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from scipy.optimize import check_grad

from data_prep import study_baseline, study_corpus, study_shapes, unpaired_split, validate
from data_prep.runner import shape_rng
from nepa3d_jax.eval.probe import classifiers

QUIET = dict(log=lambda *_: None)
PER_CLASS = {"pretrain": 3, "train": 2, "test": 2}       # the tiny scale


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    paths = study_corpus.build_study_corpus(str(out), "tiny", seed=0, workers=2, **QUIET)
    return out, paths


def _arrays(root):
    """{relative path: bytes of an .off / {key: array} of an .npz / arrays of an .h5}."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            rel = os.path.relpath(p, root)
            if f.endswith(".npz"):
                with np.load(p) as z:
                    out[rel] = {k: z[k] for k in z.files}
            elif f.endswith(".off"):
                out[rel] = open(p, "rb").read()
            elif f.endswith(".h5"):
                with h5py.File(p) as h:
                    out[rel] = {k: h[k][:] for k in h}
    return out


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    return a == b


def test_layout_counts_and_contract(tiny):
    out, paths = tiny
    classes = list(study_shapes.STUDY_CLASSES)
    assert len(classes) == 16 and classes == sorted(classes)
    assert paths["classes"] == classes
    assert (paths["scale"], paths["seed"], paths["per_class"]) == ("tiny", 0, PER_CLASS)
    assert (out / "classes.txt").read_text().split() == classes
    assert (paths["pretrain_split"], paths["fewshot_split"], paths["test_split"]) == (
        "pretrain", "train", "test")
    for split, n in PER_CLASS.items():
        for c in classes:
            assert len(list((out / "cache" / split / c).glob("*.npz"))) == n, (split, c)
            assert len(list((out / "meshes" / c / split).glob("*.off"))) == n
        for i in range(len(classes)):
            assert len(list((out / "scan_cache" / split / f"class_{i:03d}").glob("*.npz"))) == n
    n, problems = validate.validate_root(paths["pretrain_root"], list(PER_CLASS),
                                         ["mesh", "pointcloud", "udfgrid", "voxel"])
    assert (n, problems) == (16 * 7, [])
    n, problems = validate.validate_root(paths["scan_root"], list(PER_CLASS),
                                         ["pointcloud_noray"])
    assert (n, problems) == (16 * 7, [])
    with h5py.File(out / "scan_h5" / "main_split" / "test_objectdataset.h5") as f:
        assert f["data"].shape == (32, 256, 3) and f["data"].dtype == np.float32
        assert f["label"][:].tolist() == [i for i in range(16) for _ in range(2)]
    # CPAC view: the 3 pretrain shapes of each class go one to each part; eval = test.
    parts = {p: len(list((out / "unpaired" / p).glob("*/*.npz"))) for p in unpaired_split.ALL_PARTS}
    assert parts == {"train_mesh": 16, "train_pc": 16, "train_udf": 16, "eval": 32}
    n, problems = validate.validate_root(paths["unpaired_root"], list(unpaired_split.ALL_PARTS),
                                         ["mesh", "udfgrid"])
    assert (n, problems) == (80, [])
    manifest = json.loads((out / "study.json").read_text())
    assert manifest["shapes"] == {"pretrain": 48, "train": 32, "test": 32}
    assert manifest["request"]["per_class"] == PER_CLASS


def test_second_call_skips_and_a_lost_file_comes_back_the_same(tiny):
    out, _ = tiny
    cache = out / "cache" / "train" / "mug" / "mug_train_0001.npz"
    mesh = out / "meshes" / "torus" / "test" / "torus_test_0000.off"
    before = _arrays(out)
    stamp = cache.stat().st_mtime_ns
    study_corpus.build_study_corpus(str(out), "tiny", seed=0, workers=1, **QUIET)
    assert cache.stat().st_mtime_ns == stamp           # nothing rewritten
    cache.unlink()
    mesh.unlink()
    study_corpus.build_study_corpus(str(out), "tiny", seed=0, workers=1, **QUIET)
    after = _arrays(out)
    assert after.keys() == before.keys()
    assert all(_same(before[k], after[k]) for k in before)


def test_same_seed_same_files_whatever_the_workers(tmp_path):
    kw = dict(classes=["box", "mug"], n_pretrain=3, n_train=1, n_test=1, **QUIET)
    a = study_corpus.build_study_corpus(str(tmp_path / "a"), "tiny", seed=3, workers=1, **kw)
    study_corpus.build_study_corpus(str(tmp_path / "b"), "tiny", seed=3, workers=2, **kw)
    study_corpus.build_study_corpus(str(tmp_path / "c"), "tiny", seed=4, workers=1, **kw)
    fa, fb, fc = (_arrays(tmp_path / x) for x in "abc")
    assert a["classes"] == ["box", "mug"] and len(fa) > 20
    assert fa.keys() == fb.keys() and all(_same(fa[k], fb[k]) for k in fa)
    off = [k for k in fa if k.endswith(".off")]
    assert len(off) == 10 and not any(_same(fa[k], fc[k]) for k in off)


def test_refuses_other_settings_in_a_started_folder_and_bad_requests(tiny, tmp_path):
    out, _ = tiny
    with pytest.raises(ValueError, match="differs in: per_class"):
        study_corpus.build_study_corpus(str(out), "tiny", seed=0, n_test=3, **QUIET)
    with pytest.raises(ValueError, match="differs in: seed"):
        study_corpus.build_study_corpus(str(out), "tiny", seed=1, **QUIET)
    with pytest.raises(ValueError, match="unknown study classes"):
        study_corpus.build_study_corpus(str(tmp_path), "tiny", classes=["teapot"], **QUIET)
    with pytest.raises(ValueError, match="unknown scale"):
        study_corpus.build_study_corpus(str(tmp_path), "huge", **QUIET)
    with pytest.raises(ValueError, match="split 'test' must be >= 1"):
        study_corpus.build_study_corpus(str(tmp_path), "tiny", n_test=0, **QUIET)


def test_cli_profile_study_and_its_flag_checks(tmp_path):
    run = [sys.executable, "-m", "data_prep.synthetic", "--profile", "study", "--out",
           str(tmp_path / "s"), "--scale", "tiny", "--classes", "capsule", "--n_pretrain", "3",
           "--n_train", "1", "--n_test", "1", "--workers", "1"]
    r = subprocess.run(run, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "s" / "cache").rglob("*.npz"))) == 5
    r = subprocess.run(run + ["--pt_pool", "64"], capture_output=True, text=True)
    assert r.returncode == 2 and "--pt_pool belongs to the demo profile" in r.stderr
    r = subprocess.run([sys.executable, "-m", "data_prep", "synthetic", "--out",
                        str(tmp_path / "d"), "--scale", "full"], capture_output=True, text=True)
    assert r.returncode == 2 and "belong to --profile study" in r.stderr


def _stats(cls: str, n: int = 8) -> dict[str, np.ndarray]:
    rows = []
    for i in range(n):
        m = study_shapes.make_study_shape(cls, shape_rng(7, f"{cls}/{i}"))
        ext = m.bounds[1] - m.bounds[0]
        rows.append({"compact": m.area ** 1.5 / m.volume,          # sharp edges: larger
                     "obb_fill": m.volume / m.bounding_box_oriented.volume,
                     "hull_fill": m.convex_hull.volume / m.bounding_box_oriented.volume,
                     "solidity": m.volume / m.convex_hull.volume,  # holes: smaller
                     "height": ext[2] / max(ext[0], ext[1])})      # a chair's back
    return {k: np.array([r[k] for r in rows]) for k in rows[0]}


# Each confusable pair and a statistic on which its classes must differ by a Cohen's d > 1.
PAIRS = [("box", "rounded_box", "compact"), ("rounded_box", "superellipsoid", "hull_fill"),
         ("superellipsoid", "ellipsoid", "obb_fill"), ("cylinder", "capsule", "hull_fill"),
         ("cylinder", "frustum", "obb_fill"), ("capsule", "frustum", "obb_fill"),
         ("torus", "thin_ring", "solidity"), ("torus", "open_tube", "solidity"),
         ("thin_ring", "open_tube", "solidity"), ("table", "chair", "height")]


def test_confusable_pairs_differ_geometrically():
    stats = {c: _stats(c) for c in {c for a, b, _ in PAIRS for c in (a, b)}}
    for a, b, key in PAIRS:
        x, y = stats[a][key], stats[b][key]
        d = abs(x.mean() - y.mean()) / np.sqrt((x.var(ddof=1) + y.var(ddof=1)) / 2)
        assert d > 1.0, (a, b, key, d)
    # ... and a class is not one fixed shape: its members' proportions vary.
    assert all(s["height"].std() > 0.02 for s in stats.values()), {
        c: s["height"].std() for c, s in stats.items()}


def test_logistic_regression_gradient_and_a_separable_problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    y = (x[:, 0] > 0).astype(int) + 2 * (x[:, 1] > 0).astype(int)
    theta = rng.normal(size=5 * 4) * 0.1
    xb, onehot = np.concatenate([x, np.ones((60, 1))], 1), np.eye(4)[y]
    loss = classifiers.logreg_loss
    err = check_grad(lambda t: loss(t, xb, onehot, 2.0)[0], lambda t: loss(t, xb, onehot, 2.0)[1],
                     theta)
    assert err < 1e-4 * np.linalg.norm(loss(theta, xb, onehot, 2.0)[1])
    v = rng.normal(size=theta.shape)                  # Hessian-vector product vs differences
    fd = (loss(theta + 1e-6 * v, xb, onehot, 2.0)[1] - loss(theta - 1e-6 * v, xb, onehot, 2.0)[1])
    hv = classifiers.logreg_hessp(theta, v, xb, onehot, 2.0)
    assert np.abs(fd / 2e-6 - hv).max() < 1e-5 * np.abs(hv).max()
    w = classifiers.fit_logreg(x, y, 4, 100.0)
    assert np.mean(classifiers.predict(w, x) == y) > 0.95


def test_baseline_on_tiny_corpus(tiny):
    out, _ = tiny
    r = study_baseline.evaluate_root(str(out / "cache"), ks=(1, 2), episodes=2)
    assert r["n_classes"] == 16 and r["chance"] == 1 / 16 and r["n_test"] == 32
    for v in (*[b["mean"] for b in r["by_k"].values()], r["pool"]["acc"]):
        assert 0.0 <= v <= 1.0 and np.isfinite(v)
    assert len(r["by_k"]["1"]["per_seed"]) == 2
    rc = study_baseline.main(["--corpus", str(out), "--ks", "1", "--episodes", "1",
                              "--out", str(out / "b.json")])
    assert rc == 0 and (out / "b.json").exists()
