"""Issue 27 (weak): two `to_tfds` builds into one --out_dir. The second used to delete the
first's files in flight (the first died with a raw FileNotFoundError); now the output folder
has a lock (the run lock's mechanism) and the second build is refused, naming the first."""

import os
import pathlib
import select
import signal
import socket
import subprocess
import sys
import time

from data_prep import tfds_shards, to_tfds
from nepa3d_jax.data import tfds_source

from helpers import write_cache

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_second_build_into_one_out_dir_is_refused_then_takes_over_a_dead_one(tmp_path, capsys):
    cache, out = tmp_path / "cache", tmp_path / "out"
    for i in range(4):
        write_cache(cache / "train" / ("a" if i < 2 else "b") / f"{i}.npz", seed=i)
    env = dict(os.environ, **{tfds_shards.PAUSE_ENV: "1"})
    args = ["--cache_root", str(cache), "--out_dir", str(out), "--splits", "train",
            "--shards", "2", "--workers", "1"]
    first = subprocess.Popen([sys.executable, "-m", "data_prep.to_tfds", *args], cwd=REPO,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True)
    try:
        deadline, seen = time.monotonic() + 120, []
        while "paused" not in seen:
            ready, _, _ = select.select([first.stdout], [], [],
                                        max(0.0, deadline - time.monotonic()))
            line = first.stdout.readline() if ready else ""
            assert line, f"first build ended or stalled before pausing: {seen}"
            seen.append(line.strip())
        staged = sorted(p.name for p in out.rglob("*") if p.is_file())
        assert to_tfds.main(args) == 2
        err = capsys.readouterr().err
        assert f"is in use by another run: host {socket.gethostname()}, pid {first.pid}" in err
        assert "--lock_stale_hours" not in err and "Traceback" not in err
        assert sorted(p.name for p in out.rglob("*") if p.is_file()) == staged  # untouched
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
        first.stdout.close()
    # the holder is dead (same host, pid gone): the next build takes the lock over and finishes
    assert to_tfds.main(args) == 0
    assert tfds_source.find_build(out) is not None
    assert not (out / to_tfds.LOCK_FILE).exists()
