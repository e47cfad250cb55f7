"""Issue 27 (weak): a diverged segment wrote `"losses": []` to results.json, dropping the
earlier segments' losses; and a divergence right after a resume named the checkpoint it had
resumed from as "the last finite checkpoint" without saying that resuming repeats it."""

import json

import pytest

from nepa3d_jax.train import evaluate, loop
from nepa3d_jax.train.divergence import DivergenceError

from helpers import reference_config

PROGRAMS = loop.Programs()  # this module's runs share their compiled programs


def test_diverged_segment_keeps_earlier_losses_and_says_resuming_repeats_it(reference_dir,
                                                                            tmp_path):
    workdir = tmp_path / "run"
    first = loop.run(reference_config(reference_dir, workdir), programs=PROGRAMS)
    assert first["step"] == 4
    logged = json.loads((workdir / "results.json").read_text())["losses"]
    assert [s for s, _ in logged] == [1, 2, 3, 4]

    c = reference_config(reference_dir, workdir)
    c.train.update(num_steps=8, base_lr=1e30, checkpoint_every_steps=0,
                   allow_resume_changes="train.base_lr,derived.lr")
    with pytest.raises(DivergenceError) as info:
        loop.run(c, programs=PROGRAMS)
    assert "last finite checkpoint is step 4" in str(info.value)
    assert "this segment resumed from it" in str(info.value)
    results = json.loads((workdir / "results.json").read_text())
    assert results["status"] == "diverged" and results["resumed_from"] == 4
    steps = [s for s, _ in results["losses"]]
    assert steps[:4] == [1, 2, 3, 4] and results["losses"][:4] == logged
    assert steps == sorted(steps) and len(steps) > 4  # this segment's logged steps follow


def test_results_merge_only_steps_up_to_the_resume(tmp_path):
    evaluate.write_results(tmp_path, {"losses": [(1, 1.0), (2, 0.5), (3, 0.25)]})
    evaluate.write_results(tmp_path, {"losses": [(3, 0.3)], "resumed_from": 2})
    assert json.loads((tmp_path / "results.json").read_text())["losses"] == [
        [1, 1.0], [2, 0.5], [3, 0.3]]
    evaluate.write_results(tmp_path, {"losses": [(1, 2.0)]})  # a fresh run starts over
    assert json.loads((tmp_path / "results.json").read_text())["losses"] == [[1, 2.0]]
