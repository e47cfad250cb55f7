"""Hostile caches: declared sizes are checked against limits before anything is allocated.

The probe of issue 27: a small `.npz` whose npy headers declare 100M rows. Each entry point
(data_prep.validate, the trainer's header and full checks, the TFDS build) runs in a subprocess
under RLIMIT_AS, so a regression that allocates the declared size fails here (MemoryError, no
expected message) instead of taking the machine.
"""

import io
import json
import os
import pathlib
import resource
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from nepa3d_jax.data import records, schema
from nepa3d_jax.data.pipeline import InputPipeline
from nepa3d_jax.data.schema import CacheError

from helpers import comp, data_cfg, make_arrays, sample_options, write_cache

REPO = pathlib.Path(__file__).resolve().parents[1]
ROWS = 100_000_000
# Address-space limit of the probes: numpy + the package import in ~0.5 GB; one declared
# (100M, 3) float32 pool is 1.2 GB, so allocating it fails under this limit.
AS_LIMIT = 1 << 30
P_KEYS = ("pt_xyz_pool", "pt_dist_pool", "pt_dist_pc_pool", "pt_dist_udf_pool")


def write_hostile(path, rows=ROWS):
    """A valid cache whose point-pool headers declare `rows` rows, with 64 bytes of data each."""
    arrays = make_arrays(seed=1)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for key, a in arrays.items():
            buf = io.BytesIO()
            if key in P_KEYS:
                shape = (rows, *a.shape[1:])
                np.lib.format.write_array_header_1_0(buf, dict(
                    descr=np.lib.format.dtype_to_descr(a.dtype), fortran_order=False,
                    shape=shape))
                buf.write(b"\0" * 64)
            else:
                np.lib.format.write_array(buf, a)
            zf.writestr(f"{key}.npy", buf.getvalue())
    return str(path)


@pytest.fixture(scope="module")
def hostile_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile") / "cache"
    for i in range(3):
        write_cache(root / "train" / "chair" / f"{i}.npz", seed=i)
    bad = write_hostile(root / "train" / "chair" / "evil.npz")
    assert os.path.getsize(bad) < 20_000
    return root, bad


