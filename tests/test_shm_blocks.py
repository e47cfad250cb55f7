"""Issue 27 (weak): the loader's /dev/shm blocks. A whole-job SIGKILL left blocks that the next
run did not sweep; a normal exit printed the resource tracker's "leaked shared_memory objects";
a worker killed by SIGBUS (a full /dev/shm) said nothing of /dev/shm; a full /dev/shm was a
traceback. Tests touch only blocks they make (their own name prefix)."""

import errno
import os
import secrets
import subprocess
import sys
import textwrap

import pytest

from nepa3d_jax.data import slots
from nepa3d_jax.data import loader_workers
from nepa3d_jax.data.pipeline import InputPipeline

from helpers import comp, data_cfg, write_cache

pytestmark = pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm (Linux)")


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.fixture()
def prefix():
    pre = f"nepa3d-test-{secrets.token_hex(3)}-"
    yield pre
    for name in os.listdir("/dev/shm"):
        if name.startswith(pre):
            os.unlink(os.path.join("/dev/shm", name))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("shm") / "c"
    for i in range(6):
        write_cache(base / "train" / "a" / f"{i}.npz", seed=i, P=2000, R=1000)
    return base


def _cfg(root, **kw):
    return data_cfg(mix={"a": comp(root, "mesh", 1.0)}, loader="processes", workers=2,
                    mix_num_samples=6, validate="header", **kw)


def test_sweep_removes_only_blocks_of_dead_pids(prefix):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {"dead": f"{prefix}{_dead_pid()}-ab12cd34", "live": f"{prefix}{sleeper.pid}-x",
                 "mine": f"{prefix}{os.getpid()}-y", "other": f"{prefix}notapid-z"}
        for n in names.values():
            with open(os.path.join("/dev/shm", n), "wb") as f:
                f.write(b"x")
        assert slots.sweep_dead_blocks(prefix) == [names["dead"]]
        left = {n for n in os.listdir("/dev/shm") if n.startswith(prefix)}
        assert left == {names["live"], names["mine"], names["other"]}
        os.environ[slots.SWEEP_ENV] = "0"  # the opt-out
        try:
            dead = f"{prefix}{_dead_pid()}-q"
            open(os.path.join("/dev/shm", dead), "wb").close()
            assert slots.sweep_dead_blocks(prefix) == []
        finally:
            del os.environ[slots.SWEEP_ENV]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_loader_start_sweeps_a_killed_jobs_blocks(root, prefix, monkeypatch):
    dead = f"{prefix}{_dead_pid()}-0badc0de-w0s0"
    with open(os.path.join("/dev/shm", dead), "wb") as f:
        f.write(b"\0" * 4096)
    monkeypatch.setattr(loader_workers, "BLOCK_PREFIX", prefix)
    with InputPipeline(_cfg(root), 2, process_index=0, process_count=1) as p:
        next(p)
        assert not os.path.exists(os.path.join("/dev/shm", dead))


_NORMAL_EXIT = """
    import sys
    sys.path.insert(0, {tests!r})
    from test_data_pipeline import comp, data_cfg
    from nepa3d_jax.data.pipeline import InputPipeline

    if __name__ == "__main__":
        cfg = data_cfg(mix={{"a": comp({root!r}, "mesh", 1.0)}}, loader="processes", workers=2,
                       mix_num_samples=6, validate="header")
        with InputPipeline(cfg, 2, process_index=0, process_count=1) as p:
            batch = next(p)  # held at close: read-ahead batches are dropped there
        print("done", flush=True)
"""


def test_normal_exit_leaves_nothing_to_the_resource_tracker(root, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(_NORMAL_EXIT.format(tests=os.path.dirname(__file__),
                                                          root=str(root))))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       timeout=180, cwd=tmp_path)
    assert r.returncode == 0 and "done" in r.stdout, r.stderr
    assert "leaked shared_memory" not in r.stderr, r.stderr


def test_a_worker_killed_by_sigbus_names_dev_shm(root, monkeypatch):
    monkeypatch.setenv(loader_workers.SIGBUS_TEST_ENV, "1")
    with InputPipeline(_cfg(root), 2, process_index=0, process_count=1) as p:
        with pytest.raises(slots.SharedMemoryError) as info:
            for _ in range(3):
                next(p)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("/dev/shm (") and " MiB free) has no room" in msg
    assert "died of SIGBUS; data.workers=2" in msg
    for field in ("config.data.workers", "config.data.prefetch", "config.train.batch_per_device"):
        assert field in msg


def test_a_full_dev_shm_is_one_line_naming_it(root, monkeypatch):
    def full(fd, offset, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)  # the consumer's slots (this process)
    with InputPipeline(_cfg(root), 2, process_index=0, process_count=1) as p:
        with pytest.raises(slots.SharedMemoryError) as info:
            next(p)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("/dev/shm (") and "2 x 5 slots of" in msg
    assert "config.data.workers" in msg and "config.data.prefetch" in msg
    assert not any(n.startswith(f"{loader_workers.BLOCK_PREFIX}{os.getpid()}-")
                   for n in os.listdir("/dev/shm"))
    from nepa3d_jax import main  # the CLI prints it as one line, no traceback
    assert "SharedMemoryError" in open(main.__file__).read()
