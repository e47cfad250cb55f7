"""Issue 27 (weak): the launcher and its node file. A node file of blank lines ran nothing and
reported status 0; PROCS_PER_NODE=2 with one line per host aborted after the distributed init
timeout with "another task died". Both are refused before anything starts, naming the cause."""

import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch"


def _launch(tmp_path, lines, procs=None, **extra):
    tmp_path.mkdir(exist_ok=True)
    node_file = tmp_path / "nodefile"
    node_file.write_text("".join(f"{ln}\n" for ln in lines))
    (tmp_path / "home").mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"),
           "PBS_NODEFILE": str(node_file), "PBS_JOBID": "1.fakepbs", "PBS_O_WORKDIR": str(REPO),
           "CONFIG": "configs/runA.py", "MODULE": "nepa3d_jax.parallel.selftest",
           "LOG_ROOT": str(tmp_path / "logs"), "PBSDSH": str(LAUNCH / "fake_pbsdsh"),
           **({"PROCS_PER_NODE": procs} if procs is not None else {}), **extra}
    proc = subprocess.run(["bash", str(LAUNCH / "pretrain_multinode.sh")], env=env,
                          cwd=tmp_path / "home", capture_output=True, text=True, timeout=60)
    return proc, tmp_path / "logs" / "1.fakepbs_runA"


def test_blank_node_file_is_refused(tmp_path):
    proc, log_dir = _launch(tmp_path, ["", "   ", ""])
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "lists no hosts (blank lines only)" in proc.stderr
    assert not (log_dir / "task.env").exists()  # nothing was started


@pytest.mark.parametrize("procs,lines,why", [
    ("2", ["localhost", "127.0.0.1"], "PROCS_PER_NODE=2 but in node file"),
    ("0", ["localhost"], "PROCS_PER_NODE=0 is not a positive integer"),
    ("x", ["localhost"], "PROCS_PER_NODE=x is not a positive integer"),
])
def test_procs_per_node_is_checked_against_the_node_file(tmp_path, procs, lines, why):
    proc, log_dir = _launch(tmp_path, lines, procs)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert why in proc.stderr
    if procs == "2":
        assert "is listed 1 time(s)" in proc.stderr and "mpiprocs=2" in proc.stderr
    assert not (log_dir / "task.env").exists()


def test_surplus_lines_per_host_are_still_accepted(tmp_path):
    """Hosts listed at least PROCS_PER_NODE times (surplus lines idle) pass the check and stop
    at the next step (here a python that fails the config check), not at the node file."""
    for procs in ("1", "2"):
        proc, _ = _launch(tmp_path / procs, ["localhost", "localhost", "127.0.0.1", "127.0.0.1"],
                          procs, PYTHON="false")
        assert proc.returncode == 1 and "config configs/runA.py is invalid" in proc.stderr, \
            proc.stderr
