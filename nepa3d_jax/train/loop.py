"""`run(config) -> dict`: the pretraining job (set-up, resume, loop, checkpoints, logs).

Order matters: the config is validated and every cache is checked *before* anything is
compiled, so a bad field or a corrupt file fails in seconds with its name. A run directory
with checkpoints resumes automatically from the latest one (params, optimizer state, data
iterator position); on CPU the resumed run reproduces the uninterrupted one exactly.
"""

from __future__ import annotations

import logging
import math
import pathlib
import time
from typing import Any, Callable, Sequence

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from nepa3d_jax.checkpoint.lock import RunLock, RunLockedError
from nepa3d_jax.checkpoint.run_dir import RunDir, provenance
from nepa3d_jax.config import derive, guard_warnings, to_run_json, validate
from nepa3d_jax.data.mixture import mix_spec_from_config
from nepa3d_jax.parallel import host_batch_to_global, make_mesh
from nepa3d_jax.train import divergence, evaluate, resume
from nepa3d_jax.train import collapse
from nepa3d_jax.train.collapse import collapse_report
from nepa3d_jax.train.corpus import ensure_synthetic_corpus
from nepa3d_jax.train.metrics import MetricsLog
from nepa3d_jax.train.optimizer import lr_at, make_optimizer
from nepa3d_jax.train.preemption import PreemptionGuard
from nepa3d_jax.train.programs import Programs
from nepa3d_jax.train.schedule import EpochSchedule, dual_mask_warmup_steps
from nepa3d_jax.train.state import (TrainState, abstract_state, build_model, init_fn,
                                    state_shardings)
from nepa3d_jax.train.step import StepSpec, device_batch, jit_train_step, make_train_step

log = logging.getLogger("nepa3d_jax.train")

