"""Loader worker processes: grain's `MapDataset` + `mp_prefetch` over linear batch steps.

Why grain: it is the maintained JAX-ecosystem loader (nanodo, big_vision's successors), its
`mp_prefetch` runs the element function in worker processes (no GIL: zlib, backend selection,
padding and stacking all run in parallel), hands numpy arrays back through shared memory and
keeps element order deterministic (worker w builds elements w, w + n, ...). The element is a
whole local batch at linear step k (`assemble.BatchReader`), a pure function of k, so the
iterator position stays our `{"epoch", "step"}` and a restore simply starts the dataset at the
saved k: resume is bit-exact without storing grain's own iterator state.

The batch crosses the process boundary with no copy on either side: a worker stacks it straight
into shared memory (`SharedBatch`), a slot of its own that the consumer made once and that is
reused (`data.slots`; until the slots exist, or when the consumer holds on to batches, fresh
blocks that grain hands over by name), and the consumer hands views of its mapping on. The
copies this saves (into fresh shared memory in the worker, out of it in the consumer) and the
zeroing of fresh pages cost more CPU than reading the record (bench/input_pipeline.py,
docs/performance.md).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import secrets
import signal
import sys
import weakref
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from nepa3d_jax.data import slots
from nepa3d_jax.data.assemble import BatchReader
from nepa3d_jax.process_pool import exit_with_parent

log = logging.getLogger(__name__)
_CLOSE_ATTEMPTS = 8

# Linear steps past any real run (grain's range needs an end); `next` never gets near it.
_END = 1 << 62


# glibc mallopt parameters. Default malloc serves every allocation above ~128 KiB-32 MiB with a
# fresh mmap and returns it on free, so each 2 MB record read and each padded pool first-touch
# page-faults its way in: ~3.5 of ~4.5 ms CPU per Run-A record on the 2-core VM (bench/
# input_pipeline.py). Keeping such blocks in the heap makes reuse free. Worker processes are
# ours alone, so the setting is scoped to them (the training process keeps its allocator).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 64 << 20
TRIM_THRESHOLD = 512 << 20


def tune_malloc(*_: Any) -> bool:
    """Large blocks from the heap, kept after free (glibc only; a no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                    and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError):
        return False


# This process's grain worker index, set by `worker_init` in loader worker processes only (None
# elsewhere): a worker writes into its own row of slots, so the row must be its real index.
_WORKER_INDEX: int | None = None


def worker_init(parent_pid: int, index: int, count: int) -> None:
    """grain's worker initializer (called with `index`, `count`): tuned malloc, death with
    the consuming process (else a SIGKILLed run leaves workers and their shared memory
    behind), and the worker index."""
    global _WORKER_INDEX
    tune_malloc()
    exit_with_parent(parent_pid)
    _WORKER_INDEX = int(index)


