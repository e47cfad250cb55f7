"""Reused shared-memory slots for the loader workers' batches: mapped once, freed by the GC.

Why: a fresh shared-memory block per batch array makes the kernel allocate and zero every page
of it in the worker that writes it, and map it again in the consumer: ~0.6 ms of CPU per Run-A
sample on the 2-core VM, a third of a worker's whole cost (bench/input_pipeline.py,
docs/performance.md). A slot is one block per (worker, depth) holding a whole batch, written
again and again, so its pages stay warm in both processes.

Protocol (no locks: each word has one writer at a time):
- After the first batch arrives the consumer knows the batch layout; it creates `workers x depth`
  slots of that size (allocated at once: a full /dev/shm is an error now, not a SIGBUS later) and
  then the state block: `HANDED` (the last step handed out), `CLOSING`, and per slot FREE (-1)
  or the step it holds. Until then workers use fresh blocks (grain's own hand-over).
- Worker w (grain's worker index, from the worker initializer: its row is its own) writes a
  batch into any FREE slot of its row, setting the slot to the batch's step k, and returns a
  `SlotRef` per array instead of the array. With no slot FREE it waits while some slot holds
  a batch not yet handed out (that is back-pressure, as a full queue would be); once all its
  slots hold batches the consumer has (it hoards them), it waits `WAIT_S` and then uses fresh
  blocks, so such a consumer slows down but never deadlocks.
- The consumer hands out views of its own mapping of the slot (no copy). When the last view is
  collected (after the device copy; on CPU, when a device array aliasing it is freed) a
  finalizer sets the slot back to FREE.
- On close the consumer sets CLOSING (a waiting worker gives up at once: `LoaderClosing`, an
  error no one reads, rather than a batch in fresh blocks), stops the workers and unlinks every
  block; views still alive stay valid (a mapping outlives its name).
Names: `<BLOCK_PREFIX><consumer pid>-<token>-...`, so a run's blocks are easy to find, and
those of a whole job killed at once (trainer, resource tracker and workers: nothing was left to
unlink them) are swept when the next loader starts (`sweep_dead_blocks`).

A full `SHM_DIR` is a `SharedMemoryError` naming it, its size and the config fields that set
the need (`shm_full_message`), whether the consumer's slots or a worker's fresh block hit it
(blocks are allocated when made, so a worker gets ENOSPC rather than a SIGBUS, and a SIGBUS
that still kills a worker is reported the same way).
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import mmap
import os
import time
import weakref
from collections.abc import Callable
from multiprocessing import shared_memory
from typing import Any

import numpy as np
from nepa3d_jax.process_pool import pid_alive

ALIGN = 64          # bytes; every array in a slot starts on a cache line
FREE = -1
HANDED, CLOSING, HEADER = 0, 1, 2   # words of the state block before the slot words
WAIT_S = 0.5        # a worker's wait for a slot the consumer holds before it uses fresh blocks
POLL_S = (0.0002, 0.005)  # a waiting worker's first and longest sleep
SHM_DIR = "/dev/shm"
SWEEP_ENV = "NEPA3D_SHM_SWEEP"  # "0": never sweep (e.g. /dev/shm shared across pid namespaces)
log = logging.getLogger(__name__)


class SharedMemoryError(RuntimeError):
    """SHM_DIR has no room for the loader's batches; the message names it, its size and the
    config fields to change (one line: the CLI prints it without a traceback)."""


def shm_full_message(need: str = "") -> str:
    """`SHM_DIR` (size, free) has no room ...: what to change, in one line."""
    try:
        st = os.statvfs(SHM_DIR)
        size = (f"{st.f_blocks * st.f_frsize / 2**20:.1f} MiB, "
                f"{st.f_bavail * st.f_frsize / 2**20:.1f} MiB free")
    except OSError:
        size = "size unknown"
    return (f"{SHM_DIR} ({size}) has no room for the data loader's batches{need}: enlarge it "
            "(containers: e.g. docker --shm-size), or lower config.data.workers, "
            "config.data.prefetch or the batch (config.train.batch_per_device), or use "
            "config.data.loader=threads (docs/pbs.md)")


def reserve(name: str, size: int) -> None:
    """Allocate a fresh block's pages now (SharedMemoryError when SHM_DIR is full) instead of
    at the first write, where a full tmpfs kills the writer with SIGBUS."""
    path = os.path.join(SHM_DIR, name)
    if not os.path.exists(path):
        return  # shared memory does not live in SHM_DIR here (not Linux)
    with open(path, "r+b") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, size)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise SharedMemoryError(shm_full_message(f" ({size / 2**20:.1f} MiB block)")) \
                    from e
            raise


def sweep_dead_blocks(prefix: str) -> list[str]:
    """Unlink `<prefix><pid>-*` blocks of this user whose pid is gone: what a whole job killed
    at once (PBS, the OOM killer) leaves in SHM_DIR. SHM_DIR is this host's memory (tmpfs), so
    its blocks were made on this host, and the pid in the name is the consuming process that
    owns them: a live one is never touched. Returns the names removed."""
    if os.environ.get(SWEEP_ENV, "1") == "0" or not os.path.isdir(SHM_DIR):
        return []
    removed = []
    for name in sorted(os.listdir(SHM_DIR)):
        pid = name[len(prefix):].split("-", 1)[0] if name.startswith(prefix) else ""
        if not pid.isdigit() or int(pid) == os.getpid() or pid_alive(int(pid)):
            continue
        path = os.path.join(SHM_DIR, name)
        try:
            if os.stat(path).st_uid != os.getuid():
                continue
            os.unlink(path)
        except (FileNotFoundError, PermissionError):
            continue
        removed.append(name)
    if removed:
        log.warning("removed %d shared-memory block(s) of dead processes from %s (%s ...)",
                    len(removed), SHM_DIR, removed[0])
    return removed


def _aligned(n: int) -> int:
    return -(-int(n) // ALIGN) * ALIGN


def slot_bytes(arrays: list[np.ndarray]) -> int:
    """Size of a slot holding `arrays` (the big arrays of one batch, in order)."""
    return sum(_aligned(a.nbytes) for a in arrays)


@dataclasses.dataclass(frozen=True)
class SlotRef:
    """Where one batch array lies: passed (pickled, tiny) in place of the array."""
    worker: int
    slot: int
    k: int
    offset: int
    shape: tuple[int, ...]
    dtype: str


@dataclasses.dataclass(frozen=True)
class SlotNames:
    """The names of one loader's blocks (picklable: travels to the workers)."""
    base: str          # `<BLOCK_PREFIX><pid>-<token>`
    workers: int
    depth: int

    @property
    def state(self) -> str:
        return f"{self.base}-state"

    @property
    def state_words(self) -> int:
        return HEADER + self.workers * self.depth

    def slot(self, worker: int, slot: int) -> str:
        return f"{self.base}-w{worker}s{slot}"


