"""The TFDS (ArrayRecord) form of a cache root: built from a small synthetic corpus, it holds
every array raw in folder order (read by tfds itself too), trains to the same losses as the
`.npz` folder (read by grain worker processes), resumes bit-exactly, and corrupt shards fail
naming shard and record. A SIGKILLed build resumes writing only its missing shards (a changed
corpus starts over) and ends byte for byte equal to a clean one."""

import gc
import mmap
import os
import pathlib
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from multiprocessing import shared_memory

import jax
import ml_collections
import numpy as np
import pytest

from data_prep import tfds_shards, to_tfds, validate
from data_prep.synthetic import build_synthetic_corpus
from nepa3d_jax.config import load_config
from nepa3d_jax.data import schema, sources, staging, tfds_source
from nepa3d_jax.data import slots
from nepa3d_jax.data import workers as workers_lib
from nepa3d_jax.data.pipeline import InputPipeline
from nepa3d_jax.data.schema import CacheError
from nepa3d_jax.train import loop

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS = 4


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """(cache root, its TFDS build): 2 classes x 3 shapes, small profile, 2 shards per split."""
    base = tmp_path_factory.mktemp("tfds")
    paths = build_synthetic_corpus(str(base / "syn"), n_per_class=3, classes=["box", "torus"],
                                   log=lambda *a: None)
    build = to_tfds.build(paths["cache"], str(base / "tfds"), workers=1, shards=2,
                          log=lambda *a: None)
    return pathlib.Path(paths["cache"]), pathlib.Path(build)


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


