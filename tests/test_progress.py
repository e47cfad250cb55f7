"""Progress a user can read (issue 26, item 7): the bar (and its ETA) starts after the first,
compiling step; the phases are announced."""

import logging

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
    with caplog.at_level(logging.INFO, logger="nepa3d_jax"):
        result = loop.run(config, programs=PROGRAMS)
    assert result["step"] == 3
    # one bar, made once step 1 (the compilation) is done: its rate and ETA count steps 2-3
    assert len(bars) == 1 and bars[0]["initial"] == 1 and bars[0]["total"] == 3
    text = caplog.text
    assert "pretraining: steps 1-3" in text and "compiling the first step" in text
    assert "pretraining: stopped at step 3 of 3; saving" in text
    assert text.index("compiling the first step") < text.index("stopped at step 3")
