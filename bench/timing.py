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
                calls: dict[str, int] | None = None) -> dict[str, float]:
    """Median seconds per call of each `fn()` (which must block until its result is ready).

    Each round calls every fn `calls[name]` times (default once) in turn, so a fast and a slow
    side can share rounds of similar length.
    """
    calls = calls or {}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(max(1, int(calls.get(name, 1)))):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
    return {name: float(np.median(ts)) for name, ts in times.items()}
