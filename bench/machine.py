"""What a bench ran on: the one header every bench in bench/ prints first.

A ratio measured on one CPU kind does not carry over to another: on a 2-core AVX2 EPYC the
original's train step beat ours where a Zen 5 AVX-512 one showed us 1.2-1.4x ahead (issue 29).
So every figure is printed under the CPU model, its core count, its vector extensions and the
load average it was measured at (docs/performance.md keeps one table per CPU kind).
"""

from __future__ import annotations

import os
import platform
import time

# /proc/cpuinfo flags worth naming, in the order printed: the widths XLA's and torch's CPU
# kernels pick between, and the matrix units.
VECTOR_FLAGS = (("avx2", "AVX2"), ("fma", "FMA"), ("avx512f", "AVX-512"),
                ("avx512_vnni", "AVX-512-VNNI"), ("avx512_bf16", "AVX-512-BF16"),
                ("amx_tile", "AMX"), ("amx_bf16", "AMX-BF16"))


def read_cpuinfo(text: str | None = None) -> dict[str, str]:
    """The first processor's `model name`, `flags`, `cpu family` and `model` number (empty
    strings where unknown): family and model tell CPU generations apart (AMD family 23 is
    Zen 1/2, 25 is Zen 3/4, 26 is Zen 5) when the model name is generic, as on VMs."""
    if text is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            text = ""
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if sep and key in ("model name", "flags", "cpu family", "model") and key not in info:
            info[key] = value.strip()
    return dict(model=info.get("model name", "") or platform.processor() or platform.machine(),
                flags=info.get("flags", ""),
                family=info.get("cpu family", ""), model_number=info.get("model", ""))


def vector_extensions(flags: str) -> list[str]:
    """Names of the VECTOR_FLAGS present in a /proc/cpuinfo `flags` line."""
    have = set(flags.split())
    return [name for flag, name in VECTOR_FLAGS if flag in have]


def cpu_kind(info: dict[str, str] | None = None) -> str:
    """`AMX`, `AVX-512`, `AVX2` or `other`: the row of docs/performance.md a figure belongs to."""
    ext = vector_extensions((info or read_cpuinfo())["flags"])
    for kind in ("AMX", "AVX-512", "AVX2"):
        if kind in ext:
            return kind
    return "other"


def header(bench: str) -> str:
    """One line: bench, UTC time, CPU model, cores, vector extensions, load average."""
    info = read_cpuinfo()
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    try:
        load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    ext = vector_extensions(info["flags"])
    family = (f", family {info['family']} model {info['model_number']}" if info["family"]
              else "")
    cap = os.environ.get("NEPA3D_BENCH_MAX_ISA", "")  # set by bench/isa_cap.py
    capped = f" | kernels capped at {cap.upper()} (bench/isa_cap.py)" if cap else ""
    return (f"# {bench} {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} | CPU: "
            f"{info['model']}{family} | cores: {usable} usable of {os.cpu_count()} | vector: "
            f"{' '.join(ext) or 'none found'} (kind {cpu_kind(info)}){capped} | load 1/5/15 "
            f"min: {load}")
