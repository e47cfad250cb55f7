"""Cache contract: the reference caches pass, and every kind of broken cache is named clearly."""

import os

import numpy as np
import pytest

from nepa3d_jax.data import schema
from nepa3d_jax.data.schema import BACKEND_REQUIRED_KEYS, CacheError
from helpers import make_arrays, write_cache


def _ref_files(reference_dir, corpus):
    return sorted(str(p) for p in (reference_dir / corpus).glob("*/*/*.npz"))


@pytest.mark.parametrize("corpus,backends", [
    ("cache", sorted(BACKEND_REQUIRED_KEYS)),
    ("scan_cache", sorted(BACKEND_REQUIRED_KEYS)),
])
def test_reference_caches_pass(reference_dir, corpus, backends):
    files = _ref_files(reference_dir, corpus)
    assert len(files) == 15
    for f in files:
        for b in backends:
            assert schema.check_cache_file(f, BACKEND_REQUIRED_KEYS[b]) == [], (f, b)


def test_reference_key_contract(reference_dir):
    mesh = schema.read_headers(_ref_files(reference_dir, "cache")[0])
    assert set(mesh) <= set(schema.KEY_SPECS)
    assert mesh["pt_xyz_pool"].shape == (20000, 3) and mesh["ray_o_pool"].shape == (8000, 3)
    assert mesh["pc_xyz"].shape == (2048, 3) and mesh["pc_fps_order"].dtype == np.int32
    assert mesh["udf_grid"] == ((64, 64, 64), np.dtype(np.float16))
    assert mesh["occ_grid"] == ((64, 64, 64), np.dtype(np.uint8))
    scan = schema.read_headers(_ref_files(reference_dir, "scan_cache")[0])
    assert set(scan) == {"pc_xyz", "pc_n", "pc_fps_order", "pt_xyz_pool", "pt_dist_pool",
                         "ray_o_pool", "ray_d_pool", "ray_hit_pool", "ray_t_pool", "ray_n_pool"}
    assert scan["pt_xyz_pool"].shape == (4000, 3) and scan["ray_t_pool"].shape == (256,)


def test_valid_synthetic_and_load(tmp_path):
    p = write_cache(tmp_path / "a.npz")
    assert schema.check_cache_file(p, BACKEND_REQUIRED_KEYS["mesh"]) == []
    got = schema.load_cache(p, ["pt_xyz_pool", "ray_t_pool"])
    assert got["pt_xyz_pool"].shape == (48, 3) and got["ray_t_pool"].dtype == np.float32


def _one(problems, *needles):
    assert len(problems) == 1, problems
    for n in needles:
        assert n in problems[0], (n, problems[0])
    return problems[0]


