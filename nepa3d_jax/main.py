"""One entry point for every job: `python -m nepa3d_jax.main --config FILE [--config.a.b=v ...]`.

Dispatches on `config.job` through the job registry (`nepa3d_jax.jobs`: pretrain | cpac_udf |
finetune_cls | eval_bundle). Job modules are imported lazily, so a job whose module (or optional
dependency) is missing fails alone.
Without `--config`, runs the embedded default `configs/demo.py`.
"""

from __future__ import annotations

import logging
import pathlib
import sys
from typing import Any, Sequence

from absl import app
from absl import logging as absl_logging
from ml_collections import config_flags

from nepa3d_jax import atomic_io

_REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = "configs/demo.py"
EXIT_PREEMPTED = 143  # 128 + SIGTERM: the run saved and stopped early; rerun to resume

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "ml-collections config file (configs/runA.py, ...); default configs/demo.py",
    lock_config=False)


def _config_source(argv: Sequence[str]) -> tuple[str, list[str]]:
    """(config path, overrides) as given on the command line, for the run record."""
    path, overrides = DEFAULT_CONFIG, []
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        elif arg == "--config" and i + 1 < len(argv):
            path = argv[i + 1]
        elif arg.startswith("--config."):
            overrides.append(arg[2:].split(".", 1)[1])
    return path, overrides


def _load_default(overrides: list[str]):
    from nepa3d_jax.config import load_config

    path = pathlib.Path(DEFAULT_CONFIG)
    if not path.is_file():
        path = _REPO_ROOT / DEFAULT_CONFIG
    return load_config(str(path), overrides)


def loaded_config(flag_value, overrides: Sequence[str]):
    """The `--config` flag's config (absl parsed it) or the default one, with every field it
    leaves out filled from its job's defaults, as `load_config` does for files."""
    if flag_value is None:
        return _load_default(list(overrides))  # load_config fills the defaults
    from nepa3d_jax.config.loading import fill_defaults

    return fill_defaults(flag_value)


def run_job(config, config_path: str | None = None, overrides: Sequence[str] = ()) -> dict[str, Any]:
    from nepa3d_jax import jobs

    return jobs.run(config, config_path, overrides)


def main(argv: Sequence[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    # Our progress at INFO; library chatter (Orbax logs every save at INFO) at WARNING.
    absl_logging.set_verbosity(absl_logging.WARNING)
    logging.getLogger("nepa3d_jax").setLevel(logging.INFO)
    from nepa3d_jax.parallel import initialize

    info = initialize()  # before anything touches a device
    path, overrides = _config_source(sys.argv[1:])
    config = loaded_config(_CONFIG.value, overrides)
    logging.getLogger("nepa3d_jax").info("job=%s config=%s overrides=%s process=%s", config.job, path, overrides,
                 info)
    try:
        result = run_job(config, path, overrides)
    except ValueError as err:  # config / cache problems: the message names the field or file
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        from nepa3d_jax.checkpoint.lock import RunLockedError
        from nepa3d_jax.checkpoint.run_dir import CheckpointRestoreError
        from nepa3d_jax.train.divergence import EXIT_DIVERGED, DivergenceError

        if not isinstance(err, (DivergenceError, RunLockedError, CheckpointRestoreError)):
            raise
        print(f"error: {err}", file=sys.stderr)
        return EXIT_DIVERGED if isinstance(err, DivergenceError) else 2
    summary = {k: v for k, v in result.items() if k not in ("losses", "state")}
    print(atomic_io.dumps(summary, indent=1))  # standard JSON: a NaN would print as null
    if result.get("preempted"):
        return EXIT_PREEMPTED
    return 0


def override_error(path: str, overrides: Sequence[str]) -> str | None:
    """One line naming a bad `--config.x=y` (with the closest field for a typo), or None.

    Checked before absl parses the flags: its failure is a 50-line traceback.
    """
    import difflib

    from nepa3d_jax.config import load_config

    if not pathlib.Path(path.split(":", 1)[0]).is_file():
        return None  # absl reports a missing config file itself
    try:
        base = load_config(path)
    except ValueError as err:
        return str(err)
    for override in overrides:
        dotted = override.split("=", 1)[0]
        node, walked = base, []
        for part in dotted.split("."):
            if not hasattr(node, "keys") or part not in node:
                known = sorted(node.keys()) if hasattr(node, "keys") else []
                near = difflib.get_close_matches(part, known, n=1)
                where = ".".join(walked) or "the config"
                hint = f"; did you mean --config.{'.'.join(walked + near)}?" if near else ""
                return f"--config.{override}: {where} has no field {part!r}{hint}"
            node = node[part]
            walked.append(part)
    try:
        load_config(path, overrides)
    except ValueError as err:
        return str(err).splitlines()[0]
    return None


def entry() -> None:
    """`nepa3d-jax` / `python -m nepa3d_jax.main`."""
    from nepa3d_jax import hostmem

    if sys.argv[1:] in (["--help"], ["-h"]):  # absl's own --help exits with status 1
        app.usage(shorthelp=True, writeto_stdout=True, exitcode=0)

    path, overrides = _config_source(sys.argv[1:])
    problem = override_error(path, overrides) if overrides else None
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    hostmem.reexec_with_hugepages()  # before any large allocation; see hostmem's docstring
    app.run(main)


if __name__ == "__main__":
    entry()