class Trainer:
    """The pretraining run's objects; `run()` below is the whole job."""

    def __init__(self, config: ml_collections.ConfigDict, config_path: str | None = None,
                 overrides: Sequence[str] = (), devices: Sequence[jax.Device] | None = None,
                 programs: Programs | None = None):
        self.config = config = ml_collections.ConfigDict(config.to_dict())
        validate(config)
        devices = list(jax.devices() if devices is None else devices)
        self.derived = derive(config, len(devices), jax.process_count())
        self.warnings = guard_warnings(config, self.derived)
        for warning in self.warnings:
            log.warning("config: %s", warning)
        self.workdir = pathlib.Path(config.workdir)
        self.lock = self._take_lock(float(config.train.lock_stale_hours))
        try:
            self._build(config, config_path, overrides, devices, programs)
        except BaseException:
            if self.lock is not None:
                self.lock.release()
            raise

    def _take_lock(self, stale_hours: float) -> RunLock | None:
        """One writer per run directory: process 0 holds `run.lock` until close(). Its verdict
        is broadcast, so the other processes of a refused multi-host run stop too instead of
        waiting in the first collective."""
        lock, error = None, None
        if jax.process_index() == 0:
            try:
                lock = RunLock(self.workdir, stale_hours).acquire()
            except (RunLockedError, ValueError) as err:
                error = err
        ok = error is None
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            ok = bool(multihost_utils.broadcast_one_to_all(np.int32(ok)))
        if error is not None:
            raise error
        if not ok:
            raise RunLockedError(f"{self.workdir} is in use by another run (process 0 says why)")
        return lock

    def _build(self, config: ml_collections.ConfigDict, config_path: str | None,
               overrides: Sequence[str], devices: list[jax.Device],
               programs: Programs | None) -> None:
        from nepa3d_jax.data.pipeline import InputPipeline

        self.mesh = make_mesh(config, devices)
        ensure_synthetic_corpus(config)
        # Checks every cache file (data.validate): a bad file fails here, before compilation.
        self.pipeline = InputPipeline(config.data, self.derived.global_batch,
                                      validate_cache=self.workdir / "validated_caches.json")
        self.schedule = EpochSchedule(config)
        self.total_steps = int(self.derived.total_steps)
        self.warmup_steps = dual_mask_warmup_steps(
            config.train.dual_mask_warmup_frac, self.total_steps)
        self.model = build_model(config, int(self.derived.max_len))
        self.optimizer = make_optimizer(config.train, self.derived.lr, self.total_steps)
        self.init = init_fn(self.model, self.optimizer, seed=int(config.seed))
        self.shardings = state_shardings(jax.eval_shape(self.init), self.mesh)
        # Same model, optimizer settings and mesh -> the same compiled programs, also across
        # runs that share `programs` (a resume in one process, the tests).
        self.programs = Programs() if programs is None else programs
        t = config.train
        self._cache_key = (self.model, float(self.derived.lr),
                           tuple(float(t[k]) for k in (
                               "b1", "b2", "weight_decay", "grad_clip")),
                           t.lr_schedule, int(t.lr_warmup_steps), self.total_steps,
                           self.mesh, int(config.seed))
        # Async saves overlap writing with training on accelerators; on CPU they only add
        # per-array copy programs, so save synchronously there.
        self.run_dir = RunDir(self.workdir, keep=int(config.train.keep_checkpoints),
                              async_save=jax.default_backend() != "cpu")
        self.record = to_run_json(config, self.derived, config_path, overrides)
        self.record["derived"][resume.MIXTURE_KEY] = resume.mixture_record(
            mix_spec_from_config(config.data))  # compared whole on resume (resume.py)
        self.skipped: list[str] = []
        self.changes: dict[str, list] = {}
        self.resumed_from: int | None = None
        self.losses: list[tuple[int, float]] = []
        self._sizes = None
        log.info("derived: %s", ", ".join(f"{k}={v}" for k, v in self.derived.items()))
        log.info("data: %s", self.pipeline.describe())

    # -- state -------------------------------------------------------------------------------
    def initial_state(self) -> tuple[TrainState, int | None]:
        """The latest checkpoint's state (and iterator position), or a fresh init."""
        latest = self.run_dir.latest_step()
        if latest is None:
            init = self.programs.get(("init",) + self._cache_key,
                                     lambda: jax.jit(self.init, out_shardings=self.shardings))
            return init(), None
        target = abstract_state(self.init, self.shardings)
        allow = str(self.config.train.allow_resume_changes)
        saved: dict[str, Any] = {}

        def check_config(record: dict[str, Any]) -> None:
            saved.clear()
            saved.update(record)
            self.changes = resume.check(record, self.record, self.workdir, allow)

        latest, tree, data_iter, _, self.skipped = self.run_dir.restore_newest(
            target.as_dict(), check_config)
        old_batch = (saved.get("derived") or {}).get("global_batch")
        if data_iter and old_batch:
            data_iter = resume.convert_position(data_iter, int(old_batch),
                                                int(self.derived.global_batch),
                                                self.pipeline.steps_per_epoch)
        if data_iter:
            self.pipeline.set_state(data_iter)
        if self.changes and jax.process_index() == 0:
            resume.append_history(self.workdir, latest, self.changes, allow, self.record)
            log.warning("resumed with changed fields (recorded in %s): %s", resume.HISTORY,
                        ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in self.changes.items()))
        log.info("resumed %s at step %d (data position %s)", self.workdir, latest, data_iter)
        return TrainState.from_dict(tree), latest

    def save(self, state: TrainState, step: int) -> None:
        if step in self.run_dir.all_steps():
            return
        self.run_dir.save(step, state.as_dict(), self.pipeline.get_state(), self.record)

    def step_fn(self, epoch: int):
        """The compiled step for this epoch's sizes (a schedule change compiles a new one)."""
        spec = StepSpec.from_config(self.config, self.schedule.at(epoch), self.warmup_steps)
        key = ("step", spec) + self._cache_key
        if self._sizes is not None and spec.sizes != self._sizes:
            log.info("epoch %d: n_point=%d n_ray=%d dual_mask_window=%d (T=%d)", epoch,
                     spec.sizes.n_point, spec.sizes.n_ray, spec.sizes.dual_mask_window,
                     spec.seq_len)
        self._sizes = spec.sizes
        step = self.programs.get(key, lambda: jit_train_step(
            make_train_step(self.model, self.optimizer, spec), self.shardings, self.mesh))
        return step, spec.seq_len

    # -- the loop ----------------------------------------------------------------------------
    def train(self, callback: Callable[[int, Any], None] | None = None) -> dict[str, Any]:
        """The loop; `callback(step, metrics)` runs after every step (metrics on device)."""
        state, resumed = self.initial_state()
        self.resumed_from = resumed
        start = int(jax.device_get(state.step))
        if resumed is None or not (self.workdir / "config.json").is_file():
            self.run_dir.write_config(self.record)  # the first segment; later ones: history
        self.run_dir.write_provenance(provenance(
            self.warnings, derived=self.derived.to_dict(), resumed_from=resumed,
            skipped_checkpoints=list(self.skipped), resume_changes=dict(self.changes),
            data=self.pipeline.describe()))
        cfg, total = self.config.train, self.total_steps
        log_every = max(1, int(cfg.log_every_steps))
        ckpt_every = int(cfg.checkpoint_every_steps)
        metrics_log = MetricsLog(self.workdir)
        losses: list[tuple[int, float]] = []
        self.losses = losses  # results.json of a diverged segment keeps them (run())
        preempted = False
        step = start
        primary = jax.process_index() == 0
        if primary and start < total:
            log.info("pretraining: steps %d-%d in %s; compiling the first step (no ETA until "
                     "it has run)", start + 1, total, self.workdir)
        bar = None  # made after the first step: its ETA must not count the compilation
        # Throughput (tokens_per_s, steps_per_s) likewise counts only steps of programs already
        # compiled: a step that ran a program for the first time (step 1, or a schedule's new
        # sizes) is timed alone, as `first_step_s` (compilation included), and the window
        # restarts after it.
        compiled: set[int] = set()
        first_step_s: float | None = None  # until the row that logs it
        t_mark, steps_since, tokens_since = time.perf_counter(), 0, 0
        collapse_state: dict[str, Any] | None = None
        history = metrics_log.history() if start > 0 else []
        if history:  # a resumed run: the verdict of its last logged step (warns at start-up)
            collapse_state = self._check_collapse(int(history[-1]["step"]), history[-1], None)
        with PreemptionGuard() as guard:
            while step < total:
                if guard.requested or self.run_dir.reached_preemption(step):
                    preempted = True
                    break
                epoch = self.pipeline.get_state()["epoch"]
                fn, seq_len = self.step_fn(epoch)
                batch = host_batch_to_global(device_batch(next(self.pipeline)), self.mesh)
                state, metrics = fn(state, batch)
                step += 1
                steps_since += 1
                tokens_since += seq_len * int(self.derived.global_batch)
                if id(fn) not in compiled:
                    compiled.add(id(fn))
                    jax.block_until_ready(metrics)
                    now = time.perf_counter()
                    if not compiled - {id(fn)}:  # the run's first step
                        first_step_s = now - t_mark
                        log.info("pretraining: step %d (compilation included) took %.1f s",
                                 step, first_step_s)
                    t_mark, steps_since, tokens_since = now, 0, 0
                if bar is None:
                    bar = tqdm(total=total, initial=step, disable=not primary, desc="pretrain",
                               dynamic_ncols=True)
                else:
                    bar.update(1)
                if callback is not None:
                    callback(step, metrics)
                if step % log_every == 0 or step == total:
                    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
                    if not values.pop("diagnostics", 1.0):  # a last step off the log grid
                        values = {k: v for k, v in values.items()
                                  if k not in collapse.DIAGNOSTIC_KEYS}
                    values.update(lr=lr_at(self.config.train, self.derived.lr, self.total_steps,
                                             step - 1), epoch=epoch)
                    if steps_since:  # not when the window holds only a compiling step
                        elapsed = max(time.perf_counter() - t_mark, 1e-9)
                        values.update(tokens_per_s=tokens_since / elapsed,
                                      steps_per_s=steps_since / elapsed)
                    if first_step_s is not None:
                        values["first_step_s"], first_step_s = first_step_s, None
                    metrics_log.write(step, values)
                    collapse_state = self._check_collapse(step, values, collapse_state)
                    losses.append((step, values["loss"]))
                    postfix = {"loss": f"{values['loss']:.4f}"}
                    if "tokens_per_s" in values:
                        postfix["tok_s"] = f"{values['tokens_per_s']:.0f}"
                    bar.set_postfix(**postfix)
                    t_mark, steps_since, tokens_since = time.perf_counter(), 0, 0
                    self._check(step, values, "logging", log_every)
                    if self.lock is not None:
                        self.lock.heartbeat()
                if ckpt_every > 0 and step % ckpt_every == 0 and step < total:
                    self._check(step, divergence.state_values(state.as_dict(), metrics),
                                "checkpoint", log_every)
                    self.save(state, step)
            if bar is not None:
                bar.close()
            if primary:
                log.info("pretraining: stopped at step %d of %d; saving the checkpoint and "
                         "drawing metrics/loss_curve.png", step, total)
            if step > start:
                self._check(step, divergence.state_values(state.as_dict(), metrics),
                            "checkpoint", log_every)
            self.save(state, step)
            self.run_dir.wait()
        if preempted:
            log.warning("preempted: saved step %d of %d in %s; rerun the same command to "
                        "resume", step, total, self.workdir)
        curve = metrics_log.plot_loss(title=f"{self.workdir.name} pretraining loss")
        metrics_log.close()
        return dict(workdir=str(self.workdir), step=step, total_steps=total,
                    preempted=preempted, final_loss=losses[-1][1] if losses else None,
                    losses=losses, loss_curve=curve, derived=self.derived.to_dict(),
                    warnings=list(self.warnings) + ([collapse_state["warning"]]
                                                    if (collapse_state or {}).get("warning")
                                                    else []),
                    collapse=collapse_state, resumed_from=resumed, state=state)

    def _check_collapse(self, step: int, values: dict[str, Any], previous: dict[str, Any] | None
                        ) -> dict[str, Any] | None:
        """The collapse verdict of the latest logged values; warns when a collapse starts
        and when it ends (the final verdict lands in results.json)."""
        report = collapse_report(values, int(self.config.model.d_model))
        if report is None:
            return previous
        was = bool(previous and previous["collapsed"])
        if report["collapsed"] and not was:
            log.warning("step %d: %s", step, report["warning"])
        elif was and not report["collapsed"]:
            log.warning("the representation recovered from a collapse (z_std=%.4g, "
                        "z_erank=%.3g)", report["z_std"], report["z_erank"])
        return report

    def _check(self, step: int, values: dict[str, float], where: str, log_every: int) -> None:
        """DivergenceError on a non-finite loss / grad norm (before anything is saved)."""
        if not all(map(math.isfinite, values.values())):
            self.run_dir.wait()  # a save in flight is of an earlier, checked step
        divergence.check(step, values, where=where, log_every=log_every,
                         last_checkpoint=self.run_dir.latest_step(), workdir=str(self.workdir),
                         resumed_from=self.resumed_from)

    def close(self) -> None:
        try:
            self.pipeline.close()
            self.run_dir.close()
        finally:
            if self.lock is not None:
                self.lock.release()