def _map(name: str, allocate: int = 0) -> mmap.mmap:
    """A block mapped as a plain `mmap` object, never closed explicitly: numpy arrays keep it
    (not just a pointer into it) as their base, so it is unmapped only after the last of them.
    (`SharedMemory.close()` unmaps while arrays made on its buffer may still point there.)
    `allocate` > 0 reserves that many bytes first (ENOSPC here rather than SIGBUS later)."""
    with open(os.path.join(SHM_DIR, name), "r+b") as f:
        if allocate:
            os.posix_fallocate(f.fileno(), 0, allocate)
        return mmap.mmap(f.fileno(), 0)


class LoaderClosing(RuntimeError):
    """Raised in a worker waiting for a slot when the consumer closes: grain drops it."""


class WorkerSlots:
    """A worker's side: find the consumer's blocks once they exist, take and fill a slot."""

    def __init__(self, names: SlotNames):
        self.names = names
        self._state: np.ndarray | None = None
        self._maps: dict[int, mmap.mmap] = {}

    def __getstate__(self) -> dict[str, Any]:
        return dict(names=self.names, _state=None, _maps={})

    def _state_array(self) -> np.ndarray | None:
        if self._state is None:
            try:
                m = _map(self.names.state)
            except (FileNotFoundError, ValueError):
                return None  # not made yet, or made but not sized yet (an empty file)
            if len(m) < 8 * self.names.state_words:
                return None
            self._state = np.ndarray((self.names.state_words,), np.int64, buffer=m)
        return self._state

    def take(self, worker: int, k: int) -> tuple[int, mmap.mmap] | None:
        """(slot, its mapping) of `worker`'s row, now holding step k; None: use fresh blocks."""
        state = self._state_array()
        if state is None or not 0 <= worker < self.names.workers:
            return None
        d = self.names.depth
        row = state[HEADER + worker * d:HEADER + (worker + 1) * d]
        deadline, pause = None, POLL_S[0]
        while True:
            if state[CLOSING]:
                # Not fresh blocks: a batch built now would race grain's shutdown (and leak).
                raise LoaderClosing("the consumer closed the loader")
            free = np.flatnonzero(row == FREE)
            if free.size:
                s = int(free[0])
                break
            if (row > state[HANDED]).any():
                deadline = None  # a batch of ours is still queued: wait for it to go through
            elif deadline is None:
                deadline = time.monotonic() + WAIT_S
            elif time.monotonic() > deadline:
                return None  # the consumer holds all our slots
            time.sleep(pause)
            pause = min(2 * pause, POLL_S[1])
        m = self._maps.get(s)
        if m is None:
            m = self._maps[s] = _map(self.names.slot(worker, s))
        row[s] = k
        return s, m

    def give_back(self, worker: int, slot: int) -> None:
        """The slot was taken but is not handed on (the batch failed, or used no slot)."""
        if self._state is not None:
            self._state[HEADER + worker * self.names.depth + slot] = FREE