def test_truncated_and_not_npz(tmp_path):
    p = write_cache(tmp_path / "t.npz")
    data = open(p, "rb").read()
    open(p, "wb").write(data[: len(data) // 2])
    _one(schema.check_cache_file(p), p, "truncated")
    with pytest.raises(CacheError, match="t.npz"):
        schema.load_cache(p, ["pt_xyz_pool"])
    q = tmp_path / "junk.npz"
    q.write_text("not a zip")
    _one(schema.check_cache_file(q), str(q), "not a readable .npz")
    _one(schema.check_cache_file(tmp_path / "missing.npz"), "not a file")
    with pytest.raises(CacheError, match="file not found"):
        schema.load_cache(tmp_path / "missing.npz", ["pt_xyz_pool"])


def test_missing_key(tmp_path):
    arrays = make_arrays()
    del arrays["pt_dist_pool"]
    p = write_cache(tmp_path / "m.npz", arrays=arrays)
    _one(schema.check_cache_file(p, BACKEND_REQUIRED_KEYS["mesh"]), p, "[pt_dist_pool]",
         "missing key")
    # udfgrid accepts pt_dist_udf_pool instead.
    assert schema.check_cache_file(p, BACKEND_REQUIRED_KEYS["udfgrid"]) == []
    with pytest.raises(CacheError, match=r"m\.npz \[pt_dist_pool\]: missing key"):
        schema.load_cache(p, ["pt_xyz_pool", "pt_dist_pool"])
    del arrays["pt_dist_udf_pool"]
    p = write_cache(tmp_path / "m2.npz", arrays=arrays)
    _one(schema.check_cache_file(p, BACKEND_REQUIRED_KEYS["udfgrid"]),
         "[pt_dist_udf_pool or pt_dist_pool]")


@pytest.mark.parametrize("key,value,needle", [
    ("pt_xyz_pool", np.zeros((48, 2), np.float32), "expected"),
    ("ray_t_pool", np.zeros((12, 1), np.float32), "rank 2"),
    ("pt_dist_pool", np.zeros((47,), np.float32), "differs from pt_xyz_pool (48)"),
    ("ray_n_pool", np.zeros((11, 3), np.float32), "differs from ray_o_pool (12)"),
    ("pt_xyz_pool", np.zeros((48, 3), np.complex64), "dtype complex64"),
    ("pc_fps_order", np.zeros((32,), np.float32), "is not int"),
    ("pt_fps_order", np.arange(49, dtype=np.int32), "exceeds pt_xyz_pool"),
])
def test_wrong_shape_or_dtype(tmp_path, key, value, needle):
    arrays = make_arrays()
    arrays[key] = value
    p = write_cache(tmp_path / "w.npz", arrays=arrays)
    _one(schema.check_cache_file(p), p, f"[{key}]", needle)


def test_nan_inf_and_index_range(tmp_path):
    arrays = make_arrays()
    arrays["ray_t_pool"][3] = np.nan
    arrays["pt_xyz_pool"][0, 1] = np.inf
    arrays["pt_dist_pc_pool"][:] = np.nan  # allowed: the pointcloud backends recompute it
    p = write_cache(tmp_path / "n.npz", arrays=arrays)
    problems = schema.check_cache_file(p)
    assert sorted(problems) == sorted([f"{p} [pt_xyz_pool]: 1 NaN/Inf values",
                                       f"{p} [ray_t_pool]: 1 NaN/Inf values"])
    assert schema.check_cache_file(p, check_values=False) == []
    assert schema.check_cache_file(p, value_keys=["pt_dist_pool"]) == []
    arrays = make_arrays()
    arrays["pt_fps_order"][2] = 48
    p = write_cache(tmp_path / "o.npz", arrays=arrays)
    _one(schema.check_cache_file(p), "[pt_fps_order]", "outside [0, 48)")


def test_cache_root_layout(tmp_path):
    assert [str(p) for p in schema.check_cache_root(tmp_path / "nope", ["train"])] == [
        f"{tmp_path / 'nope'}: cache root does not exist or is not a directory"]
    root = tmp_path / "root"
    write_cache(root / "train" / "chair" / "a.npz")
    (root / "train" / "table").mkdir()
    (root / "test").mkdir()
    rows = schema.check_cache_root(root, ["train", "test", "val"])
    assert [(r.path, r.message.split(" ")[0]) for r in rows] == [
        (str(root / "train" / "table"), "class"),
        (str(root / "test"), "split"),
        (str(root / "val"), "split"),
    ]
    assert "has no .npz files" in rows[0].message
    assert "no class folders" in rows[1].message and "missing" in rows[2].message
    (root / "test" / "chair").mkdir()
    rows = schema.check_cache_root(root, ["test"])
    assert [r.message for r in rows] == ["class folder 'chair' has no .npz files",
                                         "split 'test' is empty (no .npz files)"]
    assert schema.list_cache_files(root, "train") == [str(root / "train" / "chair" / "a.npz")]
    assert os.path.basename(schema.list_cache_files(root, "train")[0]) == "a.npz"
