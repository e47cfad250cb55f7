"""Loader worker processes: grain's `MapDataset` + `mp_prefetch` over linear batch steps.

Why grain: it is the maintained JAX-ecosystem loader (nanodo, big_vision's successors), its
`mp_prefetch` runs the element function in worker processes (no GIL: zlib, backend selection,
padding and stacking all run in parallel), hands numpy arrays back through shared memory and
keeps element order deterministic (worker w builds elements w, w + n, ...). The element is a
whole local batch at linear step k (`assemble.BatchReader`), a pure function of k, so the
iterator position stays our `{"epoch", "step"}` and a restore simply starts the dataset at the
saved k: resume is bit-exact without storing grain's own iterator state.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

import numpy as np

from nepa3d_jax.data.assemble import BatchReader

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


def _ensure_absl_flags() -> None:
    """grain reads absl flags; a library caller (tests, notebooks) has not parsed any."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


class ProcessLoader:
    """Iterator of batches k0, k0 + 1, ... built by `workers` processes."""

    def __init__(self, reader: BatchReader, start: int, workers: int, buffer: int = 2):
        import grain

        _ensure_absl_flags()
        # One batch at a time per worker (parallelism is across processes; grain's default of
        # 16 threads per worker would only multiply memory and contention).
        read = grain.ReadOptions(num_threads=1, prefetch_buffer_size=1)
        ds = (grain.MapDataset.range(int(start), _END).map(reader).to_iter_dataset(read)
              .mp_prefetch(grain.multiprocessing.MultiprocessingOptions(
                  num_workers=int(workers), per_worker_buffer_size=max(1, int(buffer))),
                  worker_init_fn=tune_malloc))
        self.start, self.workers = int(start), int(workers)
        self._it: Any = iter(ds)

    def __next__(self) -> dict[str, np.ndarray]:
        shared = next(self._it)
        # Plain copies (~1 ms a batch): the shared-memory block is unlinked here and now, not
        # whenever the caller happens to drop the batch (or at interpreter exit).
        out = {k: np.array(v, copy=True) for k, v in shared.items()}
        del shared
        return out

    def close(self) -> None:
        if self._it is not None:
            self._it.close()
            self._it = None
