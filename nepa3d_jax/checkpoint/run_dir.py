"""The run directory (`config.workdir`): Orbax checkpoints plus the JSON records beside them.

```
config.json          resolved config + "derived" block (+ "config_source")
provenance.json      package versions, device topology, git commit, start-up guard warnings
checkpoints/<step>/  Orbax steps; items `state` (params, opt_state, step), `data_iter`, `config`,
                     and `nepa3d_sha256.json`, the checksums verified on restore (checksum.py)
metrics/             TensorBoard event files (written by the training loop)
run.lock             held by the one process writing this directory (checkpoint/lock.py)
unrestorable/<step>/ checkpoints that failed to restore on resume, moved aside (never deleted)
```

Orbax writes each step into a temporary folder and renames it when complete, so a run killed
mid-save leaves the previous step intact. `keep` bounds the steps kept (the newest is always
among them). Arrays are restored with the shardings of the *current* devices, so a state saved
by 8 GPU processes loads on one CPU process for inference.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import pathlib
import platform
import subprocess
import sys
from typing import Any, Callable, Mapping

import jax
import ml_collections
import orbax.checkpoint as ocp

from nepa3d_jax import atomic_io
from nepa3d_jax.checkpoint import checksum

CHECKPOINTS = "checkpoints"
UNRESTORABLE = "unrestorable"  # checkpoints that failed to restore, moved aside, never deleted
log = logging.getLogger("nepa3d_jax.checkpoint")


class CheckpointRestoreError(RuntimeError):
    """No checkpoint of a run directory restores; the message lists each step and why."""
ITEMS = ("state", "data_iter", "config")
_PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "ml-collections", "numpy",
             "tensorboardX", "torch")


def _write_json_atomic(path: pathlib.Path, obj: Any) -> None:
    """Writes on the primary process only (`nepa3d_jax.atomic_io`: atomic, standard JSON)."""
    if jax.process_index() != 0:
        return
    atomic_io.write_json_atomic(path, obj)


def _as_dict(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if hasattr(config, "to_dict"):
        return config.to_dict()
    return json.loads(atomic_io.dumps(dict(config)))


def git_commit(root: str | os.PathLike | None = None) -> str | None:
    """HEAD of the checkout this package runs from (None outside a git checkout)."""
    root = pathlib.Path(root or pathlib.Path(__file__).resolve().parents[2])
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "-uno"],
                               capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _package_versions() -> dict[str, str | None]:
    from importlib import metadata
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_topology() -> dict[str, Any]:
    devices = jax.devices()
    return {
        "platform": devices[0].platform,
        "device_kind": devices[0].device_kind,
        "num_devices": len(devices),
        "num_local_devices": jax.local_device_count(),
        "num_processes": jax.process_count(),
        "process_index": jax.process_index(),
        "hostname": platform.node(),
    }


def provenance(warnings: list[str] | tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    """What produced a run: versions, devices, commit, the guards' warnings, the command line."""
    return {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "packages": _package_versions(),
        "devices": device_topology(),
        "git_commit": git_commit(),
        "argv": list(sys.argv),
        "warnings": list(warnings),
        **extra,
    }


