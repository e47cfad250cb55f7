"""The host input pipeline: per-process shards of a seeded global batch, padded, prefetched.

The global batch at (epoch, step) is a pure function of the mixture seed: positions
`[step*G, (step+1)*G)` of the epoch's sample order (G = global batch; the last partial batch is
dropped). Process p of n reads only positions `p*B .. (p+1)*B` of it (B = G/n), i.e. contiguous
blocks in process order, the layout `jax.make_array_from_process_local_data` expects for a
`data` axis laid out over processes. Each sample carries `sample_id` = its position in the epoch.

The iterator position is the JSON-able `{"epoch", "step"}` of the next batch handed out;
restoring it reproduces the remaining stream exactly, with or without prefetch.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
import warnings
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from nepa3d_jax.data import mixture as mixture_lib
from nepa3d_jax.data import full_check, records, schema, sources
from nepa3d_jax.data.assemble import BATCH_DTYPES, BatchReader
from nepa3d_jax.data.schema import CacheError
from nepa3d_jax.data.loader_workers import BLOCK_PREFIX, ProcessLoader  # grain: imported on use

__all__ = ["BATCH_DTYPES", "InputPipeline", "LOADERS"]

# config.data.loader: "threads" (a thread pool in this process), "processes" (grain worker
# processes, `data.workers`), "auto" (processes once the corpus is large enough that worker
# start-up, a few seconds, is paid back; threads for tiny corpora and tests).
LOADERS = ("auto", "threads", "processes")
AUTO_PROCESSES_MIN_FILES = 2000


class InputPipeline:
    """Per-host iterator of padded numpy batches `(B_local, ...)` for pretraining."""

    def __init__(self, data_cfg: Any, global_batch: int, *, process_index: int | None = None,
                 process_count: int | None = None, prefetch: int | None = None,
                 workers: int | None = None, start: Mapping[str, int] | None = None,
                 validate_cache: str | os.PathLike | None = None):
        if process_index is None or process_count is None:
            import jax  # local: the pipeline itself is numpy-only

            process_index = jax.process_index() if process_index is None else process_index
            process_count = jax.process_count() if process_count is None else process_count
        if global_batch <= 0 or global_batch % process_count:
            raise ValueError(f"global batch {global_batch} must be a positive multiple of the "
                             f"process count {process_count}")
        self.process_index, self.process_count = int(process_index), int(process_count)
        self.global_batch = int(global_batch)
        self.local_batch = self.global_batch // self.process_count
        self.prefetch = int(data_cfg.prefetch if prefetch is None else prefetch)
        self.workers = max(1, int(data_cfg.workers if workers is None else workers))
        self.loader = str(data_cfg.loader).strip().lower()
        if self.loader not in LOADERS:
            raise ValueError(f"config.data.loader: '{self.loader}' is not one of "
                             f"{' | '.join(LOADERS)}")

        spec = mixture_lib.mix_spec_from_config(data_cfg)
        if data_cfg.stage_dir:
            from nepa3d_jax.data import staging  # copies to node-local disk, once per node

            spec = staging.stage_spec(spec, str(data_cfg.stage_dir))
        self.mixture = mixture_lib.Mixture(spec)
        self.steps_per_epoch = self.mixture.num_samples // self.global_batch
        if self.steps_per_epoch == 0:
            raise ValueError(f"config.data.mix_num_samples={self.mixture.num_samples} is smaller "
                             f"than the global batch {self.global_batch}")
        self.options = [self._component_options(data_cfg, c) for c in self.mixture.spec.components]
        self.classes = [sorted({os.path.basename(os.path.dirname(f)) for f in files}) for files in
                        self.mixture.files]
        self.pads = self._scan(data_cfg, validate_cache)
        if self.loader == "auto":
            big = len(self.mixture) >= AUTO_PROCESSES_MIN_FILES and self.workers > 1
            self.loader = "processes" if big else "threads"
        self.reader = BatchReader(self.mixture, self.options, self.pads, self.classes,
                                  self.global_batch, self.local_batch, self.process_index,
                                  self.steps_per_epoch)
        self._procs: Any = None
        self._pos = (0, 0)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._queue: queue.Queue | None = None
        self._pool = ThreadPoolExecutor(min(self.workers, self.local_batch))
        if start:
            self.set_state(start)

    # --- set-up ------------------------------------------------------------------------------
    @staticmethod
    def _component_options(cfg: Any, comp: mixture_lib.MixComponent) -> records.SampleOptions:
        for k in ("drop_ray_prob", "add_eos"):
            if k in comp.overrides and comp.overrides[k] != cfg[k]:
                warnings.warn(f"mix component '{comp.name}': per-component "
                              f"{k}={comp.overrides[k]} is not supported; the run-wide "
                              f"config.data.{k} applies", stacklevel=3)
        # The run-wide value, unless the component (an original-format YAML entry) sets its own.
        local = {k: comp.overrides[k] if k in comp.overrides else cfg[k] for k in (
            "force_missing_ray", "voxel_grid", "voxel_dilate", "voxel_max_steps")}
        return records.SampleOptions(
            backend=comp.backend, pt_xyz_key=str(cfg.pt_xyz_key),
            pt_dist_key=cfg.pt_dist_key or None, pt_fps_key=str(cfg.pt_fps_key),
            ablate_point_dist=bool(cfg.ablate_point_dist),
            force_missing_ray=bool(local["force_missing_ray"]),
            voxel_grid=int(local["voxel_grid"]), voxel_dilate=int(local["voxel_dilate"]),
            voxel_max_steps=int(local["voxel_max_steps"]))

    def _scan(self, cfg: Any, validate_cache: str | os.PathLike | None) -> records.PadSizes:
        """Validate every file (CacheError naming file and key) and fix the pad sizes."""
        mode = self.validate_mode = full_check.parse_mode(cfg.validate)
        self.full_check_counts: dict[str, int] = {}
        pads = (int(cfg.pt_pool_pad), int(cfg.ray_pool_pad))
        problems: list[str] = []
        pt = ray = fps = 0
        npz_groups = []
        for src, opts in zip(self.mixture.sources, self.options):
            # `.npz` folders: header scan here, the full value check below (worker processes,
            # cached per file); a TFDS build checks values in its own scan.
            npz = isinstance(src, sources.NpzSplit)
            probs, sizes = src.scan(opts, values=(mode == "full" and not npz),
                                    workers=self.workers, pads=pads)
            if npz:
                npz_groups.append((src.names, *records.read_keys(opts)))
            problems += probs
            pt, ray, fps = max(pt, sizes.pt), max(ray, sizes.ray), max(fps, sizes.fps)
        if mode == "full" and not problems:
            problems, self.full_check_counts = full_check.full_check(
                npz_groups, validate_cache, workers=self.workers,
                write_cache=self.process_index == 0, limits=schema.size_limits(*pads))
        if problems and mode != "off":
            more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
            raise CacheError(f"{len(problems)} cache problem(s):\n" + "\n".join(problems[:20])
                             + more)
        for name, want, have in (("pt_pool_pad", pads[0], pt), ("ray_pool_pad", pads[1], ray)):
            if want and want < have:
                raise ValueError(f"config.data.{name}={want} is smaller than the largest pool "
                                 f"in the corpus ({have}); use 0 for the corpus maximum")
            if not want and have > schema.MAX_POOL_ROWS:  # validate=off skips the scan's report
                raise CacheError(f"the largest declared pool ({have} rows) is over the cap "
                                 f"{schema.MAX_POOL_ROWS} (docs/reliability.md 'Hostile caches'); "
                                 f"set config.data.{name} to accept it")
        pt = pads[0] or pt
        return records.PadSizes(pt=pt, ray=pads[1] or ray, fps=max(1, min(fps, pt)))

    # --- deterministic batches ---------------------------------------------------------------
    def global_indices(self, epoch: int, step: int) -> np.ndarray:
        """(G,) global file indices of the whole batch at (epoch, step)."""
        return self.reader.global_indices(epoch, step)

    def batch_at(self, epoch: int, step: int) -> dict[str, np.ndarray]:
        """This process's shard of the batch at (epoch, step), stacked (B_local, ...)."""
        return self.reader.batch_at(epoch, step, self._pool.map)

    def _advance(self, pos: tuple[int, int]) -> tuple[int, int]:
        epoch, step = pos
        return (epoch, step + 1) if step + 1 < self.steps_per_epoch else (epoch + 1, 0)

    # --- iterator state ----------------------------------------------------------------------
    def get_state(self) -> dict[str, int]:
        """Position of the next batch `next()` returns; JSON-able."""
        return {"epoch": int(self._pos[0]), "step": int(self._pos[1])}

    def set_state(self, state: Mapping[str, int]) -> None:
        try:
            epoch, step = int(state["epoch"]), int(state["step"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"data iterator state must be {{'epoch': int, 'step': int}}, "
                             f"got {state!r}") from e
        if epoch < 0 or not 0 <= step < self.steps_per_epoch:
            raise ValueError(f"data iterator state {state!r} outside the run "
                             f"(steps_per_epoch={self.steps_per_epoch})")
        self._stop_prefetch()
        self._pos = (epoch, step)

    # --- iteration with prefetch -------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        if self.loader == "processes":
            batch = self._next_from_processes()
        elif self.prefetch <= 0:
            batch = self.batch_at(*self._pos)
        else:
            if self._thread is None:
                self._start_prefetch()
            pos, batch = self._queue.get()
            if isinstance(batch, BaseException):
                self._stop_prefetch()
                raise batch
            assert pos == self._pos, (pos, self._pos)
        self._pos = self._advance(self._pos)
        return batch

    def _next_from_processes(self) -> dict[str, np.ndarray]:
        if self._procs is None:
            self._procs = ProcessLoader(self.reader, self.reader.linear(*self._pos),
                                        self.workers, max(1, self.prefetch))
        try:
            return next(self._procs)
        except BaseException:
            self._stop_prefetch()
            raise

    def _start_prefetch(self) -> None:
        self._stop = threading.Event()
        self._queue = queue.Queue(maxsize=self.prefetch)
        self._thread = threading.Thread(target=self._produce, args=(self._pos, self._stop,
                                                                    self._queue),
                                        name="nepa3d-data-prefetch", daemon=True)
        self._thread.start()

    def _produce(self, pos: tuple[int, int], stop: threading.Event, q: queue.Queue) -> None:
        while not stop.is_set():
            try:
                item = (pos, self.batch_at(*pos))
            except BaseException as e:  # handed to the consumer, which re-raises it
                item = (pos, e)
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item[1], BaseException):
                return
            pos = self._advance(pos)

    def _stop_prefetch(self) -> None:
        if self._procs is not None:
            self._procs.close()
            self._procs = None
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self._queue = None

    def close(self) -> None:
        self._stop_prefetch()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "InputPipeline":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        """What the run will read: for logs and provenance."""
        return dict(
            validate=dict(mode=self.validate_mode, **self.full_check_counts),
            components=[dict(name=c.name, cache_root=c.cache_root, split=c.split,
                             backend=c.backend, weight=float(w), files=int(n))
                        for c, w, n in zip(self.mixture.spec.components, self.mixture.weights,
                                           self.mixture.sizes)],
            num_samples=self.mixture.num_samples, seed=self.mixture.spec.seed,
            replacement=self.mixture.spec.replacement, steps_per_epoch=self.steps_per_epoch,
            pads=dataclasses.asdict(self.pads), local_batch=self.local_batch,
            forms=[sources.describe_form(s) for s in self.mixture.sources],
            loader=self.loader, workers=self.workers,
            process_index=self.process_index, process_count=self.process_count,
            **({"shm_blocks": f"/dev/shm/{BLOCK_PREFIX}{os.getpid()}-*"}
               if self.loader == "processes" else {}))