def carve(buf: mmap.mmap, worker: int, slot: int, k: int
          ) -> tuple[Callable[[tuple[int, ...], Any], np.ndarray | None], dict[int, SlotRef]]:
    """An allocator placing arrays one after another in `buf` (None once it is full) and the
    `SlotRef` of every array it placed, by `id` of the array."""
    refs: dict[int, SlotRef] = {}
    offset = [0]

    def alloc(shape: tuple[int, ...], dtype: Any) -> np.ndarray | None:
        dt = np.dtype(dtype)
        n = int(np.prod(shape)) * dt.itemsize
        at = offset[0]
        if at + n > len(buf):
            return None
        a = np.ndarray(shape, dt, buffer=buf, offset=at)
        offset[0] = at + _aligned(n)
        refs[id(a)] = SlotRef(worker, slot, k, at, tuple(int(d) for d in shape), dt.str)
        return a

    return alloc, refs


def _release(state: np.ndarray, word: int, k: int, owner: int) -> None:
    if os.getpid() == owner and state[word] == k:  # not in a forked child at its exit
        state[word] = FREE


def _unlink(blocks: list[shared_memory.SharedMemory]) -> None:
    for shm in blocks:
        try:
            shm.unlink()
        except FileNotFoundError:
            pass
    blocks.clear()


class ConsumerSlots:
    """The consumer's side: owns every block; views of slots with a finalizer that frees them.

    Its mappings are plain `mmap` objects (`_map`; the SharedMemory handles only create and
    unlink): a view may outlive this object and the names. Where `SHM_DIR` is not where shared
    memory lives (not Linux) no slots are made and the workers keep using fresh blocks.
    """

    def __init__(self, names: SlotNames):
        self.names = names
        self._blocks: list[shared_memory.SharedMemory] = []
        # Unlinks the names when this object is collected without close() (then or at exit).
        self._unlinker = weakref.finalize(self, _unlink, self._blocks)
        self._state: np.ndarray | None = None
        self._maps: dict[tuple[int, int], mmap.mmap] = {}
        self._tried = False

    @property
    def ready(self) -> bool:
        """Made, or tried and not possible here (then every batch uses fresh blocks)."""
        return self._tried

    def _create(self, name: str, size: int) -> mmap.mmap:
        shm = shared_memory.SharedMemory(name=name, create=True, size=size)
        self._blocks.append(shm)  # for unlink
        shm.close()
        return _map(shm.name, allocate=size)

    def create(self, size: int) -> bool:
        """The slots (`size` bytes each) and the state block; the state block goes last, since
        its name tells the workers that the slots exist. False: no slots here."""
        self._tried = True
        if not os.path.isdir(SHM_DIR):
            return False
        n = self.names
        try:
            for w in range(n.workers):
                for s in range(n.depth):
                    self._maps[w, s] = self._create(n.slot(w, s), size)
            state = self._create(n.state, 8 * n.state_words)
        except OSError as e:
            _unlink(self._blocks)
            self._maps.clear()
            if e.errno == errno.ENOSPC:
                raise SharedMemoryError(shm_full_message(
                    f" ({n.workers} x {n.depth} slots of {size / 2**20:.1f} MiB)")) from e
            if isinstance(e, FileNotFoundError):  # shared memory does not live in SHM_DIR
                return False
            raise
        arr = np.ndarray((n.state_words,), np.int64, buffer=state)
        arr[HEADER:] = FREE
        arr[HANDED] = -1
        self._state = arr
        return True

    def handed(self, k: int) -> None:
        """Step k has been handed out (whatever carried it): the workers' view of the queue."""
        if self._state is not None:
            self._state[HANDED] = k

    def states(self) -> list[list[int]]:
        """Per worker and slot: FREE, or the step of the batch it holds (diagnostics)."""
        if self._state is None:
            return []
        return self._state[HEADER:].reshape(self.names.workers, self.names.depth).tolist()

    def view(self, batch: dict[str, Any]) -> dict[str, Any]:
        """`batch` with every SlotRef replaced by a view of the slot (the same batch object
        when it holds none)."""
        refs = [r for r in batch.values() if isinstance(r, SlotRef)]
        if not refs:
            return batch
        r0 = refs[0]
        holder = np.frombuffer(self._maps[r0.worker, r0.slot], np.uint8)
        weakref.finalize(holder, _release, self._state,
                         HEADER + r0.worker * self.names.depth + r0.slot, r0.k, os.getpid())
        out = dict(batch)
        for key, r in batch.items():
            if isinstance(r, SlotRef):
                n = int(np.prod(r.shape)) * np.dtype(r.dtype).itemsize
                out[key] = holder[r.offset:r.offset + n].view(r.dtype).reshape(r.shape)
        return out

    def closing(self) -> None:
        """Tell waiting workers to stop waiting (before the workers are stopped)."""
        if self._state is not None:
            self._state[CLOSING] = 1

    def close(self) -> None:
        """Unlink every block (after the workers stopped); live views keep their mapping."""
        self._unlinker()
