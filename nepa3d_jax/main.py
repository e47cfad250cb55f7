"""One entry point for every job: `nepa3d-jax --config FILE [--config.a.b=v ...]`
(= `python -m nepa3d_jax.main ...`).

Dispatches on `config.job` through the job registry (`nepa3d_jax.jobs`: pretrain | cpac_udf |
finetune_cls | eval_bundle). Job modules are imported lazily, so a job whose module (or optional
dependency) is missing fails alone. Without `--config` it prints `USAGE` and exits with status 2.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Sequence

from absl import app
from absl import flags as absl_flags
from absl import logging as absl_logging
from ml_collections import config_flags

EXIT_PREEMPTED = 143  # 128 + SIGTERM: the run saved and stopped early; rerun to resume
EXIT_USAGE = 2
USAGE = """usage: nepa3d-jax --config FILE [--config.a.b=VALUE ...]

Runs the job a config file names (pretrain, cpac_udf, finetune_cls, eval_bundle).
  --config FILE          required: a config from configs/ (configs/demo.py: the few-minute
                         demo, the same as `make demo`; configs/runA.py ... runD.py: the
                         pretraining runs; configs/cpac_udf.py, cls_*.py, eval_bundle.py:
                         the evaluations)
  --config.a.b=VALUE     override one field (snake_case or kebab-case), e.g.
                         --config.train.num_steps=20 --config.workdir=runs/try
  --compilation_cache=DIR  JAX's persistent compilation cache folder, or `off` (default:
                         $NEPA3D_COMPILATION_CACHE, else ~/.cache/nepa3d_jax/jax): a second
                         run of the same shapes loads its compiled programs instead
Check a config first, without running anything: nepa3d-config --config FILE
Compare configs: nepa3d-config diff configs/runA.py configs/runC.py
absl's own flags: --helpfull"""

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "ml-collections config file (configs/runA.py, ...)", lock_config=False)
_COMPILATION_CACHE = absl_flags.DEFINE_string(
    "compilation_cache", "", "JAX's persistent compilation cache folder, or `off` (default: "
    "$NEPA3D_COMPILATION_CACHE, else the per-user cache folder); see nepa3d_jax.compile_cache")


def _config_source(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """(config path or None, overrides) as given on the command line, for the run record."""
    path, overrides = None, []
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        elif arg == "--config" and i + 1 < len(argv):
            path = argv[i + 1]
        elif arg.startswith("--config."):
            overrides.append(arg[2:].split(".", 1)[1])
    return path, overrides


def loaded_config(flag_value, overrides: Sequence[str] = ()):
    """The `--config` flag's config (absl parsed it) with every field it leaves out filled from
    its job's defaults, as `load_config` does for files."""
    from nepa3d_jax.config.loading import fill_defaults

    del overrides  # absl applied them already
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
    from nepa3d_jax import compile_cache
    from nepa3d_jax.parallel import initialize

    cache = compile_cache.enable(_COMPILATION_CACHE.value)  # before the first compilation
    info = initialize()  # before anything touches a device
    path, overrides = _config_source(sys.argv[1:])
    config = loaded_config(_CONFIG.value, overrides)
    logging.getLogger("nepa3d_jax").info("job=%s config=%s overrides=%s process=%s "
                                         "compilation_cache=%s", config.job, path, overrides,
                                         info, cache or "off")
    try:
        result = run_job(config, path, overrides)
    except ValueError as err:  # config / cache problems: the message names the field or file
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        from nepa3d_jax.checkpoint.lock import RunLockedError
        from nepa3d_jax.checkpoint.run_dir import CheckpointRestoreError
        from nepa3d_jax.data.slots import SharedMemoryError
        from nepa3d_jax.train.divergence import EXIT_DIVERGED, DivergenceError

        if not isinstance(err, (DivergenceError, RunLockedError, CheckpointRestoreError,
                                SharedMemoryError)):
            raise
        print(f"error: {err}", file=sys.stderr)
        return EXIT_DIVERGED if isinstance(err, DivergenceError) else 2
    from nepa3d_jax.eval import console

    # A short summary; the full result stays in its file (results.json, out_json).
    print(console.text(config, result))
    if result.get("preempted"):
        return EXIT_PREEMPTED
    return 0


def usage_error(argv: Sequence[str]) -> str | None:
    """One line for a command line `main` cannot run (no `--config`, a bad file or override,
    an unknown flag), or None. Checked before absl parses the flags: its failures are
    tracebacks."""
    import difflib

    from absl import flags

    from nepa3d_jax.config.overrides import override_error

    path, overrides = _config_source(argv)
    if path is None:
        return ("--config FILE is required (a config from configs/, e.g. configs/demo.py; "
                "nepa3d-jax --help for usage)")
    value_of = None  # an absl flag given as `--flag value`: the next word is its value
    for arg in argv:
        if value_of is not None or arg.startswith(("--config=", "--config.")):
            value_of = None
            continue
        if arg == "--config":
            value_of = arg
            continue
        if not arg.startswith("-"):
            return f"unexpected argument {arg!r} (overrides look like --config.a.b=value)"
        name = arg.lstrip("-").split("=", 1)[0]
        if name in flags.FLAGS:
            if "=" not in arg and not flags.FLAGS[name].boolean:
                value_of = arg
            continue
        if name.removeprefix("no") not in flags.FLAGS:
            near = difflib.get_close_matches(name, ["config"], n=1)
            hint = f"; did you mean --{near[0]} FILE or --config.a.b=value?" if near else ""
            return f"unknown flag {arg.split('=', 1)[0]!r}{hint}"
    return override_error(path, overrides)


def entry() -> None:
    """`nepa3d-jax` / `python -m nepa3d_jax.main`."""
    from nepa3d_jax import hostmem
    from nepa3d_jax.config.overrides import snake_override

    argv = [snake_override(a) for a in sys.argv[1:]]
    sys.argv[1:] = argv
    if any(a in ("-h", "--help", "-help", "--helpshort") for a in argv):  # absl's exits 1
        print(USAGE)
        sys.exit(0)
    if "--helpfull" not in argv:
        problem = usage_error(argv)
        if problem:
            print(f"nepa3d-jax: error: {problem}", file=sys.stderr)
            sys.exit(EXIT_USAGE)
    hostmem.reexec_with_hugepages()  # before any large allocation; see hostmem's docstring
    app.run(main)


if __name__ == "__main__":
    entry()