def run(config: ml_collections.ConfigDict, *, config_path: str | None = None,
        overrides: Sequence[str] = (), return_state: bool = False,
        devices: Sequence[jax.Device] | None = None,
        callback: Callable[[int, Any], None] | None = None,
        programs: Programs | None = None) -> dict[str, Any]:
    """Pretrains `config` in `config.workdir` (resuming if it holds checkpoints).

    Returns a summary (final step and loss, the logged loss trajectory, derived values, the
    results of `train.eval_after`); with `return_state` also the final TrainState. `devices`
    restricts the mesh (default: all global devices); `programs` shares compiled programs with
    other runs in this process.
    """
    trainer = Trainer(config, config_path, overrides, devices, programs)
    try:
        result = trainer.train(callback)
    except divergence.DivergenceError as err:
        evaluate.write_results(trainer.workdir, dict(
            workdir=str(trainer.workdir), status="diverged", diverged_at_step=err.step,
            last_finite_checkpoint=err.last_checkpoint, error=str(err),
            resumed_from=trainer.resumed_from, losses=trainer.losses))
        raise
    finally:
        trainer.close()
    state = result.pop("state")
    eval_after = str(trainer.config.train.eval_after)
    if eval_after and not result["preempted"]:  # one name or a comma-separated list
        result["eval"] = {}
        for name in evaluate.names(eval_after):
            log.info("evaluation: %s of %s (train.eval_after)", name, trainer.workdir)
            result["eval"][name] = evaluate.run_after_training(trainer.config, name)
        from nepa3d_jax.eval.headline import headline

        result["headline"] = headline(result["eval"], steps=result["step"])
        for line in result["headline"]["verdict"]:
            log.info("%s", line)
    evaluate.write_results(trainer.workdir, result)
    if return_state:
        result["state"] = state
    return result