class RunDir:
    """Orbax `CheckpointManager` over `<workdir>/checkpoints` with the run's three items."""

    def __init__(self, workdir: str | os.PathLike, keep: int = 3, read_only: bool = False,
                 async_save: bool = True):
        self.workdir = pathlib.Path(workdir).absolute()
        # Readers open without Orbax's read_only mode (it only logs warnings); they never save.
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max(int(keep), 1), create=not read_only,
            enable_async_checkpointing=async_save and not read_only)
        handlers = {"state": ocp.PyTreeCheckpointHandler(),
                    "data_iter": ocp.JsonCheckpointHandler(),
                    "config": ocp.JsonCheckpointHandler()}
        self.manager = ocp.CheckpointManager(
            self.workdir / CHECKPOINTS, item_handlers=handlers, options=options)
        self._async = async_save and not read_only
        self._unsealed: list[int] = []  # saved steps whose checksum manifest is not written yet

    # -- records beside the checkpoints ------------------------------------------------------
    def write_config(self, record: Mapping[str, Any]) -> None:
        _write_json_atomic(self.workdir / "config.json", dict(record))

    def write_provenance(self, record: Mapping[str, Any]) -> None:
        _write_json_atomic(self.workdir / "provenance.json", dict(record))

    # -- steps ---------------------------------------------------------------------------------
    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(self, step: int, state: Any, data_iter: Mapping[str, Any] | None = None,
             config: Mapping[str, Any] | None = None, force: bool = True) -> bool:
        """Saves `state` (a pytree of global jax.Arrays) with the iterator position and config.

        Collective: every process calls it with the same step. Returns whether a save started.
        """
        args = ocp.args.Composite(
            state=ocp.args.PyTreeSave(state),
            data_iter=ocp.args.JsonSave(dict(data_iter or {})),
            config=ocp.args.JsonSave(_as_dict(config)),
        )
        self._seal()
        started = self.manager.save(int(step), args=args, force=force)
        if started:
            self._unsealed.append(int(step))
            if not self._async:
                self._seal()
        return started

    def step_dir(self, step: int) -> pathlib.Path:
        return self.workdir / CHECKPOINTS / str(int(step))

    def _seal(self) -> None:
        """Checksum manifests of the finished saves (process 0; after Orbax's rename)."""
        if not self._unsealed:
            return
        self.manager.wait_until_finished()
        steps, self._unsealed = self._unsealed, []
        if jax.process_index() != 0:
            return
        for step in steps:
            if self.step_dir(step).is_dir():  # not rotated away meanwhile
                checksum.write(self.step_dir(step))

    def verify(self, step: int) -> None:
        """ChecksumError when `step`'s files differ from its manifest; a warning without one."""
        if not checksum.verify(self.step_dir(step)):
            log.warning("checkpoint %s has no %s (saved by an older version or killed before "
                        "it was written): restored without a checksum check",
                        self.step_dir(step), checksum.MANIFEST)

    def restore(self, abstract_state: Any, step: int | None = None
                ) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        """(state, data_iter, config) of `step` (default: latest) laid out like `abstract_state`.

        `abstract_state` holds `jax.ShapeDtypeStruct`s with the target shardings (e.g. from
        `jax.eval_shape` of the init function plus the run's sharding rules).
        """
        step = self.latest_step() if step is None else int(step)
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.workdir / CHECKPOINTS}")
        self.verify(step)
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.PyTreeRestore(
                item=abstract_state,
                restore_args=ocp.checkpoint_utils.construct_restore_args(abstract_state)),
            data_iter=ocp.args.JsonRestore(),
            config=ocp.args.JsonRestore(),
        ))
        # Same containers as the target (optax states are NamedTuples; Orbax returns tuples).
        state = jax.tree.unflatten(jax.tree.structure(abstract_state),
                                   jax.tree.leaves(restored["state"]))
        return state, dict(restored["data_iter"] or {}), dict(restored["config"] or {})

    def restore_newest(self, abstract_state: Any,
                       check_config: Callable[[dict[str, Any]], None] | None = None
                       ) -> tuple[int, Any, dict[str, Any], dict[str, Any], list[str]]:
        """(step, state, data_iter, config, skipped) of the newest checkpoint that restores.

        A step whose files do not restore (truncated, bit rot, half-copied) is skipped with a
        warning and moved to `<workdir>/unrestorable/<step>` (never deleted: it may be
        salvageable, and left in place the next save or rotation would trip over it).
        `check_config(saved_config)` runs before the arrays are read; what it raises (e.g. a
        changed model shape) is not a corrupt checkpoint and propagates at once.
        """
        skipped: list[str] = []
        for step in sorted(self.all_steps(), reverse=True):
            try:
                saved = self.read_config(step)
            except Exception as err:  # noqa: BLE001 -- any read failure = this step is unusable
                skipped.append(self._skip(step, err))
                continue
            if check_config is not None:
                check_config(saved)
            try:
                state, data_iter, config = self.restore(abstract_state, step)
            except Exception as err:  # noqa: BLE001
                skipped.append(self._skip(step, err))
                continue
            self._quarantine_skipped(skipped)
            return step, state, data_iter, config, skipped
        raise CheckpointRestoreError(
            f"no checkpoint in {self.workdir / CHECKPOINTS} restores:\n  " + "\n  ".join(skipped)
            + "\n(they are left in place; use a new workdir or repair them)")

    def _skip(self, step: int, err: BaseException) -> str:
        first = (str(err).strip().splitlines() or [""])[0][:300]
        why = f"step {step}: {type(err).__name__}: {first}"
        log.warning("checkpoint %s does not restore, trying the previous one (%s)",
                    self.workdir / CHECKPOINTS / str(step), why)
        return why

    def _quarantine_skipped(self, skipped: list[str]) -> None:
        """Moves the skipped steps out of Orbax's view (process 0), then re-lists the steps."""
        if not skipped:
            return
        if jax.process_index() == 0:
            dest = self.workdir / UNRESTORABLE
            dest.mkdir(parents=True, exist_ok=True)
            for why in skipped:
                step = why.split(":", 1)[0].split()[1]
                target = dest / step
                if target.exists():
                    target = dest / f"{step}.{datetime.datetime.now():%Y%m%dT%H%M%S}"
                os.rename(self.workdir / CHECKPOINTS / step, target)
                log.warning("moved unrestorable checkpoint step %s to %s", step, target)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils
            multihost_utils.sync_global_devices("nepa3d_quarantine_checkpoints")
        self.manager.reload()

    def read_config(self, step: int | None = None) -> dict[str, Any]:
        """The `config` item of `step` (default: latest) without touching the arrays."""
        step = self.latest_step() if step is None else int(step)
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.workdir / CHECKPOINTS}")
        restored = self.manager.restore(step, args=ocp.args.Composite(
            config=ocp.args.JsonRestore()))
        return dict(restored["config"] or {})

    def reached_preemption(self, step: int) -> bool:
        """True on every process at the same step once any of them received SIGTERM.

        Needs `jax.distributed` (multi-process runs); otherwise always False.
        """
        return bool(self.manager.reached_preemption(int(step)))

    def wait(self) -> None:
        self.manager.wait_until_finished()
        self._seal()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self._seal()
        self.manager.close()

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# What a run writes into its workdir (besides `unrestorable/`, which is never removed).
RUN_ARTEFACTS = (CHECKPOINTS, "metrics", "config.json", "provenance.json", "results.json",
                 "config_history.jsonl", "validated_caches.json", "cpac_udf.json",
                 "finetune_cls.json")


