"""The TFDS (ArrayRecord) form of a cache root: built from a small synthetic corpus, it holds
every array raw in folder order (read by tfds itself too), trains to the same losses as the
`.npz` folder (read by grain worker processes), resumes bit-exactly, and corrupt shards fail
naming shard and record. A SIGKILLed build resumes writing only its missing shards (a changed
corpus starts over) and ends byte for byte equal to a clean one."""

import os
import pathlib
import select
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import jax
import numpy as np
import pytest

import tfds_corpus
from data_prep import tfds_shards, to_tfds, validate
from data_prep.synthetic import build_synthetic_corpus
from nepa3d_jax.config import load_config
from nepa3d_jax.data import schema, sources, staging, tfds_source
from nepa3d_jax.data.pipeline import InputPipeline
from nepa3d_jax.data.schema import CacheError
from nepa3d_jax.train import loop

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS = 4


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return tfds_corpus.make(tmp_path_factory)


def test_build_holds_every_array_raw_in_folder_order(corpus):
    cache, build = corpus
    assert tfds_source.find_build(build.parent.parent) == str(build)
    assert tfds_source.build_splits(str(build)) == ["test", "train"]
    for split in ("train", "test"):
        src = sources.open_split(str(build.parent.parent), split)
        files = schema.list_cache_files(str(cache), split)
        assert isinstance(src, sources.TfdsBuildSplit) and len(src) == len(files) > 0
        assert [os.path.relpath(f, cache) for f in files] == src.rel_paths
        for i, f in enumerate(files):
            headers = schema.read_headers(f)
            assert src.headers(i) == headers
            rec = src.record(i)
            want = schema.load_cache(f, list(headers))
            assert sorted(rec) == sorted(want)
            for k, a in want.items():
                assert rec[k].dtype == a.dtype and rec[k].tobytes() == a.tobytes(), (f, k)
    assert src.record(0)["udf_grid"].dtype == np.float16  # raw, not widened
    shards = sorted(build.glob("*-train.array_record-*"))
    assert len(shards) == 2
    # Stored raw: the shards hold at least the arrays' bytes (tfds' default writer would
    # brotli-compress them, and reads would pay the decompression again).
    raw = sum(a.nbytes for f in schema.list_cache_files(str(cache), "train")
              for a in schema.load_cache(f, list(schema.read_headers(f))).values())
    assert sum(p.stat().st_size for p in shards) >= raw


