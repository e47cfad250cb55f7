"""Issue 27 (weak): `train.lock_stale_hours=-1` (or below the 60 s heartbeat) took over a
freshly written lock of a live run on another host. It is now refused at start-up, naming the
field, before any lock is touched or anything compiled."""

import json

import ml_collections
import pytest

from nepa3d_jax.checkpoint.lock import LOCK_NAME, MIN_STALE_S, RunLock, RunLockedError
from nepa3d_jax.config.validation import ConfigError, validate


@pytest.mark.parametrize("hours", [-1.0, 0.0, 60 / 3600, float("nan")])
def test_stale_hours_below_the_heartbeats_are_refused(tmp_path, hours):
    config = ml_collections.ConfigDict({"train": {"lock_stale_hours": hours}})
    with pytest.raises(ConfigError, match=r"train.lock_stale_hours=\S+ must be at least "
                                          r"0.08333 h \(300 s, 5 lock heartbeats of 60 s\)"):
        validate(config)
    lock = tmp_path / "run" / LOCK_NAME  # a fresh lock of a live run on another host
    lock.parent.mkdir()
    lock.write_text(json.dumps({"host": "elsewhere", "pid": 1, "start": "now", "argv": []}))
    with pytest.raises(ValueError, match="train.lock_stale_hours"):
        RunLock(lock.parent, stale_hours=hours).acquire()
    assert json.loads(lock.read_text())["host"] == "elsewhere"  # untouched


def test_the_smallest_allowed_value_still_refuses_a_fresh_lock(tmp_path):
    validate(ml_collections.ConfigDict({"train": {"lock_stale_hours": MIN_STALE_S / 3600}}))
    lock = tmp_path / LOCK_NAME
    lock.write_text(json.dumps({"host": "elsewhere", "pid": 1, "start": "now", "argv": []}))
    with pytest.raises(RunLockedError, match="host elsewhere, pid 1"):
        RunLock(tmp_path, stale_hours=MIN_STALE_S / 3600).acquire()
