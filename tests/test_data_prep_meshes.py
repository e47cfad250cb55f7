"""`python -m data_prep.meshes` end to end on generated meshes: contract, bad input, resume."""

import json
import os
import re

import numpy as np
import pytest
import trimesh

from data_prep import atomic, meshes, runner
from data_prep.profile import Profile
from nepa3d_jax import atomic_io
from nepa3d_jax.data import schema

TINY = ["--pc_points", "256", "--pt_pool", "512", "--ray_pool", "128", "--n_views", "4",
        "--rays_per_view", "32", "--pc_grid", "16", "--df_grid", "16"]
# Every key the original's mesh preprocess writes (and its backends read).
MESH_KEYS = {"pc_xyz", "pc_n", "pc_fps_order", "pt_xyz_pool", "pt_dist_pool", "pt_dist_pc_pool",
             "pt_dist_udf_pool", "udf_grid", "occ_grid", "df_grid", "df_dilate", "ray_o_pool",
             "ray_d_pool", "ray_hit_pool", "ray_t_pool", "ray_n_pool", "ray_hit_pc_pool",
             "ray_t_pc_pool", "ray_n_pc_pool"}
BAD = {  # name -> OFF text, and a word the one-line reason must contain
    "garbage": ("this is not a mesh\n", "unreadable"),
    "empty": ("OFF\n0 0 0\n", "empty"),
    "nanvert": ("OFF\n4 2 0\n0 0 0\n1 0 0\nnan 1 0\n0 0 1\n3 0 1 2\n3 0 2 3\n", "NaN"),
    "degenerate": ("OFF\n3 1 0\n0 0 0\n1 0 0\n2 0 0\n3 0 1 2\n", "degenerate"),
}


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


@pytest.fixture(scope="module")
def mesh_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("meshes")
    good = {"box/train/box_a": trimesh.creation.box(extents=(1.0, 0.5, 0.3)),
            "torus/train/torus_a": trimesh.creation.torus(0.6, 0.2, 16, 8),
            "torus/test/torus_b": trimesh.creation.torus(0.5, 0.25, 16, 8)}
    open_box = trimesh.creation.box()
    open_box.update_faces(np.arange(len(open_box.faces)) >= 2)   # one side missing
    assert not open_box.is_watertight
    good["box/test/box_open"] = open_box
    for rel, m in good.items():
        _write(str(root / f"{rel}.off"), m.export(file_type="off"))
    for name, (text, _) in BAD.items():
        _write(str(root / "bad" / "train" / f"{name}.off"), text)
    os.makedirs(root / "emptyclass" / "train")
    return root


def _run(capsys, *argv):
    rc = meshes.main(list(argv))
    return rc, capsys.readouterr()


def test_end_to_end_contract_bad_input_resume_overwrite(mesh_root, tmp_path, capsys):
    out = tmp_path / "cache"
    rc, cap = _run(capsys, "--root", str(mesh_root), "--out_root", str(out), "--workers", "2", *TINY)
    assert rc == 0
    lines = cap.out.splitlines()
    # Each bad mesh: one line naming it and the reason; the run continues.
    for name, (_, word) in BAD.items():
        hit = [l for l in lines if l.startswith("skipped ") and f"/{name}:" in l]
        assert len(hit) == 1 and word in hit[0], (name, lines)
    assert any("emptyclass" in l and "no .off files" in l for l in lines)
    assert re.search(r"done: 8 shapes: written=4 existing=0 skipped=4", cap.out)
    files = sorted(out.rglob("*.npz"))
    assert [f.relative_to(out).as_posix() for f in files] == [
        "test/box/box_open.npz", "test/torus/torus_b.npz", "train/box/box_a.npz",
        "train/torus/torus_a.npz"]
    assert not [p for p in out.rglob("*") if atomic_io.is_temp_name(p.name)]
    for f in files:  # the shared contract for every backend
        for backend, req in schema.BACKEND_REQUIRED_KEYS.items():
            assert schema.check_cache_file(f, req) == [], (f, backend)
        z = np.load(f)
        assert set(z.files) == MESH_KEYS
        assert z["pc_xyz"].shape == (256, 3) and z["pc_xyz"].dtype == np.float32
        assert z["pc_fps_order"].dtype == np.int32 and sorted(z["pc_fps_order"]) == list(range(256))
        assert z["pt_xyz_pool"].shape == (512, 3) and z["pt_dist_pool"].shape == (512,)
        assert z["udf_grid"].shape == (16, 16, 16) and z["udf_grid"].dtype == np.float16
        assert z["occ_grid"].dtype == np.uint8 and z["df_grid"].tolist() == [16]
        assert z["ray_o_pool"].shape == (128, 3) and z["ray_n_pc_pool"].shape == (128, 3)
        assert np.abs(np.linalg.norm(z["pc_xyz"], axis=1)).max() <= 1.0 + 1e-5
        assert 0 < z["ray_hit_pool"].mean() < 1 and 0 < z["ray_hit_pc_pool"].mean() < 1
        # Mesh distance of surface samples is ~0; of the pool, below the pc distance.
        assert (z["pt_dist_pool"] <= z["pt_dist_pc_pool"] + 1e-5).all()
    mtimes = {f: f.stat().st_mtime_ns for f in files}
    meta = json.loads((out / "_meta" / "meshes_all_source.json").read_text())
    assert meta["profile"]["pc_points"] == 256 and meta["result"]["written"] == 4

    # Resume: nothing is recomputed.
    rc, cap = _run(capsys, "--root", str(mesh_root), "--out_root", str(out), *TINY)
    assert rc == 0 and "written=0 existing=4 skipped=4" in cap.out
    assert all(f.stat().st_mtime_ns == m for f, m in mtimes.items())

    # --overwrite redoes them; same seed -> same arrays whatever the worker count.
    before = {k: v for k, v in np.load(files[0]).items()}
    rc, cap = _run(capsys, "--root", str(mesh_root), "--out_root", str(out), "--overwrite",
                   "--split", "test", *TINY)
    assert rc == 0 and "written=2 existing=0 skipped=0" in cap.out
    after = np.load(files[0])
    for k, v in before.items():
        np.testing.assert_array_equal(after[k], v, err_msg=k)


