"""Run a bench with both sides' CPU kernels capped at an older vector ISA.

    python bench/isa_cap.py avx2 bench/train_step.py --preset study --reference_src ref_src

The issue-29 figures come from 2-core AVX2 machines that a session may not have. This runs any
bench on the machine at hand with the instruction sets each side's CPU kernels may pick capped
at the named one: XLA's code generation (`--xla_cpu_max_isa`), torch's ATen kernels
(`ATEN_CPU_CAPABILITY`), MKL (`MKL_ENABLE_INSTRUCTIONS`) and oneDNN (`ONEDNN_MAX_CPU_ISA`).
It is a proxy, not the machine: caches, core width and clocks stay this CPU's, so a ratio
measured capped says whether the wider vectors explain a gap, never what an AVX2 machine
measures. The bench's header line names the cap (`bench.machine.header`).
"""

from __future__ import annotations

import os
import sys

CAP_ENV = "NEPA3D_BENCH_MAX_ISA"
# Per cap: (XLA's name, ATen's, MKL's, oneDNN's).
CAPS = {"avx2": ("AVX2", "avx2", "AVX2", "AVX2"),
        "avx512": ("AVX512", "avx512", "AVX512", "AVX512_CORE")}


def capped_env(cap: str, env: dict[str, str]) -> dict[str, str]:
    """`env` with the variables that cap every side's kernels at `cap` (ValueError otherwise)."""
    if cap not in CAPS:
        raise ValueError(f"ISA cap {cap!r}: one of {', '.join(CAPS)}")
    xla, aten, mkl, onednn = CAPS[cap]
    out = dict(env)
    flags = [f for f in out.get("XLA_FLAGS", "").split() if not f.startswith("--xla_cpu_max_isa")]
    out["XLA_FLAGS"] = " ".join(flags + [f"--xla_cpu_max_isa={xla}"])
    out.update(ATEN_CPU_CAPABILITY=aten, MKL_ENABLE_INSTRUCTIONS=mkl, ONEDNN_MAX_CPU_ISA=onednn)
    out[CAP_ENV] = cap
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    try:
        env = capped_env(argv[0].lower(), dict(os.environ))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    os.execve(sys.executable, [sys.executable] + argv[1:], env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
