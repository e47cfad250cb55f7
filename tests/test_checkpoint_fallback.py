"""Issue 14.6: a corrupt latest checkpoint falls back to the newest one that restores."""

import logging
import pathlib

import jax
import numpy as np
import pytest

from nepa3d_jax.checkpoint.run_dir import CheckpointRestoreError, load_params
from nepa3d_jax.train import loop

from helpers import reference_config


def _corrupt(step_dir: pathlib.Path) -> int:
    files = sorted((step_dir / "state").glob("ocdbt.process_*/d/*"))
    for f in files:  # same size, wrong bytes: what bit rot or a half-copied file looks like
        f.write_bytes(b"\x00garbage" * (f.stat().st_size // 9 + 1))
    return len(files)


def test_corrupt_latest_checkpoint_falls_back_and_is_kept(reference_dir, tmp_path, caplog):
    workdir = tmp_path / "run"
    first = loop.run(reference_config(reference_dir, workdir))  # steps 3 and 4 kept (keep=2)
    steps = lambda: sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()
                           if p.name.isdigit())
    assert steps() == [3, 4] and first["step"] == 4
    assert _corrupt(workdir / "checkpoints" / "4") > 0

    config = reference_config(reference_dir, workdir)
    config.train.num_steps = 5
    with caplog.at_level(logging.WARNING, logger="nepa3d_jax"):
        resumed = loop.run(config)
    assert resumed["resumed_from"] == 3 and resumed["step"] == 5
    warned = [r.getMessage() for r in caplog.records]
    assert any("checkpoints/4 does not restore" in m for m in warned), warned
    assert any("moved unrestorable checkpoint step 4" in m for m in warned), warned
    # the bad step is kept, out of the way; the run went on from 3 and saved 5
    assert (workdir / "unrestorable" / "4" / "state").is_dir()
    assert steps() == [3, 5]
    np.testing.assert_allclose([l for s, l in resumed["losses"] if s == 4],
                               [l for s, l in first["losses"] if s == 4], rtol=0, atol=0)

    # evaluators (load_params) fall back too, and move nothing
    _corrupt(workdir / "checkpoints" / "5")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nepa3d_jax"):
        _, params = load_params(workdir)
    assert any("checkpoints/5 does not restore" in r.getMessage() for r in caplog.records)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params))
    assert steps() == [3, 5]

    # nothing restores: a clear error listing the steps; nothing is deleted
    _corrupt(workdir / "checkpoints" / "3")
    with pytest.raises(CheckpointRestoreError, match=r"(?s)no checkpoint.*step 5:.*step 3:"):
        load_params(workdir)
    config.train.num_steps = 6
    with pytest.raises(CheckpointRestoreError, match=r"(?s)no checkpoint.*step 5:.*step 3:"):
        loop.run(config)
    assert steps() == [3, 5] and (workdir / "unrestorable" / "4").is_dir()
