"""Issue 14.5: a resume refuses changes to the data stream / optimisation unless told, records
accepted ones in config_history.jsonl, and keeps config.json as the first segment."""

import json

import pytest

from nepa3d_jax.train import loop, resume
from nepa3d_jax.train.divergence import DivergenceError

from helpers import reference_config


def _steps(workdir):
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def test_resume_refuses_changes_then_records_an_allowed_one(reference_dir, tmp_path):
    workdir = tmp_path / "run"
    loop.run(reference_config(reference_dir, workdir))
    assert _steps(workdir) == [3, 4]
    first = json.loads((workdir / "config.json").read_text())

    def again(**train):
        c = reference_config(reference_dir, workdir)
        c.train.num_steps = 8  # extending a run is free
        c.train.update(train)
        return c

    with pytest.raises(resume.ResumeChangeError) as info:
        loop.run(again(base_lr=1e30))
    text = str(info.value)
    assert "train.base_lr: checkpoint 0.001, now 1e+30" in text
    assert "derived.lr: checkpoint 0.001, now 1e+30" in text
    assert "--config.train.allow_resume_changes=derived.lr,train.base_lr" in text
    with pytest.raises(resume.ResumeChangeError, match=r"(?s)derived.global_batch: checkpoint 8,"
                       r" now 16.*train.batch_per_device: checkpoint 1, now 2"):
        loop.run(again(batch_per_device=2))
    c = again()
    c.data.mix_seed = 7
    with pytest.raises(resume.ResumeChangeError, match="data.mix_seed: checkpoint 0, now 7"):
        loop.run(c)
    assert _steps(workdir) == [3, 4] and not (workdir / resume.HISTORY).exists()

    # Accepted explicitly: recorded, config.json untouched. This LR diverges in two steps; the
    # finite states are saved, the NaN one never is, so keep_checkpoints=2 keeps 4 and 5.
    with pytest.raises(DivergenceError, match=r"at step 6 .*last finite checkpoint is step 5"):
        loop.run(again(base_lr=1e30, allow_resume_changes="train.base_lr,derived.lr",
                       checkpoint_every_steps=1))
    assert _steps(workdir) == [4, 5]
    (line,) = (workdir / resume.HISTORY).read_text().splitlines()
    entry = json.loads(line)
    assert entry["resumed_at_step"] == 4
    assert entry["changed"]["train.base_lr"] == [0.001, 1e30]
    assert entry["changed"]["train.num_steps"] == [4, 8]
    assert entry["config"]["train"]["base_lr"] == 1e30
    assert json.loads((workdir / "config.json").read_text()) == first


def test_position_converts_between_global_batches():
    assert resume.convert_position({"epoch": 2, "step": 4}, 8, 16, 2) == {"epoch": 3, "step": 0}
    assert resume.convert_position({"epoch": 0, "step": 3}, 8, 4, 10) == {"epoch": 0, "step": 6}
    with pytest.raises(resume.ResumeChangeError, match=r"mid-epoch \(epoch 0, 24 samples in\) "
                                                       r"with global batch 16"):
        resume.convert_position({"epoch": 0, "step": 3}, 8, 16, 2)
