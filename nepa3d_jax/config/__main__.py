"""`nepa3d-config` (= `python -m nepa3d_jax.config`): check a config, or diff configs and runs.

  nepa3d-config --config F [--devices 8] [--config.a.b=v ...]   # check (also `check --config F`)
  nepa3d-config diff A.py B.py | diff --run WORKDIR_OR_PT [F]     # see `nepa3d-config diff --help`

The check loads the file as `main` would, validates it, prints the resolved config with the
derived values for `--devices` and the start-up guard warnings. Exit status 2 on an invalid
config. Runs no device code, so the PBS head node checks the config in about a second.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from nepa3d_jax import cli
from nepa3d_jax.config import ConfigError, derive, guard_warnings, load_config, validate


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["diff"]:
        from nepa3d_jax.review import diff

        return diff.main(argv[1:])
    if argv[:1] == ["check"]:
        argv = argv[1:]
    parser = cli.ArgumentParser(prog="nepa3d-config", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--quiet", action="store_true", help="print only problems and warnings")
    args, rest = parser.parse_known_args(argv)
    bad = [r for r in rest if not r.startswith(("--config.", "config."))]
    if bad:
        parser.error(f"unrecognised arguments: {' '.join(bad)}")
    try:
        config = load_config(args.config, rest)
        validate(config)
        derived = derive(config, args.devices)
    except (ConfigError, ValueError) as err:
        print(f"{args.config}: {err}", file=sys.stderr)
        return 2
    for warning in guard_warnings(config, derived):
        print(f"WARNING: {warning}", file=sys.stderr)
    if not args.quiet:
        print(json.dumps({**config.to_dict(), "derived": derived.to_dict()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
