"""scanobjectnn, unpaired_split, add_fps_order, synthetic and validate on small generated data."""

import json
import os

import h5py
import numpy as np
import pytest

from data_prep import add_fps_order, scanobjectnn, synthetic, unpaired_split, validate
from data_prep.fps import fps_order
from data_prep.profile import Profile

TINY = Profile(pc_points=256, pt_pool=512, ray_pool=64, n_views=4, rays_per_view=16,
               pc_grid=16, df_grid=16)
QUIET = dict(log=lambda *_: None)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    paths = synthetic.build_synthetic_corpus(
        str(out), n_per_class=4, seed=1, profile=TINY, classes=("box", "torus", "union"),
        scan_points=256, **QUIET)
    return out, paths


def test_synthetic_corpus_layout_and_contract(corpus):
    out, paths = corpus
    assert len(list((out / "meshes").rglob("*.off"))) == 12
    n, problems = validate.validate_root(paths["cache"], ["train", "test"],
                                         ["mesh", "pointcloud", "udfgrid", "voxel"])
    assert (n, problems) == (12, [])
    n, problems = validate.validate_root(paths["scan_cache"], ["train", "test"],
                                         ["pointcloud_noray"])
    assert (n, problems) == (12, [])
    with h5py.File(out / "scan_h5" / "main_split" / "training_objectdataset.h5") as f:
        assert f["data"].shape == (9, 256, 3) and f["data"].dtype == np.float32
        assert sorted(set(f["label"][:].tolist())) == [0, 1, 2]
    parts = {p: len(list((out / "unpaired" / p).glob("*/*.npz")))
             for p in unpaired_split.ALL_PARTS}
    assert parts == {"train_mesh": 3, "train_pc": 3, "train_udf": 3, "eval": 3}
    assert (out / "classes.txt").read_text().split() == ["box", "torus", "union"]
    # Second call: everything is there, nothing changes.
    f = next((out / "cache").rglob("*.npz"))
    m = f.stat().st_mtime_ns
    synthetic.build_synthetic_corpus(str(out), n_per_class=4, seed=1, profile=TINY,
                                     classes=("box", "torus", "union"), scan_points=256, **QUIET)
    assert f.stat().st_mtime_ns == m


def test_synthetic_rejects_unknown_class(tmp_path):
    with pytest.raises(ValueError, match="unknown classes"):
        synthetic.build_synthetic_corpus(str(tmp_path), classes=("teapot",), **QUIET)


def _write_h5(path, data, label):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=data)
        f.create_dataset("label", data=label)


def test_scanobjectnn_per_sample_is_worker_invariant_and_skips_bad(tmp_path, capsys):
    rng = np.random.default_rng(0)
    root = tmp_path / "h5"
    _write_h5(str(root / "a" / "training_a.h5"), rng.normal(size=(3, 128, 3)).astype(np.float32),
              np.array([0, 1, 1]))
    bad = rng.normal(size=(2, 128, 3)).astype(np.float32)
    bad[1, 5] = np.nan
    _write_h5(str(root / "a" / "training_b.h5"), bad, np.array([2, 2]))
    _write_h5(str(root / "a" / "training_c.h5"), bad, np.array([2, 2]))
    with open(root / "a" / "training_c.h5", "r+b") as f:       # truncate
        f.truncate(300)
    outs = []
    for w in (1, 2):
        out = tmp_path / f"out{w}"
        rc = scanobjectnn.main(["--scan_root", str(root), "--out_root", str(out), "--split",
                                "train", "--pt_pool", "200", "--ray_pool", "8",
                                "--workers", str(w)])
        text = capsys.readouterr().out
        assert rc == 0
        assert "training_c.h5: unreadable h5" in text
        assert "skipped train/training_b[1]: point cloud has 1 NaN/Inf points" in text
        assert "written=4" in text
        outs.append(out)
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*.npz"))
    assert [f.as_posix() for f in files] == [
        "train/class_000/training_a_000000.npz", "train/class_001/training_a_000001.npz",
        "train/class_001/training_a_000002.npz", "train/class_002/training_b_000000.npz"]
    for f in files:
        a, b = np.load(outs[0] / f), np.load(outs[1] / f)
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k])
    assert (outs[0] / "_meta" / "scanobjectnn_train_source.txt").read_text().count(".h5") == 3


