"""Load a config file exactly as `--config path --config.a.b=v` would (ml_collections.config_flags).

Reusing the absl flag machinery (instead of re-implementing override parsing) guarantees that
`load_config("configs/runA.py", ["data.n_ray=0"])` and the command line agree on types, on
`path:arg` suffixes and on errors for unknown fields.

Config files import what they build on from the installed package
(`nepa3d_jax.train.pretrain_defaults`, the evaluators' `*_defaults` modules), so loading one from
any directory needs no sys.path edit.

Every loaded config (a file, main's absl flag, a `.pt`'s args) goes through `fill_defaults`: a
field the file leaves out takes the value of its job's defaults module (`nepa3d_jax.jobs`), so
the rest of the package reads `config.train.log_every_steps` directly and no module keeps a
fallback default of its own (tests/test_config_defaults.py checks this).
"""

from __future__ import annotations

import importlib
import pathlib
import warnings
from typing import Any, Mapping, Sequence

import ml_collections
from absl import flags
from ml_collections import config_flags

from nepa3d_jax import jobs

# A config without `job` is a pretraining config (what `main` runs it as).
DEFAULT_JOB = "pretrain"


def normalize_override(override: str) -> str:
    """Accepts `--config.a.b=v`, `config.a.b=v` or `a.b=v`; returns `--config.a.b=v`."""
    text = override.strip()
    if text.startswith("--"):
        text = text[2:]
    if not text.startswith("config."):
        text = "config." + text
    if "=" not in text:
        raise ValueError(f"config override {override!r} must look like `a.b=value`")
    return "--" + text


def load_config(path: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """Returns the config `path` (optionally `path:arg`) with `overrides` applied, unlocked.

    Raises ValueError naming the file or the override when either is invalid.
    """
    file_part = str(path).split(":", 1)[0]
    if not pathlib.Path(file_part).is_file():
        raise ValueError(f"config file not found: {file_part}")
    if pathlib.Path(file_part).suffix != ".py":
        raise ValueError(f"{file_part}: not a config file (a Python file like configs/demo.py "
                         "with get_config())")
    flag_values = flags.FlagValues()
    argv = ["load_config", f"--config={path}", *(normalize_override(o) for o in overrides)]
    config_flags.DEFINE_config_file(
        "config", str(path), flag_values=flag_values, lock_config=True, sys_argv=argv)
    try:
        with warnings.catch_warnings():  # config_flags still uses importlib's load_module()
            warnings.simplefilter("ignore", DeprecationWarning)
            flag_values(argv)
    except AttributeError as err:
        if "get_config" in str(err):
            raise ValueError(f"{file_part}: defines no get_config() (a config file returns its "
                             "ConfigDict from get_config(), see configs/demo.py)") from None
        raise ValueError(f"cannot load config {path} with overrides {list(overrides)}: {err}") from err
    except (flags.Error, KeyError, TypeError) as err:
        raise ValueError(f"cannot load config {path} with overrides {list(overrides)}: {err}") from err
    except (SyntaxError, ValueError, UnicodeDecodeError) as err:  # not Python (a .pt, a .json)
        raise ValueError(f"{file_part}: not a Python config file ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''})") from None
    except Exception as err:  # the file's own code failed (NameError, ImportError, ...)
        raise ValueError(f"{file_part}: get_config() failed ({type(err).__name__}: {err})") from None
    config = flag_values.config
    # A plain copy: callers may add fields (e.g. tests), and the original stays as parsed.
    return fill_defaults(ml_collections.ConfigDict(config.to_dict()))


def _named_maps(job: jobs.Job) -> Mapping[str, Mapping[str, Any]]:
    """`NAMED_MAPS` of the job's defaults module: dotted field -> defaults of each named entry.

    Such a field (e.g. `data.mix`) holds entries the user names; the defaults' own entries are
    an example, never added to a config that names its own.
    """
    module = importlib.import_module(job.defaults.partition(":")[0])
    return getattr(module, "NAMED_MAPS", {})


def _fill(node: ml_collections.ConfigDict, defaults: ml_collections.ConfigDict, where: str,
          named: Mapping[str, Mapping[str, Any]]) -> None:
    for key, value in defaults.items():
        dotted = f"{where}{key}"
        if key not in node:
            with node.ignore_type():
                node[key] = (ml_collections.ConfigDict(value.to_dict())
                             if isinstance(value, ml_collections.ConfigDict) else value)
        elif dotted in named:
            for entry in node[key].values():
                if isinstance(entry, ml_collections.ConfigDict):
                    for field, default in named[dotted].items():
                        if field not in entry:
                            entry[field] = default
        elif (isinstance(value, ml_collections.ConfigDict)
              and isinstance(node[key], ml_collections.ConfigDict)):
            _fill(node[key], value, dotted + ".", named)


def fill_defaults(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """`config` (edited in place and returned) with every field it lacks taken from its job's
    defaults (`jobs.default_config(config.job)`; no `job`: "pretrain").

    Fields the defaults do not know are kept (a config file may add blocks, e.g. `eval`). A
    config naming no registered job is left as it is: validation names `config.job` together
    with any other problem. Filling twice changes nothing.
    """
    name = str(config["job"]) if "job" in config else DEFAULT_JOB
    if name not in jobs.JOBS:
        return config
    _fill(config, jobs.default_config(name), "", _named_maps(jobs.JOBS[name]))
    return config
