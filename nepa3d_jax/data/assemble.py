"""One process's shard of the batch at (epoch, step): a pure function of the mixture seed.

`BatchReader` is everything needed to build a batch, and nothing that cannot be pickled, so the
same object runs on the main process's thread pool or inside loader worker processes
(`data.workers`); either way batch k is identical. Linear step k = epoch * steps_per_epoch + step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from nepa3d_jax.data import paths, records
from nepa3d_jax.data.mixture import Mixture

BATCH_DTYPES = dict(
    pt_xyz=np.float32, pt_dist=np.float32, pt_count=np.int32, pt_fps_order=np.int32,
    fps_count=np.int32, ray_o=np.float32, ray_d=np.float32, ray_hit=np.float32,
    ray_t=np.float32, ray_n=np.float32, ray_count=np.int32, ray_available=np.bool_,
    sample_id=np.int32, label=np.int32)


@dataclasses.dataclass
class BatchReader:
    mixture: Mixture
    options: list[records.SampleOptions]
    pads: records.PadSizes
    classes: list[list[str]]
    global_batch: int
    local_batch: int
    process_index: int
    steps_per_epoch: int

    def global_indices(self, epoch: int, step: int) -> np.ndarray:
        """(G,) global file indices of the whole batch at (epoch, step)."""
        order = self.mixture.epoch_indices(epoch)
        return order[step * self.global_batch:(step + 1) * self.global_batch]

    def load(self, gidx: int, sample_id: int) -> dict[str, np.ndarray]:
        comp, local = self.mixture.locate(gidx)
        rec = self.mixture.sources[comp].record(local)
        out = records.sample_from_record(rec, self.options[comp], self.pads)
        out["sample_id"] = np.int32(sample_id)
        out["label"] = np.int32(paths.class_label(self.mixture.files[comp][local],
                                                    self.classes[comp]))
        return out

    def batch_at(self, epoch: int, step: int,
                 map_fn: Callable[..., Iterable[Any]] = map,
                 alloc: Callable[[tuple[int, ...], Any], np.ndarray] = np.empty,
                 ) -> dict[str, np.ndarray]:
        """This process's shard of the batch at (epoch, step), stacked (B_local, ...).

        `alloc(shape, dtype)` makes each batch array; the worker processes pass a shared-memory
        allocator, so the batch is stacked straight into the block the consumer maps."""
        if not 0 <= step < self.steps_per_epoch:
            raise IndexError(f"step {step} outside the epoch (0..{self.steps_per_epoch - 1})")
        lo = self.process_index * self.local_batch
        idx = self.global_indices(epoch, step)[lo:lo + self.local_batch]
        ids = step * self.global_batch + lo + np.arange(self.local_batch)
        samples = list(map_fn(self.load, idx.tolist(), ids.tolist()))
        out = {}
        for k, dtype in BATCH_DTYPES.items():
            rows = [s[k] for s in samples]
            out[k] = alloc((len(rows), *np.shape(rows[0])), dtype)
            np.stack(rows, out=out[k], casting="unsafe")  # as astype
        return out

    def position(self, k: int) -> tuple[int, int]:
        return divmod(int(k), self.steps_per_epoch)

    def linear(self, epoch: int, step: int) -> int:
        return int(epoch) * self.steps_per_epoch + int(step)

    def __call__(self, k: int) -> dict[str, np.ndarray]:
        """Batch at linear step k (the element function of the worker-process loader)."""
        return self.batch_at(*self.position(k))