def test_scanobjectnn_refuses_duplicate_basenames(tmp_path, capsys):
    for sub in ("main_split", "split_bg"):
        _write_h5(str(tmp_path / sub / "training_objectdataset.h5"),
                  np.zeros((1, 16, 3), np.float32), np.zeros((1,), np.int64))
    rc = scanobjectnn.main(["--scan_root", str(tmp_path), "--out_root", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "duplicate h5 basename" in err and "training_objectdataset" in err
    assert not (tmp_path / "o" / "train").exists()


def test_unpaired_map_and_view_modes(corpus, tmp_path):
    _, paths = corpus
    smap = unpaired_split.build_split_map(paths["cache"], ratios=(0.5, 0.25, 0.25), seed=3)
    assert smap["meta"]["counts"] == {"train_mesh": 3, "train_pc": 3, "train_udf": 3, "eval": 3}
    again = unpaired_split.build_split_map(paths["cache"], ratios=(0.5, 0.25, 0.25), seed=3)
    assert again == smap
    jpath = tmp_path / "split.json"
    assert unpaired_split.main(["map", "--cache_root", paths["cache"], "--out_json", str(jpath),
                                "--seed", "3", "--ratios", "0.5", "0.25", "0.25"]) == 0
    assert json.loads(jpath.read_text())["records"] == smap["records"]
    for mode in ("symlink", "hardlink", "copy"):
        out = tmp_path / mode
        assert unpaired_split.main(["view", "--src_cache_root", paths["cache"], "--split_json",
                                    str(jpath), "--out_root", str(out), "--link_mode", mode]) == 0
        got = sorted(out.glob("*/*/*.npz"))
        assert len(got) == 12
        assert all(p.is_symlink() == (mode == "symlink") for p in got)
        assert np.load(got[0])["pc_xyz"].shape == (256, 3)
    stats = unpaired_split.materialize_view(paths["cache"], smap, str(tmp_path / "symlink"))
    assert stats == {"created": 0, "skipped": 12, "missing": 0}
    with pytest.raises(ValueError, match="ratios"):
        unpaired_split.build_split_map(paths["cache"], ratios=(1, -1, 0))


def test_add_fps_order_in_place(corpus, tmp_path):
    import shutil
    _, paths = corpus
    root = tmp_path / "c"
    shutil.copytree(paths["cache"], root)
    before = {f: dict(np.load(f)) for f in root.rglob("*.npz")}
    stats = add_fps_order.run(str(root), ["train", "test"], workers=2, fps_k=100)
    assert stats == {"ok": 12, "skip": 0, "fail": 0}
    for f, old in before.items():
        z = np.load(f)
        assert set(z.files) == set(old) | {"pt_fps_order"}
        np.testing.assert_array_equal(z["pt_fps_order"], fps_order(old["pt_xyz_pool"], 100))
        for k, v in old.items():
            np.testing.assert_array_equal(z[k], v)
    assert add_fps_order.run(str(root), ["train", "test"], fps_k=100)["skip"] == 12
    f = next(iter(before))
    assert add_fps_order.add_order(str(f), fps_k=50, overwrite=True) == "ok"
    assert np.load(f)["pt_fps_order"].shape == (50,)
    assert not [p for p in root.rglob(".tmp_*")]
    assert add_fps_order.add_order(str(f), pt_key="nope", out_key="other").startswith("fail: missing key nope")



def test_validate_reports_broken_caches(corpus, tmp_path, capsys):
    import shutil
    _, paths = corpus
    root = tmp_path / "c"
    shutil.copytree(paths["cache"], root)
    files = sorted(root.rglob("*.npz"))
    with open(files[0], "r+b") as f:
        f.truncate(100)
    z = dict(np.load(files[1]))
    z["pt_dist_pool"][3] = np.nan
    np.savez(files[1], **z)
    z = dict(np.load(files[2]))
    del z["ray_hit_pool"]
    np.savez(files[2], **z)
    os.makedirs(root / "train" / "ghost")
    rc = validate.main(["--cache_root", str(root), "--backends", "mesh"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "class folder 'ghost' has no .npz files" in out
    assert f"{files[0]}" in out and "not a readable .npz" in out
    assert "pt_dist_pool" in out and "NaN/Inf" in out
    assert "ray_hit_pool" in out and "missing key" in out
    assert "4 problem(s)" in out
    assert validate.main(["--cache_root", str(root), "--backends", "nope"]) == 2


def test_caches_load_in_our_backends(corpus):
    from nepa3d_jax.data import backends, schema
    out, paths = corpus
    mesh_f = schema.list_cache_files(paths["cache"], "train")[0]
    scan_f = schema.list_cache_files(paths["scan_cache"], "train")[0]
    mesh = schema.load_cache(mesh_f, list(np.load(mesh_f).files))
    scan = schema.load_cache(scan_f, list(np.load(scan_f).files))
    for b in schema.BACKENDS:
        p = backends.apply_backend(mesh, b, path=mesh_f)
        assert p["pt_xyz"].shape == (512, 3) and p["ray_o"].shape == (64, 3), b
    np.testing.assert_array_equal(backends.apply_backend(mesh, "udfgrid")["pt_dist"],
                                  mesh["pt_dist_udf_pool"])
    np.testing.assert_array_equal(backends.apply_backend(mesh, "pointcloud_noray")["pt_dist"],
                                  mesh["pt_dist_pc_pool"])
    np.testing.assert_array_equal(backends.apply_backend(mesh, "mesh")["ray_hit"],
                                  mesh["ray_hit_pool"])
    p = backends.apply_backend(scan, "pointcloud_noray", path=scan_f)
    assert p["ray_available"] is False or not p["ray_available"]
    np.testing.assert_array_equal(p["pt_dist"], scan["pt_dist_pool"])
