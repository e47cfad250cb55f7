"""One writer per run directory: `<workdir>/run.lock`, taken by process 0 of a run.

The lock is a small JSON file (host, pid, start time, command line) created with
`O_CREAT | O_EXCL`, which is atomic on local disks, NFS v3+ and Lustre alike; no `flock`,
whose semantics on shared filesystems vary. The holder refreshes the file's mtime (a
heartbeat, at most once a minute from the training loop), so age means "time since the holder
was last seen", not run length.

A lock is stale, and is taken over with a warning, when its holder is on this host and its pid
is gone, or when it is on another host and has not been refreshed for `stale_hours`
(`config.train.lock_stale_hours`; a SIGKILLed job requeued on another node waits that long, or
the user deletes the file after checking the holder is dead). Anything else is refused with the
holder's host, pid and start time.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import pathlib
import socket
import sys
import time
from typing import Any

LOCK_NAME = "run.lock"
from nepa3d_jax.config.lock_rules import HEARTBEAT_S, MIN_STALE_S, check_stale_hours  # noqa: F401
from nepa3d_jax.process_pool import pid_alive

log = logging.getLogger("nepa3d_jax.lock")


class RunLockedError(RuntimeError):
    """Another live process holds the run directory; the message names it."""


def _read(path: pathlib.Path) -> dict[str, Any] | None:
    try:
        holder = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # being written right now, or garbage
    return holder if isinstance(holder, dict) else {}


class RunLock:
    """`acquire()` / `release()` (or a `with` block) on `<workdir>/run.lock`."""

    def __init__(self, workdir: str | os.PathLike, stale_hours: float = 1.0,
                 name: str = LOCK_NAME, field: str = "train.lock_stale_hours",
                 guards: str = "its checkpoints and logs"):
        """`name`, `field` and `guards` let other writers (`data_prep.to_tfds` output folders)
        use the same mechanism: the lock file, the option named in messages, what two writers
        would corrupt."""
        why = check_stale_hours(float(stale_hours), field)
        if why:
            raise ValueError(why)
        self.workdir = pathlib.Path(workdir)
        self.path = self.workdir / name
        self.field, self.guards = field, guards
        self.stale_s = float(stale_hours) * 3600.0
        self.held = False
        self._beat = 0.0
        self.me = {"host": socket.gethostname(), "pid": os.getpid(),
                   "start": datetime.datetime.now(datetime.timezone.utc).isoformat(
                       timespec="seconds"), "argv": list(sys.argv)}

    def stale_reason(self, holder: dict[str, Any]) -> str | None:
        """Why `holder`'s lock may be taken over (None: it is live)."""
        age = time.time() - self._mtime()
        if not holder:
            return f"unreadable lock file, last touched {age:.0f} s ago" if age > 60 else None
        if holder.get("host") == self.me["host"]:
            pid = int(holder.get("pid", -1))
            if pid == os.getpid() or not pid_alive(pid):
                return f"pid {pid} no longer runs on {self.me['host']}"
            return None
        if age > self.stale_s:
            return (f"not refreshed for {age / 3600:.2f} h > {self.field}="
                    f"{self.stale_s / 3600:g} (holder on another host)")
        return None

    def _mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except FileNotFoundError:
            return time.time()

    def _describe(self, holder: dict[str, Any]) -> str:
        if not holder:
            return "an unreadable lock file"
        return (f"host {holder.get('host')}, pid {holder.get('pid')}, started "
                f"{holder.get('start')} ({' '.join(holder.get('argv') or [])})")

    def acquire(self) -> "RunLock":
        if self.workdir.exists() and not self.workdir.is_dir():
            raise ValueError(f"config.workdir={self.workdir} is a file, not a directory")
        self.workdir.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _read(self.path)
                if holder is None:
                    continue  # released in between: try again
                reason = self.stale_reason(holder)
                if reason is None:
                    raise RunLockedError(
                        f"{self.workdir} is in use by another run: {self._describe(holder)}. "
                        f"Two writers would corrupt {self.guards}; wait for it, use another "
                        f"folder, or delete {self.path} if that process is dead.")
                self._take_over(holder, reason)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(self.me))
                f.flush()
                os.fsync(f.fileno())
            self.held = True
            self._beat = time.monotonic()
            return self
        raise RunLockedError(f"{self.path}: could not take the lock (it keeps changing hands)")

    def _take_over(self, holder: dict[str, Any], reason: str) -> None:
        """Move the stale file aside (atomic rename: of two racing takers only one gets it)."""
        aside = self.path.with_name(f"{self.path.name}.stale.{self.me['host']}.{os.getpid()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        if _read(aside) != holder:  # we grabbed a fresh lock someone just created: put it back
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
            os.remove(aside)
            return
        log.warning("taking over the stale lock of %s: %s", self._describe(holder), reason)
        os.remove(aside)

    def heartbeat(self) -> None:
        """Refresh the lock's mtime (rate-limited; cheap enough to call every logged step)."""
        now = time.monotonic()
        if self.held and now - self._beat >= HEARTBEAT_S:
            self._beat = now
            try:
                os.utime(self.path)
            except FileNotFoundError:
                log.warning("%s disappeared while this run held it", self.path)

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        holder = _read(self.path)
        if holder and holder.get("pid") == os.getpid() and holder.get("host") == self.me["host"]:
            os.remove(self.path)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
