"""`nepa3d-config` (= `python -m nepa3d_jax.config`): check a config, or diff configs and runs.

  nepa3d-config --config F [--devices 8] [--config.a.b=v ...]   # check (also `check --config F`)
  nepa3d-config diff A.py B.py | diff --run WORKDIR_OR_PT [F]     # see `nepa3d-config diff --help`

The check loads the file as `main` would and runs the start-up checks of the job it names
(pretrain: validation, derived values for `--devices`, guard warnings; cpac_udf, finetune_cls,
eval_bundle: the evaluator's own field checks, so their `ckpt` and `cache_root` must exist:
give them as `--config.ckpt=runs/demo`), then prints the resolved config. Overrides may be
written in snake_case or kebab-case. Exit status 2 on an invalid config, with one line naming
the file or field. Runs no device code, so the PBS head node checks a config in seconds.
Configs live in configs/ (demo.py, runA-D.py, cpac_udf.py, cls_*.py, eval_bundle.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from nepa3d_jax import cli, jobs
from nepa3d_jax.config import ConfigError, derive, guard_warnings, load_config, validate
from nepa3d_jax.config.overrides import override_error, snake_override


USAGE = ("nepa3d-config --config FILE [--devices N] [--quiet] [--config.a.b=VALUE ...]\n"
         "       nepa3d-config diff A.py B.py ... | diff --run WORKDIR_OR_PT [FILE]\n"
         "FILE: a config from configs/ (demo.py, runA.py ... runD.py, cpac_udf.py, cls_*.py, "
         "eval_bundle.py)")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["diff"]:
        from nepa3d_jax.review import diff

        return diff.main(argv[1:])
    if argv[:1] == ["check"]:
        argv = argv[1:]
    parser = cli.ArgumentParser(prog="nepa3d-config", description=__doc__, usage=USAGE,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, metavar="FILE",
                        help="a config file from configs/ (e.g. configs/demo.py)")
    parser.add_argument("--devices", type=int, default=8,
                        help="device count for the derived values of a pretraining config")
    parser.add_argument("--quiet", action="store_true", help="print only problems and warnings")
    args, rest = parser.parse_known_args([snake_override(a) for a in argv])
    bad = [r for r in rest if not r.startswith(("--config.", "config."))]
    if bad:
        parser.error(f"unrecognised arguments: {' '.join(bad)}")
    problem = override_error(args.config, rest)
    if problem:
        print(f"nepa3d-config: error: {problem}", file=sys.stderr)
        return 2
    derived = None
    try:
        config = load_config(args.config, rest)
        validate(config)
        if str(config.job) == "pretrain":  # load_config filled `job` (pretrain when absent)
            derived = derive(config, args.devices)
        else:
            jobs.check(config)
    except (ConfigError, ValueError) as err:
        print(f"{args.config}: {err}", file=sys.stderr)
        return 2
    resolved = config.to_dict()
    if derived is not None:
        for warning in guard_warnings(config, derived):
            print(f"WARNING: {warning}", file=sys.stderr)
        resolved["derived"] = derived.to_dict()
    if not args.quiet:
        print(json.dumps(resolved, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
