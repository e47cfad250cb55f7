"""The real multi-controller runtime: two local processes (gloo, 4 CPU devices each) started by
launch/pretrain_multinode.sh through the pbsdsh stand-in, plus the launcher's failure paths."""

import json
import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

from nepa3d_jax.parallel import make_mesh
from nepa3d_jax.parallel.selftest import run_psum

REPO = pathlib.Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch"
# Two "hosts" on one machine: different names, same loopback; each listed twice (4 slots) so
# the task entry's one-process-per-host rule is exercised too.
NODE_LINES = ["localhost", "localhost", "127.0.0.1", "127.0.0.1"]


def launch(tmp_path, config="configs/runA.py", overrides="", module="nepa3d_jax.parallel.selftest",
           node_lines=NODE_LINES, timeout=240):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    node_file = tmp_path / "nodefile"
    node_file.write_text("".join(f"{ln}\n" for ln in node_lines))
    job_id = f"{10000 + os.getpid() % 9000}.fakepbs"  # distinct coordinator port per test worker
    env = {
        "PATH": os.environ["PATH"], "HOME": str(home), "PBS_NODEFILE": str(node_file),
        "PBS_JOBID": job_id, "PBS_O_WORKDIR": str(REPO), "CONFIG": config, "OVERRIDES": overrides,
        "MODULE": module, "LOG_ROOT": str(tmp_path / "logs"),
        "PBSDSH": str(LAUNCH / "fake_pbsdsh"),
        # The job's original environment (what a site profile would set), passed to tasks:
        "FAKE_PBSDSH_KEEP": "XLA_FLAGS JAX_PLATFORMS NEPA3D_INIT_TIMEOUT",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu",
        "NEPA3D_INIT_TIMEOUT": "60",
    }
    proc = subprocess.run(["bash", str(LAUNCH / "pretrain_multinode.sh")], env=env, cwd=home,
                          capture_output=True, text=True, timeout=timeout)
    log_dir = tmp_path / "logs" / f"{job_id}_{pathlib.Path(config).stem}"
    return proc, log_dir


def _selftest_lines(log_dir):
    out = []
    for log in sorted(log_dir.glob("*.log")):
        out += [json.loads(ln.split(" ", 1)[1]) for ln in log.read_text().splitlines()
                if ln.startswith("SELFTEST ")]
    return out


def test_two_processes_join_and_psum_matches_single_process(tmp_path):
    proc, log_dir = launch(tmp_path, overrides="parallel.fsdp=2")
    logs = {p.name: p.read_text() for p in log_dir.glob("*.log")} if log_dir.exists() else {}
    assert proc.returncode == 0, (proc.stdout, proc.stderr, logs)
    # One python per unique host, logs named by host and slot.
    assert sorted(logs) == ["127.0.0.1.0.log", "localhost.0.log"]
    results = sorted(_selftest_lines(log_dir), key=lambda r: r["process_id"])
    assert [r["process_id"] for r in results] == [0, 1]
    single = run_psum(make_mesh())  # this test process: one process, 8 devices
    for r in results:
        assert (r["num_processes"], r["global_devices"], r["local_devices"]) == (2, 8, 4)
        assert r["source"] == "pbs" and r["mesh"] == {"data": 4, "fsdp": 2}
        assert r["ok"] and np.array_equal(np.asarray(r["psum"], np.float32), single)
    task_env = (log_dir / "task.env").read_text()
    assert "NUM_PROCESSES=2" in task_env and f"COORDINATOR={results[0]['coordinator']}" in task_env
    assert "CONFIG_ARGS=(--config.parallel.fsdp=2 )" in task_env


def test_failing_task_fails_the_job_and_names_its_log(tmp_path):
    proc, log_dir = launch(tmp_path, module="nepa3d_jax.no_such_module",
                           node_lines=["localhost", "127.0.0.1"])
    assert proc.returncode == 1
    assert "exited with 1" in proc.stderr and "localhost.0.log" in proc.stderr
    assert "No module named nepa3d_jax.no_such_module" in (log_dir / "localhost.0.log").read_text()


def test_invalid_config_stops_before_fan_out(tmp_path):
    proc, log_dir = launch(tmp_path, overrides="data.max_len=10")
    assert proc.returncode == 1
    assert "data.max_len=10" in proc.stderr and "is invalid" in proc.stderr
    assert not list(log_dir.glob("*.log"))


def test_empty_node_file_is_an_error(tmp_path):
    proc, _ = launch(tmp_path, node_lines=[])
    assert proc.returncode == 1 and "missing or empty" in proc.stderr


def test_submit_abcd_dry_run():
    proc = subprocess.run(
        ["bash", str(LAUNCH / "submit_abcd.sh"), "--dry-run", "--nodes", "8", "--walltime",
         "24:00:00", "--depend", "afterok:93506.pbs1", "--override", "train.epochs=50"],
        capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 4
    for run, line in zip("ABCD", lines):
        assert line.startswith(f"qsub -N nepa3d_run{run} -l rt_QF=8 -l walltime=24:00:00 "
                               "-W depend=afterok:93506.pbs1 -v CONFIG=configs/run")
        assert f"configs/run{run}.py" in line and "train.epochs=50" in line
        assert line.rstrip().endswith("launch/pretrain_multinode.sh")


def test_submit_abcd_rejects_bad_override():
    proc = subprocess.run(["bash", str(LAUNCH / "submit_abcd.sh"), "--dry-run", "--override",
                           "data.max_len=10"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 1 and "data.max_len=10" in proc.stderr


SCRIPTS = ["pretrain_multinode.sh", "submit_abcd.sh", "task_entry.sh", "fake_pbsdsh"]


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_launch_scripts_pass_shellcheck():
    scripts = [str(LAUNCH / s) for s in SCRIPTS] + [
        str(p) for p in LAUNCH.glob("*.sh") if p.name not in SCRIPTS]
    proc = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
