"""Progress a user can read (issue 26, item 7): the bar (and its ETA) starts after the first,
compiling step; the phases are announced. The logged throughput leaves that step out too."""

import json
import logging

import pytest

from nepa3d_jax.train import loop
from test_train_loop import PROGRAMS, reference_config


def test_eta_starts_after_the_compiled_step_and_phases_are_logged(reference_dir, tmp_path,
                                                                  monkeypatch, caplog):
    bars = []
    real = loop.tqdm

    def recording_tqdm(*args, **kwargs):
        bars.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "tqdm", recording_tqdm)
    config = reference_config(reference_dir, tmp_path / "run")
    config.train.num_steps = 3
    config.train.log_every_steps = 2
    with caplog.at_level(logging.INFO, logger="nepa3d_jax"):
        result = loop.run(config, programs=PROGRAMS)
    assert result["step"] == 3
    # one bar, made once step 1 (the compilation) is done: its rate and ETA count steps 2-3
    assert len(bars) == 1 and bars[0]["initial"] == 1 and bars[0]["total"] == 3
    text = caplog.text
    assert "pretraining: steps 1-3" in text and "compiling the first step" in text
    assert "pretraining: stopped at step 3 of 3; saving" in text
    assert text.index("compiling the first step") < text.index("stopped at step 3")
    assert "pretraining: step 1 (compilation included) took" in text
    # the row of step 2 times step 2 alone: step 1 (the compilation) is its own figure
    rows = [json.loads(line) for line in
            (tmp_path / "run" / "metrics" / "loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 3]
    tokens_per_step = result["derived"]["seq_len"] * result["derived"]["global_batch"]
    first = rows[0]
    assert first["first_step_s"] > 0 and "first_step_s" not in rows[1]
    assert first["tokens_per_s"] / first["steps_per_s"] == pytest.approx(tokens_per_step)
