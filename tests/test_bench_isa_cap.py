"""`bench/isa_cap.py`: a bench run with both sides' CPU kernels capped at AVX2 really runs
capped (XLA accepts the flag, torch reports the capability) and says so in its header."""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from bench import isa_cap  # noqa: E402


def test_capped_env_sets_every_side_and_replaces_an_earlier_cap():
    env = isa_cap.capped_env("avx2", {"XLA_FLAGS": "--xla_cpu_max_isa=AVX512 --foo=1"})
    assert env["XLA_FLAGS"] == "--foo=1 --xla_cpu_max_isa=AVX2"
    assert (env["ATEN_CPU_CAPABILITY"], env["MKL_ENABLE_INSTRUCTIONS"],
            env["ONEDNN_MAX_CPU_ISA"], env[isa_cap.CAP_ENV]) == ("avx2", "AVX2", "AVX2", "avx2")
    with pytest.raises(ValueError, match="'sse9'"):
        isa_cap.capped_env("sse9", {})


def test_a_capped_process_runs_xla_and_torch_at_avx2_and_its_header_says_so():
    code = ("import jax.numpy as jnp, torch; from bench.machine import header; "
            "print(float(jnp.ones(4).sum()), torch.backends.cpu.get_cpu_capability()); "
            "print(header('probe'))")
    proc = subprocess.run([sys.executable, os.path.join(REPO, "bench", "isa_cap.py"), "avx2",
                           "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    first, second = proc.stdout.strip().splitlines()[-2:]
    assert first.split()[0] == "4.0" and first.split()[1] == "AVX2"
    assert "kernels capped at AVX2 (bench/isa_cap.py)" in second
    bad = subprocess.run([sys.executable, os.path.join(REPO, "bench", "isa_cap.py"), "sse9",
                          "-c", "pass"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "error: ISA cap 'sse9'" in bad.stderr