def clear_run(workdir: str | os.PathLike) -> list[str]:
    """Removes a previous run's artefacts (for `import_torch --overwrite`); returns their names.

    The caller holds the run lock. Only the names above are touched, nothing else in workdir.
    """
    import shutil

    removed = []
    for name in RUN_ARTEFACTS:
        path = pathlib.Path(workdir) / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(name)
    return removed


# -- params only (torch import, inference) --------------------------------------------------
def save_params_only(workdir: str | os.PathLike, params: Any,
                     config: ml_collections.ConfigDict | Mapping[str, Any], step: int = 0) -> str:
    """A checkpoint whose `state` holds only `params` (e.g. an imported original `last.pt`).

    `config` is written both as the checkpoint's `config` item and as `config.json`. Returns
    the workdir path.
    """
    record = _as_dict(config)
    params = jax.tree.map(lambda x: x if isinstance(x, jax.Array) else jax.numpy.asarray(x), params)
    with RunDir(workdir, keep=1, async_save=False) as run_dir:
        run_dir.write_config(record)
        run_dir.write_provenance(provenance(source="save_params_only"))
        run_dir.save(step, {"params": params}, data_iter={}, config=record)
    return str(run_dir.workdir)


def _target_sharding(sharding: jax.sharding.Sharding | None) -> jax.sharding.Sharding:
    if sharding is not None:
        return sharding
    return jax.sharding.SingleDeviceSharding(jax.local_devices()[0])


class _NoParams(ValueError):
    pass


def _restore_params(run_dir: RunDir, workdir: pathlib.Path, step: int,
                    sharding: jax.sharding.Sharding | None) -> Any:
    meta = run_dir.manager.item_metadata(step)
    state_meta = meta["state"]
    tree = getattr(state_meta, "tree", state_meta)
    if "params" not in tree:
        raise _NoParams(f"{workdir / CHECKPOINTS / str(step)}: item 'state' has no 'params'")
    run_dir.verify(step)
    target = _target_sharding(sharding)
    abstract = {"params": jax.tree.map(
        lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype, sharding=target),
        tree["params"])}
    return run_dir.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.PyTreeRestore(
            item=abstract,
            restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
            partial_restore=True),
        config=ocp.args.JsonRestore(),
    ))


def load_params(workdir: str | os.PathLike, step: int | None = None,
                sharding: jax.sharding.Sharding | None = None
                ) -> tuple[ml_collections.ConfigDict, Any]:
    """(config, params) of a run directory; params land on `sharding` (default: first device).

    Reads only the `params` subtree of `state`, whatever mesh or process count saved it. The
    config is the checkpoint's own record (with its "derived" block when the run stored one).
    Without `step`, a latest checkpoint that does not restore is skipped with a warning and
    the previous one is used (nothing is moved: readers never change a run directory).
    """
    workdir = pathlib.Path(workdir)
    if not (workdir / CHECKPOINTS).is_dir():
        raise FileNotFoundError(f"{workdir} is not a run directory: no {CHECKPOINTS}/ folder")
    with RunDir(workdir, read_only=True, async_save=False) as run_dir:
        steps = sorted(run_dir.all_steps(), reverse=True) if step is None else [int(step)]
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {workdir / CHECKPOINTS}")
        skipped: list[str] = []
        for candidate in steps:  # newest first; a corrupt one is skipped, named, left alone
            try:
                restored = _restore_params(run_dir, workdir, candidate, sharding)
                break
            except _NoParams:
                raise  # not a params checkpoint at all: no older step will differ
            except Exception as err:  # noqa: BLE001 -- any read failure = this step is unusable
                if len(steps) == 1:
                    raise
                skipped.append(run_dir._skip(candidate, err))
        else:
            raise CheckpointRestoreError(
                f"no checkpoint in {workdir / CHECKPOINTS} restores:\n  " + "\n  ".join(skipped))
    record = dict(restored["config"] or {})
    if not record and (workdir / "config.json").is_file():
        record = json.loads((workdir / "config.json").read_text())
    record.pop("config_source", None)
    return ml_collections.ConfigDict(record), restored["state"]["params"]