def _run_limited(code):
    """`code` in a fresh interpreter under RLIMIT_AS (and few malloc arenas)."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    env = dict(os.environ, MALLOC_ARENA_MAX="2", JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=env,
                          preexec_fn=limit, capture_output=True, text=True, timeout=120)


def test_validate_reports_declared_shape_under_a_memory_limit(hostile_root):
    root, bad = hostile_root
    r = _run_limited(f"""
        import sys
        from data_prep import validate
        sys.exit(validate.main(["--cache_root", {str(root)!r}, "--splits", "train"]))
    """)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "MemoryError" not in out and "Traceback" not in out, out
    assert bad in out and "pt_xyz_pool" in out and f"declared shape ({ROWS}, 3)" in out, out
    assert "over the limit" in out


@pytest.mark.parametrize("mode", ["full", "header", "off"])
def test_trainer_check_refuses_before_allocating(hostile_root, mode):
    root, bad = hostile_root
    cfg = data_cfg(mix={"a": comp(root, "mesh", 1.0)}, validate=mode, mix_num_samples=4)
    r = _run_limited(f"""
        import json, ml_collections
        from nepa3d_jax.data.pipeline import InputPipeline
        from nepa3d_jax.data.schema import CacheError
        cfg = ml_collections.ConfigDict(json.loads({json.dumps(cfg.to_dict())!r}))
        try:
            with InputPipeline(cfg, 2, process_index=0, process_count=1, prefetch=0) as p:
                p.batch_at(0, 0)
        except CacheError as e:
            print("CacheError:", e)
    """)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "CacheError:" in r.stdout, out
    assert "MemoryError" not in out, out
    if mode == "off":  # nothing checked per file: the pad cap still refuses
        assert f"largest declared pool ({ROWS} rows) is over the cap" in out, out
    else:
        assert bad in out and f"declared shape ({ROWS}, 3)" in out, out


def test_tfds_build_refuses_before_reading(hostile_root, tmp_path):
    root, bad = hostile_root
    r = _run_limited(f"""
        import sys
        from data_prep import to_tfds
        sys.exit(to_tfds.main(["--cache_root", {str(root)!r}, "--out_dir",
                               {str(tmp_path / "out")!r}, "--splits", "train"]))
    """)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "Traceback" not in out, out
    assert bad in out and f"declared shape ({ROWS}, 3)" in out, out


def test_limits_follow_the_configured_pad():
    h = {"pt_xyz_pool": schema.ArrayHeader((2_000_000, 3), np.dtype("f4")),
         "ray_o_pool": schema.ArrayHeader((10, 3), np.dtype("f4"))}
    (msg,) = schema.size_problems("f.npz", h)
    assert msg.startswith("f.npz [pt_xyz_pool]: declared shape (2000000, 3)")
    assert schema.size_problems("f.npz", h, schema.size_limits(pt_pool_pad=2_000_000)) == []
    assert schema.size_problems("f.npz", h, schema.size_limits(1_000, 5)) == [msg]  # cap stays
    twice = {**h, "pt_dist_pool": schema.ArrayHeader((2_000_000,), np.dtype("f4"))}
    assert schema.size_problems("f.npz", twice) == [msg]  # one line per file and pool
    big = {"extra": schema.ArrayHeader((1 << 30,), np.dtype("f4"))}  # unknown keys: byte cap
    assert "4096 MiB, over the cap" in schema.size_problems("f.npz", big)[0]


def test_padding_does_not_follow_one_outlier_file(tmp_path):
    root = tmp_path / "c"
    for i in range(4):
        write_cache(root / "train" / "chair" / f"{i}.npz", seed=i, P=40)
    big = records.OUTLIER_MIN_ROWS + 1
    odd = write_cache(root / "train" / "chair" / "odd.npz", seed=9, P=big)
    cfg = data_cfg(mix={"a": comp(root, "mesh", 1.0)}, validate="header", mix_num_samples=4)
    with pytest.raises(CacheError) as e:
        InputPipeline(cfg, 2, process_index=0, process_count=1, prefetch=0)
    msg = str(e.value)
    assert f"{odd} [pt_xyz_pool]: declared length {big} is over 4x the median 40" in msg
    assert msg.startswith("1 cache problem(s)") and f"config.data.pt_pool_pad>={big}" in msg
    cfg.pt_pool_pad = big  # an explicit pad accepts it
    with InputPipeline(cfg, 2, process_index=0, process_count=1, prefetch=0) as p:
        assert p.pads.pt == big
    n = records.OUTLIER_MIN_ROWS
    sizes = [records.RecordSizes(40, 10, 0)] * 3 + [records.RecordSizes(41, n + 1, 0),
                                                     records.RecordSizes(41, n, 0)]
    probs = records.outlier_problems(list("abcde"), sizes, sample_options())
    assert len(probs) == 1 and probs[0].startswith(f"d [ray_o_pool]: declared length {n + 1}")
    assert records.outlier_problems(list("abcde"), sizes, sample_options(), (0, n)) == []


def test_every_reader_refuses_a_header_larger_than_its_data(hostile_root):
    """The one `.npz` reader (training, CPAC, classification) checks the declared size against
    the bytes the member holds before numpy allocates it."""
    root, bad = hostile_root
    r = _run_limited(f"""
        from nepa3d_jax.data import records, schema
        for read in (lambda: records.CheckedRecord({bad!r})["pt_xyz_pool"],
                     lambda: schema.load_cache({bad!r}, ["pt_xyz_pool"])):
            try:
                read()
            except schema.CacheError as e:
                print("CacheError:", e)
    """)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and out.count("CacheError:") == 2, out
    assert f"[pt_xyz_pool]: corrupt array data (declared shape ({ROWS}, 3) (float32) needs" in out
