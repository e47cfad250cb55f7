"""Pretraining on the shared reference caches (Run-A style mixA mixture, tiny model):
1 vs 8 devices, SIGTERM -> save, resume == uninterrupted, the run directory's files."""

import json
import os
import pathlib
import signal

import jax
import numpy as np
import pytest

from nepa3d_jax.checkpoint.run_dir import load_params
from nepa3d_jax.train import loop
from helpers import STEPS, reference_config



def _losses(result):
    return np.array([loss for _, loss in result["losses"]])


# No shared module fixture: each test runs what it needs. Runs with the same shapes share the
# compiled programs through PROGRAMS (the cache is explicit), so a repeated run costs ~a second.
PROGRAMS = loop.Programs()


def test_one_and_eight_devices_same_loss_trajectory(reference_dir, tmp_path):
    devices = jax.devices()
    eight = loop.run(reference_config(reference_dir, tmp_path / "eight"), programs=PROGRAMS)
    one = loop.run(reference_config(reference_dir, tmp_path / "one",
                                    batch_per_device=len(devices)), devices=devices[:1],
                   programs=PROGRAMS)
    assert eight["derived"]["global_batch"] == one["derived"]["global_batch"] == 8
    assert eight["derived"]["num_devices"] == 8 and one["derived"]["num_devices"] == 1
    full = _losses(eight)
    assert full.shape == (STEPS,) and np.all(np.isfinite(full)) and full[0] > 0.5
    np.testing.assert_allclose(_losses(one), full, atol=1e-5, rtol=0)


def test_sigterm_saves_and_resume_reproduces_the_uninterrupted_run(reference_dir, tmp_path):
    full = loop.run(reference_config(reference_dir, tmp_path / "full"), return_state=True,
                    programs=PROGRAMS)

    def sigterm_after_two(step, metrics):
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # the real signal, handled in the loop

    stopped = loop.run(reference_config(reference_dir, tmp_path / "resumed"),
                       callback=sigterm_after_two, programs=PROGRAMS)
    assert stopped["preempted"] and stopped["step"] == 2
    assert [s for s, _ in stopped["losses"]] == [1, 2]
    assert sorted(int(p.name) for p in (tmp_path / "resumed" / "checkpoints").iterdir()
                  if p.name.isdigit()) == [2]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler removed again

    resumed = loop.run(reference_config(reference_dir, tmp_path / "resumed"), return_state=True,
                       programs=PROGRAMS)
    assert resumed["resumed_from"] == 2 and resumed["step"] == STEPS
    np.testing.assert_array_equal(_losses(resumed), _losses(full)[2:])
    for a, b in zip(jax.tree.leaves(resumed["state"]), jax.tree.leaves(full["state"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # exact, opt state too

    _check_run_directory(tmp_path / "full", full)


def _check_run_directory(workdir: pathlib.Path, result) -> None:
    steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [3, STEPS]  # periodic (every 3) + final, keep 2
    record = json.loads((workdir / "config.json").read_text())
    assert record["derived"]["seq_len"] == 1 + 2 * 16 + 2 * 16 + 1 == record["derived"]["max_len"]
    assert record["derived"]["num_devices"] == 8 and record["model"]["d_model"] == 32
    prov = json.loads((workdir / "provenance.json").read_text())
    assert prov["devices"]["num_devices"] == 8 and prov["packages"]["jax"] == jax.__version__
    assert prov["data"]["steps_per_epoch"] == 40 // 8
    assert (workdir / "metrics" / "loss_curve.png").stat().st_size > 1000
    assert list((workdir / "metrics").glob("events.out.tfevents.*"))
    rows = [json.loads(l) for l in (workdir / "metrics" / "loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    assert all(r["lr"] == 1e-3 for r in rows)
    # step 1 compiles: timed alone (first_step_s), left out of the throughput (log every step)
    assert rows[0]["first_step_s"] > 0 and "tokens_per_s" not in rows[0]
    assert all(r["tokens_per_s"] > 0 and "first_step_s" not in r for r in rows[1:])
    results = json.loads((workdir / "results.json").read_text())
    assert results["step"] == STEPS and results["final_loss"] == rows[-1]["loss"]
    config, params = load_params(workdir)  # inference restore: one device, params only
    assert config.derived.global_batch == 8
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(result["state"].params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert len(a.sharding.device_set) == 1


def test_resume_with_a_changed_model_fails_naming_the_field(reference_dir, tmp_path):
    config = reference_config(reference_dir, tmp_path / "run")
    config.train.num_steps = 1
    loop.run(config, programs=PROGRAMS)
    config.model.d_model = 64
    config.train.num_steps = 2
    with pytest.raises(ValueError, match="model.d_model: checkpoint 32, config 64"):
        loop.run(config)


def test_compiled_programs_are_shared_only_when_handed_over(reference_dir, tmp_path):
    """No process-wide cache: a trainer builds into its own Programs unless handed one.
    (jax.jit compiles on first call; building the step functions here compiles nothing.)"""
    programs = loop.Programs()

    def step_fn(name, **train):
        config = reference_config(reference_dir, tmp_path / name)
        config.train.update(train)
        trainer = loop.Trainer(config, programs=programs if name != "own" else None)
        try:
            return trainer.step_fn(0)[0]
        finally:
            trainer.close()

    first = step_fn("a")
    assert step_fn("b") is first and len(programs) == 1  # same model, optimizer, mesh, seed
    assert step_fn("c", base_lr=2e-3) is not first and len(programs) == 2
    assert step_fn("own") is not first and len(programs) == 2
    assert not hasattr(loop, "_COMPILED")
