"""Issue 27 (weak): bit flips inside a checkpoint's data restored silently, and the run then
named the corrupt step as "the last finite checkpoint" and resumed from it in a loop. Each step
now carries a sha256 manifest (checkpoint/checksum.py) that restore verifies; a step that fails
is moved aside to unrestorable/<step> and the previous one is used."""

import json
import logging
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nepa3d_jax.checkpoint import checksum
from nepa3d_jax.checkpoint.run_dir import CheckpointRestoreError, RunDir, load_params

N = 65536


def _abstract():
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return {"params": {"w": jax.ShapeDtypeStruct((N,), jnp.float32, sharding=sharding)}}


def _state(k):
    return {"params": {"w": jnp.arange(N, dtype=jnp.float32) + k}}


def _flip(step_dir: pathlib.Path) -> pathlib.Path:
    """Flip bits of 4 bytes in the middle of the largest data file: same size, valid zstd
    framing around it, so without a checksum the restore succeeds with wrong values."""
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and "/d/" in p.as_posix()]
    big = max(files, key=lambda p: p.stat().st_size)
    data = bytearray(big.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 4] = bytes(b ^ 0x40 for b in data[mid:mid + 4])
    big.write_bytes(bytes(data))
    return big


@pytest.mark.parametrize("async_save", [False, True])
def test_flipped_bits_are_caught_and_the_step_moved_aside(tmp_path, caplog, async_save):
    work = tmp_path / "run"
    with RunDir(work, keep=3, async_save=async_save) as rd:
        for step in (1, 2):
            rd.save(step, _state(step), {"epoch": 0, "step": step}, {"k": 1})
    for step in (1, 2):
        listed = json.loads((work / "checkpoints" / str(step) / checksum.MANIFEST).read_text())
        assert any(name.startswith("state/") for name in listed["files"])
    bad = _flip(work / "checkpoints" / "2")

    rd = RunDir(work, keep=3, async_save=False)
    with pytest.raises(checksum.ChecksumError, match=rf"{bad}: sha256 differs"):
        rd.restore(_abstract(), 2)
    with caplog.at_level(logging.WARNING, logger="nepa3d_jax"):
        step, state, data_iter, _, skipped = rd.restore_newest(_abstract())
    rd.close()
    assert step == 1 and data_iter == {"epoch": 0, "step": 1}
    np.testing.assert_array_equal(np.asarray(state["params"]["w"]), np.arange(N) + 1)
    assert skipped and skipped[0].startswith("step 2: ChecksumError")
    assert (work / "unrestorable" / "2" / "state").is_dir()
    assert not (work / "checkpoints" / "2").exists()
    # evaluators verify too, and a step with its manifest intact still loads
    _, params = load_params(work)
    np.testing.assert_array_equal(np.asarray(params["w"]), np.arange(N) + 1)


def test_missing_extra_or_unreadable_manifest_entries(tmp_path, caplog):
    work = tmp_path / "run"
    with RunDir(work, keep=3, async_save=False) as rd:
        rd.save(1, _state(1), {}, {})
    step_dir = work / "checkpoints" / "1"
    (step_dir / "state" / "stray").write_text("x")
    with pytest.raises(checksum.ChecksumError, match="stray: not listed"):
        checksum.verify(step_dir)
    (step_dir / "state" / "stray").unlink()
    assert checksum.verify(step_dir) is True
    # no manifest (an older version's step): restored, with a warning naming the step
    (step_dir / checksum.MANIFEST).unlink()
    with caplog.at_level(logging.WARNING, logger="nepa3d_jax"):
        _, params = load_params(work)
    assert any(f"{step_dir} has no {checksum.MANIFEST}" in r.getMessage()
               for r in caplog.records)
    (step_dir / checksum.MANIFEST).write_text("{not json")
    with pytest.raises(CheckpointRestoreError, match="ChecksumError"):
        with RunDir(work, keep=3, async_save=False) as rd:
            rd.restore_newest(_abstract())
