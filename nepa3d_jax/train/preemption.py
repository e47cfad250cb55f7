"""SIGTERM -> save and exit: PBS sends SIGTERM at walltime and SIGKILL ~10 s later.

With several processes, every process must save at the same step (saving is collective), so
there we rely on JAX's preemption sync point (`CheckpointManager.reached_preemption`), which
JAX's distributed runtime arms with its own SIGTERM notifier; installing a Python handler would
replace it. A single process without `jax.distributed` gets a Python handler that sets a flag
the loop checks between steps.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


def distributed_preemption_service() -> bool:
    """True when jax.distributed runs with its preemption sync manager (SIGTERM is its job)."""
    try:
        from jax._src import distributed
    except ImportError:  # pragma: no cover - private module moved
        return False
    state = getattr(distributed, "global_state", None)
    return getattr(state, "preemption_sync_manager", None) is not None


class PreemptionGuard:
    """Context manager: `guard.requested` turns True after SIGTERM (single-process mode)."""

    def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM,)):
        self.signals = signals
        self.requested = False
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def handler(self, signum: int, frame: Any = None) -> None:
        """The signal handler (tests call it directly): flag only, the loop does the saving."""
        del frame
        self.requested = True
        self.received = signum

    def __enter__(self) -> "PreemptionGuard":
        if threading.current_thread() is threading.main_thread() and \
                not distributed_preemption_service():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self.handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
