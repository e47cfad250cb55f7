"""Reused shared-memory slots for the loader workers' batches: mapped once, freed by the GC.

Why: a fresh shared-memory block per batch array makes the kernel allocate and zero every page
of it in the worker that writes it, and map it again in the consumer: ~0.6 ms of CPU per Run-A
sample on the 2-core VM, a third of a worker's whole cost (bench/input_pipeline.py,
docs/performance.md). A slot is one block per (worker, depth) holding a whole batch, written
again and again, so its pages stay warm in both processes.

Protocol (no locks: each state word has one writer at a time):
- After the first batch arrives the consumer knows the batch layout; it creates `workers x depth`
  slots of that size and the state block `state[workers, depth]` (int64, FREE = -1). Until then,
  and whenever a worker's slot does not free up within `WAIT_S`, workers fall back to fresh
  blocks (grain's own hand-over), so a consumer that hoards batches slows down, never deadlocks.
- grain's worker w builds the elements `start + w + n*j`. For its element j it takes slot
  `j % depth` once that slot's state is FREE, sets the state to the element's step k, writes
  the arrays into it and returns a `SlotRef` per array instead of the array.
- The consumer hands out views of its own mapping of the slot (no copy). When the last view is
  collected (after the device copy; on CPU, when a device array aliasing it is freed) a
  finalizer sets the state back to FREE.
- On close the consumer unlinks every block; views still alive stay valid (a mapping outlives
  its name), and no worker writes any more.
Names: `<BLOCK_PREFIX><consumer pid>-<token>-...`, so a run's blocks are easy to find.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import time
import weakref
from collections.abc import Callable
from multiprocessing import shared_memory
from typing import Any

import numpy as np

ALIGN = 64          # bytes; every array in a slot starts on a cache line
FREE = -1
WAIT_S = 0.5        # a worker's wait for its slot before it uses fresh blocks for the batch
POLL_S = 0.0005


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

    def slot(self, worker: int, slot: int) -> str:
        return f"{self.base}-w{worker}s{slot}"


SHM_DIR = "/dev/shm"


def _map(name: str) -> mmap.mmap:
    """A block mapped as a plain `mmap` object, never closed explicitly: numpy arrays keep it
    (not just a pointer into it) as their base, so it is unmapped only after the last of them.
    (`SharedMemory.close()` unmaps while arrays made on its buffer may still point there.)"""
    with open(os.path.join(SHM_DIR, name), "r+b") as f:
        return mmap.mmap(f.fileno(), 0)


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
            except FileNotFoundError:
                return None  # the consumer has not seen a batch yet (or made no slots)
            self._state = np.ndarray((self.names.workers, self.names.depth), np.int64, buffer=m)
        return self._state

    def take(self, worker: int, j: int, k: int) -> tuple[int, mmap.mmap] | None:
        """(slot, its mapping) for element j of `worker`, now holding step k; None: no slot."""
        state = self._state_array()
        if state is None:
            return None
        s = j % self.names.depth
        deadline = time.monotonic() + WAIT_S
        while state[worker, s] != FREE:
            if time.monotonic() > deadline:
                return None
            time.sleep(POLL_S)
        m = self._maps.get(worker * self.names.depth + s)
        if m is None:
            m = self._maps[worker * self.names.depth + s] = _map(self.names.slot(worker, s))
        state[worker, s] = k
        return s, m

    def give_back(self, worker: int, slot: int) -> None:
        """The batch failed after taking the slot: free it again."""
        if self._state is not None:
            self._state[worker, slot] = FREE


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


def _release(state: np.ndarray, worker: int, slot: int, k: int) -> None:
    if state[worker, slot] == k:
        state[worker, slot] = FREE


class ConsumerSlots:
    """The consumer's side: owns every block; views of slots with a finalizer that frees them.

    Its mappings are plain `mmap` objects (`_map`; the SharedMemory handles only create and
    unlink): a view may outlive this object and the names. Where `SHM_DIR` is not where shared
    memory lives (not Linux) no slots are made and the workers keep using fresh blocks.
    """

    def __init__(self, names: SlotNames):
        self.names = names
        self._blocks: list[shared_memory.SharedMemory] = []
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
        return _map(shm.name)

    def create(self, size: int) -> bool:
        """The slots (`size` bytes each) and the state block, all FREE; the state block goes
        last, since its name tells the workers that the slots exist. False: no slots here."""
        self._tried = True
        if not os.path.isdir(SHM_DIR):
            return False
        n = self.names
        try:
            for w in range(n.workers):
                for s in range(n.depth):
                    self._maps[w, s] = self._create(n.slot(w, s), size)
            state = self._create(n.state, 8 * n.workers * n.depth)
        except FileNotFoundError:  # a SharedMemory that does not live in SHM_DIR
            self.close()
            return False
        arr = np.ndarray((n.workers, n.depth), np.int64, buffer=state)
        arr[:] = FREE
        self._state = arr
        return True

    def states(self) -> list[list[int]]:
        """Per worker and slot: FREE, or the step of the batch it holds (diagnostics)."""
        return [] if self._state is None else self._state.tolist()

    def view(self, batch: dict[str, Any]) -> dict[str, Any]:
        """`batch` with every SlotRef replaced by a view of the slot (the same batch object
        when it holds none)."""
        refs = [r for r in batch.values() if isinstance(r, SlotRef)]
        if not refs:
            return batch
        r0 = refs[0]
        holder = np.frombuffer(self._maps[r0.worker, r0.slot], np.uint8)
        weakref.finalize(holder, _release, self._state, r0.worker, r0.slot, r0.k)
        out = dict(batch)
        for key, r in batch.items():
            if isinstance(r, SlotRef):
                n = int(np.prod(r.shape)) * np.dtype(r.dtype).itemsize
                out[key] = holder[r.offset:r.offset + n].view(r.dtype).reshape(r.shape)
        return out

    def close(self) -> None:
        """Unlink every block (after the workers stopped); live views keep their mapping."""
        for shm in self._blocks:
            try:
                shm.unlink()
            except FileNotFoundError:
                pass
        self._blocks = []
