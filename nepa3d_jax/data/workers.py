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

from typing import Any

import numpy as np

from nepa3d_jax.data.assemble import BatchReader

# Linear steps past any real run (grain's range needs an end); `next` never gets near it.
_END = 1 << 62


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
                  num_workers=int(workers), per_worker_buffer_size=max(1, int(buffer)))))
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
