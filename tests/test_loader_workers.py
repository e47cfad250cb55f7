"""Loader worker processes (grain) on a TFDS build: batches equal the thread loader's, arrive
in named shared memory with no copy (fresh blocks first, then reused slots), a slot is never
rewritten while a view of it lives, errors and closes leave no block behind, and the workers
(and then their blocks) go when the consuming process is killed."""

import gc
import mmap
import os
import select
import signal
import subprocess
import sys
import threading
import time
from multiprocessing import shared_memory

import numpy as np
import pytest

import tfds_corpus
from nepa3d_jax.data import slots
from nepa3d_jax.data import loader_workers
from nepa3d_jax.data.pipeline import InputPipeline
from nepa3d_jax.data.schema import CacheError

REPO = tfds_corpus.REPO


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return tfds_corpus.make(tmp_path_factory)


def test_worker_processes_on_the_build_give_the_folder_batches(corpus):
    cache, build = corpus
    with InputPipeline(tfds_corpus.data_cfg(cache, "threads"), 4, process_index=1, process_count=2) as a, \
            InputPipeline(tfds_corpus.data_cfg(build, "processes"), 4, process_index=1,
                          process_count=2) as b:
        assert b.describe()["forms"] == ["tfds", "tfds"] and b.loader == "processes"
        blocks = f"/dev/shm/{loader_workers.BLOCK_PREFIX}{os.getpid()}-*"
        assert b.describe()["shm_blocks"] == blocks
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
    with InputPipeline(tfds_corpus.data_cfg(build, "processes"), 4, process_index=1, process_count=2) as b:
        first = next(b)
        mine = {_block_of(first["pt_xyz"]), _block_of(first["pt_dist"])}
        assert mine <= _blocks()
        del first
        _wait_until(lambda: not (mine & _blocks()), "a dropped batch's blocks were not unlinked")
    _wait_until(lambda: not _blocks(), "blocks left after close")


def _blocks() -> set:
    """Shared-memory blocks that loader workers made for this (test) process."""
    prefix = f"{loader_workers.BLOCK_PREFIX}{os.getpid()}-"
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
    with InputPipeline(tfds_corpus.data_cfg(cache, "threads", **cfg), 4, process_index=0,
                       process_count=1) as a, \
            InputPipeline(tfds_corpus.data_cfg(build, "processes", **cfg), 4, process_index=0,
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
    dst, shard = tfds_corpus.damaged_copy(build, tmp_path, "truncate")
    cfg = tfds_corpus.data_cfg(dst.parent.parent, "processes", prefetch=1, validate="header", workers=1,
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

    names = slots.SlotNames(f"{loader_workers.BLOCK_PREFIX}{os.getpid()}-t", workers=1, depth=2)
    reader = FailsAfterAlloc()
    with pytest.raises(ValueError, match="after the allocation"):
        loader_workers.SharedBatch(reader, names)(0)  # no slots yet: a fresh block
    assert reader.made.shm.name.startswith(loader_workers.BLOCK_PREFIX)
    assert not _blocks()
    consumer = slots.ConsumerSlots(names)
    assert consumer.create(1 << 20) and len(_blocks()) == 3  # 2 slots + the state block
    monkeypatch.setattr(loader_workers, "_WORKER_INDEX", 0)  # as grain's worker 0
    with pytest.raises(ValueError, match="after the allocation"):
        loader_workers.SharedBatch(reader, names)(0)  # in slot 0, which is then freed
    assert isinstance(reader.made.base, mmap.mmap)  # carved in the slot
    assert consumer.states() == [[slots.FREE, slots.FREE]]
    consumer.close()
    assert not _blocks()


def test_slot_protocol_edges():
    """A state block that exists but is not sized yet means "no slots yet" (the consumer makes
    it in two steps); a worker whose slots all hold batches not yet handed out waits (that is
    back-pressure) until the consumer closes; a loader dropped without close() unlinks."""
    names = slots.SlotNames(f"{loader_workers.BLOCK_PREFIX}{os.getpid()}-e", workers=1, depth=2)
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
from nepa3d_jax.config.loading import fill_defaults
from nepa3d_jax.data.pipeline import InputPipeline
if __name__ == "__main__":
    root = sys.argv[1]
    cfg = fill_defaults(ml_collections.ConfigDict(dict(data=dict(
        mix={"a": dict(cache_root=root, split="train", backend="mesh", weight=1.0)},
        mix_config="", mix_num_samples=40, mix_seed=5, replacement=True, validate="header",
        prefetch=1, loader="processes", workers=2)))).data
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
        prefix = f"{loader_workers.BLOCK_PREFIX}{proc.pid}-"
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