def _ensure_absl_flags() -> None:
    """grain reads absl flags; a library caller (tests, notebooks) has not parsed any."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


# Arrays smaller than this travel pickled (a shared-memory block costs a file and a mapping).
SHARED_MIN_BYTES = 16 << 10
BLOCK_PREFIX = "nepa3d-batch-"
SIGBUS_TEST_ENV = "NEPA3D_TEST_SIGBUS_AT_STEP"


class SharedBatch:
    """The grain element function: batch k of `reader`, written into this worker's reused slot
    (`data.slots`) once the consumer has made them, else into fresh shared-memory blocks.

    Fresh blocks are named `<BLOCK_PREFIX><consumer pid>-<random>` and slots
    `<BLOCK_PREFIX><consumer pid>-<token>-...` (in /dev/shm on Linux), so what a run holds, or
    what a killed run left behind, can be told apart from other programs' blocks.
    """

    def __init__(self, reader: BatchReader, names: slots.SlotNames):
        self.reader, self.names = reader, names
        self.owner = os.getpid()  # the consuming process (this object is pickled to workers)
        self._slots: slots.WorkerSlots | None = None

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__, _slots=None)

    def __call__(self, k: int) -> dict[str, Any]:
        from grain.multiprocessing import SharedMemoryArray

        if self._slots is None:
            self._slots = slots.WorkerSlots(self.names)
        if os.environ.get(SIGBUS_TEST_ENV) == str(k):  # test hook: a worker dies of SIGBUS
            os.kill(os.getpid(), signal.SIGBUS)
        worker = _WORKER_INDEX
        taken = self._slots.take(worker, k) if worker is not None else None
        carve, refs = (slots.carve(taken[1], worker, taken[0], k) if taken else (None, {}))
        blocks: list[Any] = []

        def alloc(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
            size = int(np.prod(shape)) * np.dtype(dtype).itemsize
            if size < SHARED_MIN_BYTES:
                return np.empty(shape, dtype)  # counts, ids, labels: pickled, no block
            a = carve(shape, dtype) if carve else None
            if a is not None:
                return a
            shm = shared_memory.SharedMemory(  # <= 31 characters with the "/" (macOS)
                name=f"{BLOCK_PREFIX}{self.owner}-{secrets.token_hex(4)}", create=True, size=size)
            try:
                slots.reserve(shm.name, size)  # a full /dev/shm: an error, not a SIGBUS
            except BaseException:
                shm.close()
                shm.unlink()
                raise
            blocks.append(SharedMemoryArray.from_shared_memory(shm, shape, dtype))
            return blocks[-1]

        try:
            batch = self.reader.batch_at(*self.reader.position(k), alloc=alloc)
        except BaseException:
            # The error goes to the consumer; no fresh block may outlive it, the slot is free.
            for b in blocks:
                b.shm.unlink()
            if taken:
                self._slots.give_back(worker, taken[0])
            raise
        if taken and not refs:  # nothing was big enough for the slot
            self._slots.give_back(worker, taken[0])
        return {key: refs.get(id(a), a) for key, a in batch.items()}


def _unlinks_on_del(a: Any) -> bool:
    from grain.multiprocessing import SharedMemoryArray

    return isinstance(a, SharedMemoryArray) and bool(getattr(a, "_unlink_on_del", False))


def _unlink_now(a: Any) -> None:
    """Unlink the fresh block of a batch still held at close (its mapping stays valid): its
    array would unlink it when collected, at exit perhaps after the module teardown, and the
    resource tracker would report it as leaked."""
    if _unlinks_on_del(a):
        try:
            a.shm.unlink()
        except FileNotFoundError:
            pass
        a._unlink_on_del = False  # grain's flag: it would unlink it again when collected


def _flush_unlinks(timeout: float = 10.0) -> None:
    """Run grain's deferred unlinks now: batches its iterator had read ahead are dropped at
    close, and their blocks' unlink is queued on grain's one deletion thread (FIFO), which a
    normal exit would outrun (the resource tracker then warns and unlinks them)."""
    import gc

    from grain.multiprocessing import SharedMemoryArray

    gc.collect()
    pool = getattr(SharedMemoryArray, "_del_thread_pool", None)
    if pool is not None:
        try:
            pool.apply_async(int).wait(timeout)
        except ValueError:  # the pool was closed
            pass


def slots_per_worker(prefetch: int) -> int:
    """A worker's batch in progress, its queue (`prefetch`), and up to two batches the consumer
    still holds (the step's and the next one being transferred). Fewer than grain could queue:
    a worker then waits for a slot as it would for queue room."""
    return max(1, int(prefetch)) + 3


class ProcessLoader:
    """Iterator of batches k0, k0 + 1, ... built by `workers` processes."""

    def __init__(self, reader: BatchReader, start: int, workers: int, buffer: int = 2):
        import grain

        _ensure_absl_flags()
        slots.sweep_dead_blocks(BLOCK_PREFIX)
        self.names = slots.SlotNames(f"{BLOCK_PREFIX}{os.getpid()}-{secrets.token_hex(4)}",
                                     int(workers), slots_per_worker(buffer))
        self._slots = slots.ConsumerSlots(self.names)
        # One batch at a time per worker, built in the worker's main thread (parallelism is
        # across processes; grain's default of 16 threads per worker would only multiply memory
        # and contention). No read-ahead inside the worker either: a batch built ahead sits in
        # shared memory that no queue knows of, so grain could not unlink it on close.
        read = grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)
        ds = (grain.MapDataset.range(int(start), _END)
              .map(SharedBatch(reader, self.names))
              .to_iter_dataset(read))
        # Small arrays travel pickled, as SharedBatch intends: by default grain would copy each
        # (counts, labels, ids) into a shared-memory block of its own, unlinked by a background
        # thread that a normal exit outruns ("resource_tracker: ... leaked shared_memory").
        ds = grain.experimental.WithOptionsIterDataset(
            ds, grain.experimental.DatasetOptions(min_shm_size=SHARED_MIN_BYTES))
        ds = (ds.mp_prefetch(grain.multiprocessing.MultiprocessingOptions(
                  num_workers=int(workers), per_worker_buffer_size=max(1, int(buffer))),
                  worker_init_fn=functools.partial(worker_init, os.getpid())))
        self.start, self.workers = int(start), int(workers)
        self._next_k = self.start
        self.handed = [0, 0]  # batches handed out in [fresh blocks, slots]
        self._fresh: list[weakref.ref] = []  # fresh blocks handed out (alive ones unlinked at close)
        self._it: Any = iter(ds)

    def __next__(self) -> dict[str, np.ndarray]:
        try:
            batch = next(self._it)
        except RuntimeError as e:
            # grain's words for a worker killed by a signal; SIGBUS there is a write into a
            # /dev/shm page that a full tmpfs could not back.
            if f"exit code -{int(signal.SIGBUS)}" in str(e):
                raise slots.SharedMemoryError(slots.shm_full_message(
                    f" (a loader worker died of SIGBUS; data.workers={self.workers})")) from e
            raise
        self._fresh = [r for r in self._fresh if r() is not None]
        self._fresh += [weakref.ref(a) for a in batch.values() if _unlinks_on_del(a)]
        if not self._slots.ready:  # the first batch (fresh blocks) gives the slot size
            big = [a for a in batch.values()
                   if isinstance(a, np.ndarray) and a.nbytes >= SHARED_MIN_BYTES]
            if big:
                self._slots.create(slots.slot_bytes(big))
        viewed = self._slots.view(batch)
        self._slots.handed(self._next_k)
        self._next_k += 1
        self.handed[viewed is not batch] += 1
        # Plain ndarray views of slots or fresh blocks: a fresh block is unlinked, a slot freed,
        # once its last view is dropped (e.g. inside a device array aliasing host memory on CPU).
        return {k: v.view(np.ndarray) for k, v in viewed.items()}

    def close(self) -> None:
        self._slots.closing()
        it, self._it = self._it, None
        for attempt in range(_CLOSE_ATTEMPTS):
            if it is None:
                break
            try:
                it.close()
                break
            except FileNotFoundError as e:
                # grain unlinks the blocks of batches still queued and stops at one that is
                # already gone (seen when a block was deleted from outside: an `rm` of
                # /dev/shm/nepa3d-batch-* while a run was going). Closing again resumes where it
                # stopped: the workers still get stopped and the other blocks unlinked, and a
                # finished run does not fail in its clean-up.
                log.warning("data loader close: %s (attempt %d)", e, attempt + 1)
        del it
        _flush_unlinks()
        for ref in self._fresh:  # batches still held: unlink now (their views stay valid)
            _unlink_now(ref())
        self._slots.close()
