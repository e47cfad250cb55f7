"""Issue 14.2: one writer per run directory (`run.lock`), real processes and real signals."""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

from nepa3d_jax.checkpoint.lock import LOCK_NAME, RunLock, RunLockedError

REPO = pathlib.Path(__file__).resolve().parents[1]
from helpers import tiny_pretrain_args


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _write_lock(workdir: pathlib.Path, **holder) -> pathlib.Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / LOCK_NAME
    path.write_text(json.dumps(dict(start="2026-01-01T00:00:00+00:00", argv=["x"], **holder)))
    return path


def test_lock_refuses_live_holder_and_takes_over_stale_ones(tmp_path):
    host = socket.gethostname()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write_lock(tmp_path / "live", host=host, pid=sleeper.pid)
        with pytest.raises(RunLockedError, match=rf"host {host}, pid {sleeper.pid}, started "
                                                 r"2026-01-01T00:00:00"):
            RunLock(tmp_path / "live").acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    # same host, pid gone: stale
    _write_lock(tmp_path / "dead", host=host, pid=_dead_pid())
    with RunLock(tmp_path / "dead") as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert not (tmp_path / "dead" / LOCK_NAME).exists()
    # other host: live until not refreshed for lock_stale_hours
    path = _write_lock(tmp_path / "remote", host="other-node-17", pid=1)
    with pytest.raises(RunLockedError, match="host other-node-17, pid 1"):
        RunLock(tmp_path / "remote", stale_hours=1.0).acquire()
    old = time.time() - 2 * 3600
    os.utime(path, (old, old))
    with RunLock(tmp_path / "remote", stale_hours=1.0):
        assert json.loads(path.read_text())["host"] == host
    assert sorted(p.name for p in (tmp_path / "remote").iterdir()) == []  # nothing left behind
    # a workdir that is a file is named before anything is written
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"config.workdir=.*file is a file"):
        RunLock(tmp_path / "file").acquire()


def test_second_trainer_on_one_workdir_refuses_and_stale_lock_does_not_block(
        reference_dir, tmp_path):
    workdir = tmp_path / "run"
    args = tiny_pretrain_args(reference_dir, workdir, num_steps=100000, base_lr=1e-3,
                              log_every_steps=1, checkpoint_every_steps=0)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=8")
    first = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while not (workdir / "metrics" / "loss.jsonl").is_file():  # training is under way
            assert first.poll() is None, first.communicate()[1][-3000:]
            assert time.time() < deadline
            time.sleep(0.5)
        second = subprocess.run([sys.executable, *args], cwd=REPO, env=env, text=True,
                                capture_output=True, timeout=300)
        assert second.returncode == 2, second.stderr[-3000:]
        assert f"is in use by another run: host {socket.gethostname()}, pid {first.pid}, " \
               "started " in second.stderr
        assert "Traceback" not in second.stderr
        assert first.poll() is None  # the holder is untouched and still training
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=300)
        assert first.returncode == 143, err[-3000:]  # saved and stopped for a requeue
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert not (workdir / LOCK_NAME).exists()  # released on the SIGTERM path

    # A SIGKILLed holder leaves its lock behind; on the same host it does not block a resume.
    _write_lock(workdir, host=socket.gethostname(), pid=_dead_pid())
    from nepa3d_jax.config import load_config
    from nepa3d_jax.train.loop import Trainer

    config = load_config(str(REPO / "configs" / "base.py"),
                         [a[len("--config."):] for a in args if a.startswith("--config.")])
    trainer = Trainer(config)
    try:
        assert json.loads((workdir / LOCK_NAME).read_text())["pid"] == os.getpid()
        assert trainer.run_dir.latest_step() is not None  # the checkpoint to resume from
    finally:
        trainer.close()
    assert not (workdir / LOCK_NAME).exists()
