"""Transparent huge pages for the host allocator, set before the process starts working.

On CPU every step allocates fresh activation buffers of tens to hundreds of MB; with 4 KiB
pages each first touch is a page fault, measured at ~1 GB/s on a 2-core Zen 3 VM, where
this cost 13% of a Run-A fwd+bwd (on a Zen 5 VM the gain was within noise). glibc (>= 2.35) can back its large
allocations with transparent huge pages when `GLIBC_TUNABLES` holds `glibc.malloc.hugetlb=1`,
but glibc reads that variable only at start-up, so `python -m nepa3d_jax.main` re-executes
itself once with it set (same pid, same arguments; PBS tasks are unaffected). Numbers are
unchanged: only the page size of the memory differs.

Opt out with `NEPA3D_HUGEPAGES=0`. Nothing happens where the kernel offers no THP
(`/sys/kernel/mm/transparent_hugepage/enabled` is `never` or missing), off Linux, or when
`GLIBC_TUNABLES` already names the tunable.
"""

from __future__ import annotations

import os
import sys

TUNABLE = "glibc.malloc.hugetlb"
OPT_OUT = "NEPA3D_HUGEPAGES"
THP_MODE_FILE = "/sys/kernel/mm/transparent_hugepage/enabled"


def thp_available(mode_file: str = THP_MODE_FILE) -> bool:
    """True when the kernel's THP mode is `always` or `madvise` (glibc madvises)."""
    try:
        with open(mode_file) as f:
            mode = f.read()
    except OSError:
        return False
    return "[always]" in mode or "[madvise]" in mode


def tuned_environment(env: dict[str, str], mode_file: str = THP_MODE_FILE) -> dict[str, str] | None:
    """The environment to re-execute with, or None when nothing should change."""
    if env.get(OPT_OUT, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    current = env.get("GLIBC_TUNABLES", "")
    if TUNABLE in current or not sys.platform.startswith("linux") or not thp_available(mode_file):
        return None
    out = dict(env)
    out["GLIBC_TUNABLES"] = f"{current}:{TUNABLE}=1" if current else f"{TUNABLE}=1"
    return out


def reexec_with_hugepages() -> None:
    """Replace this process by itself with THP-backed malloc (returns only when not needed)."""
    env = tuned_environment(dict(os.environ))
    argv = getattr(sys, "orig_argv", None)
    if env is None or not argv:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv[1:]], env)
