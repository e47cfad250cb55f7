"""The start-up re-exec that backs glibc's large allocations with transparent huge pages."""

import os
import subprocess
import sys

from nepa3d_jax import hostmem


def _mode_file(tmp_path, text):
    f = tmp_path / "enabled"
    f.write_text(text)
    return str(f)


def test_tuned_environment_rules(tmp_path):
    madvise = _mode_file(tmp_path, "always [madvise] never\n")
    env = hostmem.tuned_environment({"PATH": "/bin"}, madvise)
    assert env == {"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    # Other tunables are kept; the variable is appended to, not replaced.
    env = hostmem.tuned_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, madvise)
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    # Already set (e.g. by the re-executed process itself): nothing to do, so no loop.
    assert hostmem.tuned_environment({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, madvise) is None
    assert hostmem.tuned_environment({"NEPA3D_HUGEPAGES": "0"}, madvise) is None
    assert hostmem.tuned_environment({}, _mode_file(tmp_path, "always madvise [never]\n")) is None
    assert hostmem.tuned_environment({}, str(tmp_path / "missing")) is None
    assert hostmem.tuned_environment({}, _mode_file(tmp_path, "[always] madvise never")) is not None


def test_reexec_runs_the_same_command_once_with_the_tunable():
    code = ("import os, sys; from nepa3d_jax import hostmem; print('start', flush=True); "
            "hostmem.reexec_with_hugepages(); print(os.environ.get('GLIBC_TUNABLES'), sys.argv)")
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "NEPA3D_HUGEPAGES")}
    out = subprocess.run([sys.executable, "-c", code, "arg1"], capture_output=True, text=True,
                         env=env, check=True).stdout.splitlines()
    if hostmem.thp_available() and sys.platform.startswith("linux"):
        assert out == ["start", "start", "glibc.malloc.hugetlb=1 ['-c', 'arg1']"]
    else:
        assert out == ["start", "None ['-c', 'arg1']"]
    env["NEPA3D_HUGEPAGES"] = "0"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout.splitlines()
    assert out == ["start", "None ['-c']"]