def test_second_build_returns_at_once_and_a_bad_file_stops_the_build(corpus, tmp_path):
    cache, build = corpus
    before = {p: os.path.getmtime(build / p) for p in os.listdir(build)}
    lines = []
    again = to_tfds.build(str(cache), str(build.parent.parent), log=lines.append)
    assert again == str(build) and "already built" in lines[0]
    assert {p: os.path.getmtime(build / p) for p in os.listdir(build)} == before
    assert to_tfds.main(["--cache_root", str(cache), "--out_dir", str(build.parent.parent)]) == 0
    assert to_tfds.main(["--cache_root", str(tmp_path / "nope"), "--out_dir",
                         str(tmp_path / "o")]) == 2

    slim = to_tfds.build(str(cache), str(tmp_path / "slim"), ["train"], shards=1,
                         drop_keys=["udf_grid", "occ_grid"], log=lambda *a: None)
    src = sources.open_split(slim, "train")
    assert "udf_grid" not in src.spec and "occ_grid" not in src.spec and "pt_xyz_pool" in src.spec
    rec = src.record(1)
    assert "udf_grid" not in rec and rec["pt_xyz_pool"].shape == (2048, 3)

    bad_root = tmp_path / "bad"
    shutil.copytree(cache / "train", bad_root / "train")
    victim = sorted((bad_root / "train" / "torus").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(CacheError, match=f"{victim}.*truncated"):
        to_tfds.build(str(bad_root), str(tmp_path / "out"), log=lambda *a: None)
    assert tfds_source.find_build(tmp_path / "out") is None


def test_tfds_own_reader_decodes_the_npz_arrays(corpus):
    """tfds itself (`builder_from_directory(...).as_data_source()`) reads the build: record i
    of a split holds the arrays, path and label of the split's i-th `.npz` file."""
    import tensorflow_datasets as tfds

    cache, build = corpus
    source = tfds.builder_from_directory(str(build)).as_data_source()
    classes = tfds_source.read_index(str(build))["classes"]
    for split in ("train", "test"):
        files = schema.list_cache_files(str(cache), split)
        assert len(source[split]) == len(files)
        for i, f in enumerate(files):
            rec = source[split][i]
            want = schema.load_cache(f, list(schema.read_headers(f)))
            assert rec["path"].decode() == os.path.relpath(f, cache)
            assert rec["split"].decode() == split
            assert rec["label"] == classes.index(pathlib.Path(f).parent.name)
            for k, a in want.items():
                assert rec[k].dtype == a.dtype and rec[k].tobytes() == a.tobytes(), (f, k)


def _killed_build(cache, out, records):
    """Run the build in a subprocess (train split, 3 shards, 1 worker), SIGKILL it once it has
    written `records` records (the module's pause hook says so on stdout); its staging folder."""
    env = dict(os.environ, **{tfds_shards.PAUSE_ENV: str(records)})
    cmd = [sys.executable, "-m", "data_prep.to_tfds", "--cache_root", str(cache), "--out_dir",
           str(out), "--splits", "train", "--shards", "3", "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        deadline, seen = time.monotonic() + 120, []
        while "paused" not in seen:
            left = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([proc.stdout], [], [], left)
            line = proc.stdout.readline() if ready else ""
            assert line, f"build ended or stalled before pausing: {seen}"
            seen.append(line.strip())
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    staging = out / tfds_source.BUILD_NAME / (tfds_source.BUILD_VERSION
                                              + tfds_source.STAGING_SUFFIX)
    assert staging.is_dir() and tfds_source.find_build(out) is None
    return staging


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_killed_build_resumes_writing_only_the_missing_shards(corpus, tmp_path):
    cache, _ = corpus
    out = tmp_path / "out"
    # 4 train shapes in 3 shards of 1, 2, 1 records: killed inside the second shard.
    staging = _killed_build(cache, out, records=2)
    first = tfds_shards.shard_name("train", 0, 3)
    names = sorted(p.name for p in staging.iterdir())
    assert first in names and tfds_shards.shard_name("train", 1, 3) not in names
    assert any(tfds_shards.TMP_INFIX in n for n in names), names  # the shard in flight
    st = (staging / first).stat()

    lines = []
    build = pathlib.Path(to_tfds.build(str(cache), str(out), ["train"], shards=3,
                                       log=lines.append))
    assert any("resuming, 1 of 3 shards already there" in ln for ln in lines), lines
    kept = (build / first).stat()
    assert (kept.st_ino, kept.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)  # not rewritten
    assert not staging.exists()
    # A clean build, its shards written by 2 worker processes at once, is the same byte for
    # byte: shards, metadata.json, dataset_info.json.
    clean = pathlib.Path(to_tfds.build(str(cache), str(tmp_path / "clean"), ["train"], workers=2,
                                       shards=3, log=lambda *a: None))
    resumed = _files(build)
    assert resumed == _files(clean)
    assert sum(n.startswith(f"{tfds_source.BUILD_NAME}-train.") for n in resumed) == 3


def test_killed_build_of_a_changed_corpus_starts_over(corpus, tmp_path):
    cache, _ = corpus
    root = tmp_path / "cache"
    shutil.copytree(cache / "train", root / "train")
    out = tmp_path / "out"
    staging = _killed_build(root, out, records=2)
    gone = sorted((root / "train" / "box").iterdir())[0]
    gone.unlink()

    lines = []
    build = to_tfds.build(str(root), str(out), ["train"], shards=3, log=lines.append)
    assert any("starting over (split train: 4 -> 3 files" in ln for ln in lines), lines
    assert not any("resuming" in ln for ln in lines) and not staging.exists()
    src = sources.open_split(build, "train")
    assert src.rel_paths == [os.path.relpath(f, root)
                             for f in schema.list_cache_files(str(root), "train")]
    assert len(src) == 3 and str(gone.relative_to(root)) not in src.rel_paths
    clean = to_tfds.build(str(root), str(tmp_path / "clean"), ["train"], shards=3,
                          log=lambda *a: None)
    assert _files(pathlib.Path(build)) == _files(pathlib.Path(clean))


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_corrupt_or_truncated_shard_names_shard_and_record(corpus, tmp_path, how):
    cache, build = corpus
    dst, shard = tfds_corpus.damaged_copy(build, tmp_path, how)
    src = sources.open_split(str(dst), "train")
    errors = {}
    for i in range(len(src)):
        try:
            src.record(i)
        except CacheError as e:
            errors[i] = str(e)
    assert errors, "damage went unnoticed"
    first = min(errors)
    shard_start = len(src) - sum(1 for i in range(len(src)) if src.shard_of(i)[0] == str(shard))
    assert first >= shard_start  # records of the intact shard still read
    assert errors[first].startswith(f"{shard} record {first - shard_start} "
                                    f"({src.rel_paths[first]}): unreadable ArrayRecord data")
    # A run reading the damaged build stops with the same message (validate=header: the
    # index is intact, so the damage shows when the record is read).
    cfg = tfds_corpus.data_cfg(dst.parent.parent, "threads", prefetch=0, validate="header",
                   mix={"a": dict(cache_root=str(dst.parent.parent), split="train",
                                  backend="mesh", weight=1.0)}, mix_num_samples=len(src))
    with InputPipeline(cfg, len(src), process_index=0, process_count=1) as pipe:
        with pytest.raises(CacheError, match=f"{shard} record \\d+ "):
            next(pipe)
    # data_prep.validate reads every record of a build, and reports the same.
    n, problems = validate.validate_root(str(dst), ["train"], ["mesh"])
    assert n == len(src) and any(str(shard) in p.path for p in problems)
    assert validate.main(["--cache_root", str(dst), "--splits", "train"]) == 1


def test_validate_accepts_either_form(corpus, capsys):
    cache, build = corpus
    for root in (cache, build.parent.parent):
        assert validate.main(["--cache_root", str(root), "--backends", "mesh,udfgrid"]) == 0
    out = capsys.readouterr().out
    assert out.count("checked 6 files") == 2 and "0 problem(s)" in out


def train_config(root, workdir, loader):
    c = load_config(str(REPO / "configs" / "base.py"))
    c.workdir = str(workdir)
    c.data.mix = tfds_corpus.data_cfg(root, loader).mix.to_dict()  # components filled
    c.data.update(dict(mix_config="", mix_num_samples=16, mix_seed=5, n_point=16, n_ray=16,
                       max_len=-1, prefetch=1, loader=loader, workers=2))
    c.model.d_model, c.model.layers, c.model.heads = 32, 1, 2
    c.train.update(dict(batch_per_device=1, num_steps=STEPS, log_every_steps=1, base_lr=1e-3,
                        lr_scale=False, checkpoint_every_steps=3, keep_checkpoints=2))
    return c


def _losses(result):
    return np.array([loss for _, loss in result["losses"]])


def test_training_from_the_build_matches_the_folder_and_resumes_bit_exactly(corpus, tmp_path):
    """Same seed -> same losses from either form; a run stopped by SIGTERM resumes on grain
    worker processes (started at the restored step) to exactly the uninterrupted run."""
    cache, build = corpus
    folder = loop.run(train_config(cache, tmp_path / "npz", "threads"))
    full = loop.run(train_config(build, tmp_path / "full", "threads"), return_state=True)
    assert np.all(np.isfinite(_losses(full))) and _losses(full).shape == (STEPS,)
    np.testing.assert_array_equal(_losses(full), _losses(folder))

    def sigterm_after_two(step, metrics):
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    stopped = loop.run(train_config(build, tmp_path / "resumed", "threads"),
                       callback=sigterm_after_two)
    assert stopped["preempted"] and stopped["step"] == 2
    resumed = loop.run(train_config(build, tmp_path / "resumed", "processes"),
                       return_state=True)
    assert resumed["resumed_from"] == 2 and resumed["step"] == STEPS
    np.testing.assert_array_equal(_losses(resumed), _losses(full)[2:])
    for a, b in zip(jax.tree.leaves(resumed["state"]), jax.tree.leaves(full["state"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_compress_none_writes_the_same_arrays_uncompressed(corpus, tmp_path):
    """`--compress none` (data_prep.synthetic and the cache writers): stored zip members, same
    arrays as the default zlib caches, so either feeds the same run."""
    cache, _ = corpus
    raw = build_synthetic_corpus(str(tmp_path / "raw"), n_per_class=3, classes=["box"],
                                 log=lambda *a: None, compress="none")
    for f in schema.list_cache_files(raw["cache"], "train"):
        with zipfile.ZipFile(f) as z:
            assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}
        twin = cache / os.path.relpath(f, raw["cache"])
        with zipfile.ZipFile(twin) as z:
            assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_DEFLATED}
        keys = list(schema.read_headers(f))
        a, b = schema.load_cache(f, keys), schema.load_cache(str(twin), keys)
        for k in keys:
            assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), (f, k)
    assert validate.main(["--cache_root", raw["cache"]]) == 0


def test_stage_dir_copies_once_per_node_and_keeps_the_stream(corpus, tmp_path):
    cache, build = corpus
    stage = tmp_path / "node_local"
    for root in (cache, build):
        with InputPipeline(tfds_corpus.data_cfg(root, "threads", prefetch=0), 4, process_index=0,
                           process_count=1) as plain, \
                InputPipeline(tfds_corpus.data_cfg(root, "threads", prefetch=0, stage_dir=str(stage)), 4,
                              process_index=0, process_count=1) as staged:
            roots = {c["cache_root"] for c in staged.describe()["components"]}
            assert all(r.startswith(str(stage)) for r in roots), roots
            for _ in range(2):
                want, got = next(plain), next(staged)
                for k in want:
                    np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    copies = sorted(p.name for p in (stage / "nepa3d_stage").iterdir() if p.is_dir())
    assert len(copies) == 3  # cache/train (+ its .root view) and the build
    marker = next(p for p in (stage / "nepa3d_stage").glob("1.0.0-*") if p.is_dir()) / staging.MARKER
    before = marker.stat().st_mtime_ns
    lines = []
    again = staging.stage_tree(str(build), str(stage), log=lines.append)
    assert again == str(marker.parent) and not lines and marker.stat().st_mtime_ns == before
