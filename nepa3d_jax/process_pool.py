"""Worker process pools that die with their parent.

A `ProcessPoolExecutor` worker whose parent is SIGKILLed (OOM killer, PBS `qdel`) can live on
for hours, holding memory and file handles on a shared node. Each worker here asks the kernel
(Linux `prctl(PR_SET_PDEATHSIG, SIGKILL)`) to be killed when its parent goes; elsewhere it
only exits at start if the parent is already gone. Workers start with `spawn` once JAX is
imported (forking a process that runs JAX's threads can deadlock), `fork` otherwise.

The death signal is tied to the thread that started the worker: create and use the pool from
one long-lived thread (the main thread in every caller here).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def default_context() -> mp.context.BaseContext:
    return mp.get_context("spawn" if "jax" in sys.modules else "fork")


def die_with_parent(parent_pid: int) -> None:
    """Worker initializer: SIGKILL this process when the parent dies."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)


def exit_with_parent(parent_pid: int, interval_s: float = 0.25) -> None:
    """Worker initializer for processes started by another library's thread (grain starts its
    loader workers from a prefetch thread that ends when the loader closes, and
    `PR_SET_PDEATHSIG` fires when the starting *thread* ends: it would SIGKILL the workers in
    the middle of grain's orderly stop). A daemon thread exits this process within
    `interval_s` of the parent's death instead."""
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval_s)
        os._exit(1)

    threading.Thread(target=watch, name="nepa3d-exit-with-parent", daemon=True).start()


def process_pool(max_workers: int, mp_context: mp.context.BaseContext | None = None
                 ) -> cf.ProcessPoolExecutor:
    """A `ProcessPoolExecutor` whose workers are killed with their parent."""
    return cf.ProcessPoolExecutor(max_workers=max_workers,
                                  mp_context=mp_context or default_context(),
                                  initializer=die_with_parent, initargs=(os.getpid(),))


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host (signal 0; someone else's counts as alive).
    One owner for the liveness checks of the run lock and the /dev/shm sweep."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
