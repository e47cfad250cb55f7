"""Issue 14.4: `data.validate = off | header | full`; the full check finds NaN/Inf, corrupt
members and empty pools before the first step, in worker processes, cached by size+mtime."""

import os
import pathlib
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from nepa3d_jax.data import full_check, records
from nepa3d_jax.data.pipeline import InputPipeline
from nepa3d_jax.data.schema import CacheError

from helpers import comp, data_cfg, make_arrays, sample_options, write_cache

REPO = pathlib.Path(__file__).resolve().parents[1]


def _corrupt_member(path, key):
    """Flip one byte inside `key`'s compressed data; the zip and the npy header stay intact."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f"{key}.npy")
    raw = bytearray(pathlib.Path(path).read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw[start + info.compress_size - 8] ^= 0xFF
    pathlib.Path(path).write_bytes(bytes(raw))


@pytest.fixture()
def bad_corpus(tmp_path):
    root = tmp_path / "corpus"
    for i in range(4):
        write_cache(root / "train" / "chair" / f"ok{i}.npz", seed=i)
    nan = make_arrays(seed=7)
    nan["pt_xyz_pool"][3, 1] = np.nan
    write_cache(root / "train" / "chair" / "nan.npz", arrays=nan)
    empty = make_arrays(seed=8)
    for k in ("pt_xyz_pool",):
        empty[k] = np.zeros((0, 3), np.float32)
    for k in ("pt_dist_pool", "pt_dist_pc_pool", "pt_dist_udf_pool"):
        empty[k] = np.zeros((0,), np.float32)
    empty.pop("pt_fps_order", None)
    write_cache(root / "train" / "chair" / "empty.npz", arrays=empty)
    write_cache(root / "train" / "chair" / "crc.npz", seed=9, P=4000)  # > zipfile's 4 KiB reads
    _corrupt_member(root / "train" / "chair" / "crc.npz", "pt_dist_pool")
    return root


def test_modes_parse_and_old_booleans_map():
    assert [full_check.parse_mode(v) for v in ("full", "HEADER", "off", True, False, "True")] \
        == ["full", "header", "off", "header", "off", "header"]
    with pytest.raises(ValueError, match=r"config.data.validate='fast': must be one of"):
        full_check.parse_mode("fast")


def test_cli_and_config_file_set_the_mode(tmp_path):
    cfg = tmp_path / "myrun.py"
    cfg.write_text("from configs import base\n\ndef get_config():\n  c = base.get_config()\n"
                   "  c.data.validate = 'header'\n  return c\n")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for config, want in (("configs/base.py", "off"), (str(cfg), "header")):
        out = subprocess.run([sys.executable, "-m", "nepa3d_jax.config", "--config", config,
                              *(["--config.data.validate=off"] if want == "off" else [])],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert f'"validate": "{want}"' in out.stdout


def test_full_check_names_nan_corrupt_member_and_empty_pool(bad_corpus, tmp_path):
    mix = {"c": comp(bad_corpus, "mesh", 1.0)}
    # header: only what headers show (the empty pool); the rest would surface mid-run
    with pytest.raises(CacheError) as info:
        InputPipeline(data_cfg(mix=mix, validate="header"), 2, process_index=0, process_count=1)
    assert "empty.npz [pt_xyz_pool]: empty pool, shape (0, 3)" in str(info.value)
    assert "nan.npz" not in str(info.value) and "crc.npz" not in str(info.value)
    # full (the default): every problem, before the first batch
    cfg = data_cfg(mix=mix, validate="full")
    os.remove(bad_corpus / "train" / "chair" / "empty.npz")
    with pytest.raises(CacheError) as info:
        InputPipeline(cfg, 2, process_index=0, process_count=1,
                      validate_cache=tmp_path / "v.json")
    text = str(info.value)
    assert "nan.npz [pt_xyz_pool]: 1 NaN/Inf values" in text
    assert "crc.npz: corrupt array data" in text
    assert text.startswith("2 cache problem(s)")


def test_full_check_in_processes_and_cached_by_size_and_mtime(tmp_path):
    root = tmp_path / "corpus"
    files = [write_cache(root / "train" / "c" / f"{i}.npz", seed=i) for i in range(6)]
    keys, required = records.read_keys(sample_options("mesh"))
    cache = tmp_path / "run" / "validated_caches.json"
    groups = [(files, keys, required)]
    problems, counts = full_check.full_check(groups, cache, workers=2, min_parallel=1)
    assert problems == [] and counts == {"checked": 6, "cached": 0}
    problems, counts = full_check.full_check(groups, cache, workers=2, min_parallel=1)
    assert counts == {"checked": 0, "cached": 6}  # a resume does not redo it
    # a file rewritten in place (new mtime) is checked again, and its NaN found
    bad = make_arrays(seed=2)
    bad["ray_o_pool"][0, 0] = np.inf
    time.sleep(0.01)
    write_cache(files[2], arrays=bad)
    problems, counts = full_check.full_check(groups, cache, workers=2, min_parallel=1)
    assert counts == {"checked": 1, "cached": 5}
    assert problems == [f"{files[2]} [ray_o_pool]: 1 NaN/Inf values"]
    problems, counts = full_check.full_check(groups, cache, workers=1)
    assert counts["checked"] == 1 and len(problems) == 1  # failures are never cached