def _damaged_copy(build, tmp_path, how):
    dst = tmp_path / "copy" / tfds_source.BUILD_NAME / build.name
    shutil.copytree(build, dst)
    shard = sorted(dst.glob("*-train.array_record-*"))[-1]
    data = bytearray(shard.read_bytes())
    if how == "flip":
        mid = len(data) // 2
        data[mid:mid + 64] = bytes(b ^ 0xFF for b in data[mid:mid + 64])
    else:
        data = data[: len(data) // 2]
    shard.write_bytes(bytes(data))
    return dst, shard


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_corrupt_or_truncated_shard_names_shard_and_record(corpus, tmp_path, how):
    cache, build = corpus
    dst, shard = _damaged_copy(build, tmp_path, how)
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
    cfg = data_cfg(dst.parent.parent, "threads", prefetch=0, validate="header",
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


def data_cfg(root, loader, **kw):
    c = dict(mix={"a_mesh": dict(cache_root=str(root), split="train", backend="mesh", weight=1.0),
                  "b_udf": dict(cache_root=str(root), split="train", backend="udfgrid",
                                weight=0.5)},
             mix_config="", mix_num_samples=12, mix_seed=5, replacement=True, validate="full",
             prefetch=2, loader=loader, workers=2)
    c.update(kw)
    return ml_collections.ConfigDict(c)


def test_worker_processes_on_the_build_give_the_folder_batches(corpus):
    cache, build = corpus
    with InputPipeline(data_cfg(cache, "threads"), 4, process_index=1, process_count=2) as a, \
            InputPipeline(data_cfg(build, "processes"), 4, process_index=1,
                          process_count=2) as b:
        assert b.describe()["forms"] == ["tfds", "tfds"] and b.loader == "processes"
        assert b.describe()["shm_blocks"] == f"/dev/shm/{workers_lib.BLOCK_PREFIX}{os.getpid()}-*"
        assert a.pads == b.pads
        first = [next(a) for _ in range(4)]
        for want in first:
            got = next(b)
            assert sorted(got) == sorted(want)
            for k in want:
                np.testing.assert_array_equal(got[k], want[k], err_msg=k)
        assert a.get_state() == b.get_state() == {"epoch": 1, "step": 1}
        # Every block a worker writes (the first batch's fresh blocks, then its slots) is named
        # after this process; all are unlinked on close.
        assert {n for n in _blocks() if "-state" in n}, _blocks()
        del got, want, first
    _wait_until(lambda: not _blocks(), "blocks left after close")
    # The first batch arrives in fresh blocks (the slots are made once its layout is known):
    # unlinked once the last view of it is dropped.
    with InputPipeline(data_cfg(build, "processes"), 4, process_index=1, process_count=2) as b:
        first = next(b)
        mine = {_block_of(first["pt_xyz"]), _block_of(first["pt_dist"])}
        assert mine <= _blocks()
        del first
        _wait_until(lambda: not (mine & _blocks()), "a dropped batch's blocks were not unlinked")
    _wait_until(lambda: not _blocks(), "blocks left after close")


def _blocks() -> set:
    """Shared-memory blocks that loader workers made for this (test) process."""
    prefix = f"{workers_lib.BLOCK_PREFIX}{os.getpid()}-"
    return {n for n in os.listdir("/dev/shm") if n.startswith(prefix)}


def _block_of(a) -> str:
    return a.base.shm.name


def _wait_until(cond, what, timeout=10.0):
    """Blocks are closed by grain's background thread: poll, do not sleep a fixed time."""
    deadline = time.monotonic() + timeout
    while not cond():
        gc.collect()
        assert time.monotonic() < deadline, f"{what}: {sorted(_blocks())}"
        time.sleep(0.05)


def test_worker_slots_are_reused_and_never_overwrite_a_held_batch(corpus):
    """After the first batch, workers write into reused slots; a consumer that holds more
    batches than a worker has slots gets fresh blocks for the overflow (after a short wait, no
    deadlock), and every batch it holds still reads as built."""
    cache, build = corpus
    cfg = dict(prefetch=1, workers=1, mix_num_samples=16)
    with InputPipeline(data_cfg(cache, "threads", **cfg), 4, process_index=0,
                       process_count=1) as a, \
            InputPipeline(data_cfg(build, "processes", **cfg), 4, process_index=0,
                          process_count=1) as b:
        want = [next(a) for _ in range(18)]

        def same(got, i):
            for k in want[i]:
                np.testing.assert_array_equal(got[k], want[i][k], err_msg=f"batch {i} {k}")

        for i in range(8):  # one at a time: slots are freed and reused
            same(next(b), i)
        depth = b._procs.names.depth
        fresh, slotted = b._procs.handed
        # Fresh blocks only for what the worker built before the first batch reached us.
        assert depth == 4 and fresh <= 3 and fresh + slotted == 8, b._procs.handed
        held = [next(b) for _ in range(depth + 2)]  # more than the worker's slots
        for i, got in enumerate(held):
            same(got, 8 + i)
        assert b._procs.handed[0] > fresh and b._procs.handed[1] > slotted, b._procs.handed
        fresh, slotted = b._procs.handed
        del held
        gc.collect()
        for i in range(14, 18):
            same(next(b), i)
        assert b._procs.handed[1] > slotted  # back on the slots once they were freed


def test_worker_error_names_shard_and_record_and_leaves_no_blocks(corpus, tmp_path,
                                                                   monkeypatch):
    cache, build = corpus
    dst, shard = _damaged_copy(build, tmp_path, "truncate")
    cfg = data_cfg(dst.parent.parent, "processes", prefetch=1, validate="header", workers=1,
                   mix={"a": dict(cache_root=str(dst.parent.parent), split="train",
                                  backend="mesh", weight=1.0)}, mix_num_samples=8)
    with InputPipeline(cfg, 8, process_index=0, process_count=1) as pipe:
        with pytest.raises(CacheError, match=f"{shard} record \\d+ "):
            next(pipe)
    _wait_until(lambda: not _blocks(), "a failed batch left blocks behind")

    # A record error comes before any block is made; a failure after (stacking, a signal)
    # must unlink the blocks already made, since no queue will ever hand them on.
    class FailsAfterAlloc:
        def position(self, k):
            return 0, k

        def batch_at(self, epoch, step, alloc):
            self.made = alloc((64, 1024), np.float32)
            raise ValueError("after the allocation")

    names = slots.SlotNames(f"{workers_lib.BLOCK_PREFIX}{os.getpid()}-t", workers=1, depth=2)
    reader = FailsAfterAlloc()
    with pytest.raises(ValueError, match="after the allocation"):
        workers_lib.SharedBatch(reader, 0, names)(0)  # no slots yet: a fresh block
    assert reader.made.shm.name.startswith(workers_lib.BLOCK_PREFIX)
    assert not _blocks()
    consumer = slots.ConsumerSlots(names)
    assert consumer.create(1 << 20) and len(_blocks()) == 3  # 2 slots + the state block
    monkeypatch.setattr(workers_lib, "_WORKER_INDEX", 0)  # as grain's worker 0
    with pytest.raises(ValueError, match="after the allocation"):
        workers_lib.SharedBatch(reader, 0, names)(0)  # in slot 0, which is then freed
    assert isinstance(reader.made.base, mmap.mmap)  # carved in the slot
    assert consumer.states() == [[slots.FREE, slots.FREE]]
    consumer.close()
    assert not _blocks()


def test_slot_protocol_edges():
    """A state block that exists but is not sized yet means "no slots yet" (the consumer makes
    it in two steps); a worker whose slots all hold batches not yet handed out waits (that is
    back-pressure) until the consumer closes; a loader dropped without close() unlinks."""
    names = slots.SlotNames(f"{workers_lib.BLOCK_PREFIX}{os.getpid()}-e", workers=1, depth=2)
    half_made = shared_memory.SharedMemory(name=names.state, create=True, size=1)
    os.truncate(os.path.join(slots.SHM_DIR, names.state), 0)
    assert slots.WorkerSlots(names).take(0, 5) is None
    half_made.close()
    half_made.unlink()

    consumer = slots.ConsumerSlots(names)
    assert consumer.create(1 << 16)
    worker = slots.WorkerSlots(names)
    assert [worker.take(0, k)[0] for k in (0, 1)] == [0, 1]  # queued: HANDED is still -1
    timer = threading.Timer(0.3, consumer.closing)
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(slots.LoaderClosing):
        worker.take(0, 2)
    assert time.monotonic() - t0 >= 0.25  # it waited for the queue, past WAIT_S's deadline
    timer.join()
    assert len(_blocks()) == 3
    del consumer, worker, timer
    gc.collect()
    assert not _blocks()


_HOLDER = """
import multiprocessing, sys, time
import ml_collections
from nepa3d_jax.data.pipeline import InputPipeline
if __name__ == "__main__":
    root = sys.argv[1]
    cfg = ml_collections.ConfigDict(dict(
        mix={"a": dict(cache_root=root, split="train", backend="mesh", weight=1.0)},
        mix_config="", mix_num_samples=40, mix_seed=5, replacement=True, validate="header",
        prefetch=1, loader="processes", workers=2))
    pipe = InputPipeline(cfg, 4, process_index=0, process_count=1)
    for _ in range(4):
        next(pipe)
    print(*[p.pid for p in multiprocessing.active_children()], flush=True)
    time.sleep(300)
"""


def test_workers_and_their_blocks_go_when_the_consumer_is_killed(corpus, tmp_path):
    """A SIGKILLed training process (OOM killer, qdel) takes its loader workers with it, and
    then its shared-memory blocks go too (the workers die with their parent; the multiprocessing
    resource tracker unlinks what the dead processes registered)."""
    cache, build = corpus
    script = tmp_path / "hold.py"
    script.write_text(_HOLDER)
    proc = subprocess.Popen([sys.executable, str(script), str(build)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        line = proc.stdout.readline() if ready else ""
        workers = [int(p) for p in line.split()]
        assert len(workers) >= 2, f"no worker pids from the consumer: {line!r}"
        prefix = f"{workers_lib.BLOCK_PREFIX}{proc.pid}-"
        assert any(n.startswith(prefix) for n in os.listdir("/dev/shm"))
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    deadline = time.monotonic() + 30
    while any(os.path.exists(f"/proc/{w}") and "Z" not in _proc_state(w) for w in workers):
        assert time.monotonic() < deadline, "loader workers outlived the killed consumer"
        time.sleep(0.1)
    while any(n.startswith(prefix) for n in os.listdir("/dev/shm")):
        assert time.monotonic() < deadline, "the killed consumer's blocks stayed"
        time.sleep(0.1)


def _proc_state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def train_config(root, workdir, loader):
    c = load_config(str(REPO / "configs" / "base.py"))
    c.workdir = str(workdir)
    c.data.mix = data_cfg(root, loader).mix.to_dict()
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
        with InputPipeline(data_cfg(root, "threads", prefetch=0), 4, process_index=0,
                           process_count=1) as plain, \
                InputPipeline(data_cfg(root, "threads", prefetch=0, stage_dir=str(stage)), 4,
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
