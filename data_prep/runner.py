"""Run per-shape jobs over processes: skip finished outputs, write atomically, report.

Every job computes a dict of arrays for one output `.npz`. A bad input raises (`BadShape`
for the known kinds) and is reported as one line; the run goes on. The summary says how
many were written, already there, and skipped; `exit_code` is non-zero only when nothing
usable came out of inputs that existed.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import functools
import hashlib
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
from tqdm import tqdm

from data_prep.atomic import atomic_savez
from nepa3d_jax.process_pool import process_pool


class BadShape(ValueError):
    """An input shape that cannot become a cache; the message is the one-line reason."""


def stable_int(text: str) -> int:
    return int(hashlib.md5(text.encode("utf-8")).hexdigest()[:16], 16)


def shape_rng(seed: int, shape_id: str) -> np.random.Generator:
    """Per-shape generator from the global seed and a stable id (independent of order/workers)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, stable_int(shape_id)])


@dataclasses.dataclass(frozen=True)
class Job:
    key: str                     # stable id, shown in messages
    out_path: str
    fn: Callable[..., dict]      # module-level (picklable): fn(*args) -> arrays
    args: tuple = ()


@dataclasses.dataclass
class Summary:
    total: int = 0
    written: int = 0
    existing: int = 0
    failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def line(self, what: str = "shapes") -> str:
        rate = self.written / self.seconds if self.seconds > 0 else float("nan")
        return (f"done: {self.total} {what}: written={self.written} existing={self.existing} "
                f"skipped={len(self.failed)} in {self.seconds:.1f}s ({rate:.2f} {what}/s)")

    def exit_code(self) -> int:
        if self.total == 0:
            return 1
        return 1 if (self.written == 0 and self.existing == 0) else 0

    def merge(self, other: "Summary") -> None:
        self.total += other.total
        self.written += other.written
        self.existing += other.existing
        self.failed += other.failed
        self.seconds += other.seconds


def _run_one(job: Job, compress: str = "zlib") -> tuple[str, str | None]:
    try:
        arrays = job.fn(*job.args)
        atomic_savez(job.out_path, arrays, compressed=(compress != "none"))
        return job.key, None
    except BadShape as e:
        return job.key, str(e)
    except Exception as e:  # any failure of one shape is reported, not fatal to the run
        return job.key, f"{type(e).__name__}: {e}"


def process_context():
    """Multiprocessing context for worker pools of every data_prep tool."""
    # Forking a process that already runs JAX's threads can deadlock: spawn then.
    return mp.get_context("spawn" if "jax" in sys.modules else "fork")


def run_jobs(jobs: Sequence[Job], workers: int = 1, overwrite: bool = False,
             desc: str = "shapes", log=print, compress: str = "zlib") -> Summary:
    t0 = time.perf_counter()
    summary = Summary(total=len(jobs))
    todo = []
    for job in jobs:
        if not overwrite and os.path.exists(job.out_path):
            summary.existing += 1
        else:
            todo.append(job)
    if summary.existing:
        log(f"{desc}: {summary.existing} outputs already exist, kept (use --overwrite to redo)")
    bar = tqdm(total=len(todo), desc=desc, unit="shape", mininterval=1.0, file=sys.stderr)

    def record(key: str, err: str | None) -> None:
        bar.update(1)
        if err is None:
            summary.written += 1
        else:
            summary.failed.append((key, err))
            tqdm.write(f"skipped {key}: {err}", file=sys.stdout)

    workers = max(1, min(int(workers), len(todo)))
    one = functools.partial(_run_one, compress=compress)
    if workers <= 1:
        for job in todo:
            record(*one(job))
    else:
        with process_pool(workers, process_context()) as ex:
            futures = {ex.submit(one, j): j for j in todo}
            for fut in cf.as_completed(futures):
                try:
                    record(*fut.result())
                except Exception as e:  # a worker died (e.g. killed for memory)
                    record(futures[fut].key, f"worker process failed ({type(e).__name__}: {e})")
    bar.close()
    summary.seconds = time.perf_counter() - t0
    return summary
