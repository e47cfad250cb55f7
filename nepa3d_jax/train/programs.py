"""Compiled programs of pretraining runs, in a cache its caller owns (no process-wide state).

`jax.jit` caches per function object, and the loop builds its init and step functions per run,
so a second run in one process (a resume, the tests) would compile the same programs again.
Handing the same `Programs` to both runs reuses them. Keys hold the values that fix a program:
the model itself (a frozen Flax dataclass, compared field by field), the optimizer settings,
the mesh, the seed and the step's static spec.
"""

from __future__ import annotations

from typing import Any, Callable, Hashable


class Programs:
    """{key: compiled function}; `get` builds a program on first use."""

    def __init__(self) -> None:
        self._compiled: dict[Hashable, Any] = {}

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        if key not in self._compiled:
            self._compiled[key] = build()
        return self._compiled[key]

    def __len__(self) -> int:
        return len(self._compiled)