def test_nothing_written_is_an_error(mesh_root, tmp_path, capsys):
    rc = meshes.main(["--root", str(mesh_root / "bad" / ".."), "--out_root", str(tmp_path),
                      "--split", "train", "--ext", "nomatch", *TINY])
    assert rc == 1
    only_bad = tmp_path / "only_bad"
    os.makedirs(only_bad / "bad")
    os.symlink(mesh_root / "bad" / "train", only_bad / "bad" / "train")
    rc = meshes.main(["--root", str(only_bad), "--out_root", str(tmp_path / "o"), *TINY])
    out = capsys.readouterr().out
    assert rc == 1 and "written=0" in out and "skipped=4" in out
    assert not list((tmp_path / "o").rglob("*.npz"))
    assert meshes.main(["--root", str(tmp_path / "missing"), "--out_root", str(tmp_path)]) == 2


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "a" / "x.npz"

    def exploding_savez(f, **arrays):
        f.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", exploding_savez)
    with pytest.raises(OSError):
        atomic.atomic_savez(target, {"a": np.zeros(3)})
    assert list((tmp_path / "a").iterdir()) == []

    # Through the runner: the failure is reported, nothing is left behind.
    job = runner.Job("x", str(target), dict, ())
    s = runner.run_jobs([job], workers=1, log=lambda *_: None)
    assert s.written == 0 and s.failed and "disk full" in s.failed[0][1]
    assert list((tmp_path / "a").iterdir()) == []


def test_profile_rejects_bad_fields():
    with pytest.raises(ValueError, match="pt_dist_mode"):
        Profile(pt_dist_mode="exact")
    with pytest.raises(ValueError, match="pc_points"):
        Profile(pc_points=0)


def test_seed_is_per_shape_not_per_position(mesh_root, tmp_path):
    """Same shape id + seed -> same cache, whatever else is in the run."""
    prof = Profile(pc_points=128, pt_pool=256, ray_pool=64, n_views=2, rays_per_view=32,
                   pc_grid=16, df_grid=16, pt_dist_mode="kdtree")
    path = str(mesh_root / "torus" / "train" / "torus_a.off")
    from data_prep.mesh_cache import mesh_file_to_cache
    a = mesh_file_to_cache(path, prof, 3, "train/torus/torus_a")
    b = mesh_file_to_cache(path, prof, 3, "train/torus/torus_a")
    c = mesh_file_to_cache(path, prof, 4, "train/torus/torus_a")
    np.testing.assert_array_equal(a["pt_xyz_pool"], b["pt_xyz_pool"])
    assert not np.array_equal(a["pt_xyz_pool"], c["pt_xyz_pool"])
    assert (a["pt_dist_pool"] >= 0).all()


def test_shapenet_layout_ratio_and_list_split(tmp_path, capsys):
    root = tmp_path / "ShapeNetCore.v2"
    for synset in ("02691156", "03001627"):
        for m in range(3):
            _write(str(root / synset / f"m{m}" / "models" / "model_normalized.obj"),
                   trimesh.creation.capsule(count=[6, 6]).export(file_type="obj"))
    out = tmp_path / "cache"
    assert meshes.main(["--layout", "shapenet", "--root", str(root), "--out_root", str(out),
                        "--test_ratio", "0.34", *TINY]) == 0
    got = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npz"))
    assert len(got) == 6 and sum(g.startswith("test/") for g in got) == 2
    test_list = (out / "_splits" / "test.txt").read_text().split()
    assert len(test_list) == 2 and all(p.endswith("model_normalized.obj") for p in test_list)
    # A given list: `synset/model` keys or mesh paths; shards split the work.
    lists = tmp_path / "lists"
    _write(str(lists / "train.txt"), "02691156/m0\n03001627/m1\n")
    _write(str(lists / "test.txt"), str(root / "02691156" / "m2" / "models" / "model_normalized.obj") + "\n")
    out2 = tmp_path / "cache2"
    for sid in (0, 1):
        assert meshes.main(["--layout", "shapenet", "--root", str(root), "--out_root", str(out2),
                            "--split_list", str(lists), "--num_shards", "2", "--shard_id",
                            str(sid), *TINY]) == 0
    got = sorted(p.relative_to(out2).as_posix() for p in out2.rglob("*.npz"))
    assert got == ["test/02691156/m2.npz", "train/02691156/m0.npz", "train/03001627/m1.npz"]
    assert "3 meshes are in neither split list" in capsys.readouterr().out
