"""Timing both sides in one run: interleaved rounds, medians.

The benches run on shared machines whose load changes within a run (another job starts, a VM
neighbour wakes up). Timing all of one side and then all of the other puts such a change on
whichever side ran second; rounds that call every side in turn put it on both alike.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np


def interleaved(fns: dict[str, Callable[[], object]], rounds: int,
                calls: dict[str, int] | None = None, settle_s: float = 0.05) -> dict[str, float]:
    """Median seconds per call of each `fn()` (which must block until its result is ready).

    Each round calls every fn `calls[name]` times (default once) in turn, so a fast and a slow
    side can share rounds of similar length. The order rotates from round to round and each
    side starts after a `settle_s` pause: a side's worker threads keep spinning for a while
    after its call returns (torch's OpenMP threads, XLA's pool) and would otherwise always slow
    down the side that follows it. Measured (`train_step.py --preset quick`, 2 busy cores):
    without the pause, our 18 ms step took 33 ms when it came right after torch's step and
    torch's took 341 ms; with it, 19 ms and 55 ms.
    """
    calls = calls or {}
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            time.sleep(settle_s)
            for _ in range(max(1, int(calls.get(name, 1)))):
                t = time.perf_counter()
                fns[name]()
                times[name].append(time.perf_counter() - t)
    return {name: float(np.median(ts)) for name, ts in times.items()}
