"""Convert an original `.pt` checkpoint into one of our run directories.

    python -m nepa3d_jax.checkpoint.import_torch IN.pt OUT_DIR [--max_len N]

OUT_DIR gets a step-0 Orbax checkpoint holding only `params` plus `config.json` (the
original's args as our config, see `torch_args`), so `load_pretrained(OUT_DIR)` and every
evaluator read it like a run of ours.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Sequence

from nepa3d_jax import cli


def main(argv: Sequence[str] | None = None) -> int:
    ap = cli.ArgumentParser(prog="python -m nepa3d_jax.checkpoint.import_torch",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="original .pt (a dict with 'model' and 'args')")
    ap.add_argument("out_dir", help="run directory to create")
    ap.add_argument("--max_len", type=int, default=None,
                    help="resize the positional table to this length (linear interpolation)")
    ap.add_argument("--overwrite", action="store_true",
                    help="write into an existing run directory that already has checkpoints")
    args = ap.parse_args(argv)

    from nepa3d_jax.checkpoint import run_dir, torch_import
    from nepa3d_jax.checkpoint.lock import RunLock, RunLockedError

    out = pathlib.Path(args.out_dir)
    if out.exists() and not out.is_dir():
        print(f"error: {out} is a file, not a run directory", file=sys.stderr)
        return 2
    if (out / run_dir.CHECKPOINTS).is_dir() and any((out / run_dir.CHECKPOINTS).iterdir()) \
            and not args.overwrite:
        print(f"error: {out} already holds checkpoints (pass --overwrite)", file=sys.stderr)
        return 2
    try:
        config, params, spec = torch_import.import_torch_checkpoint(args.checkpoint,
                                                                    max_len=args.max_len)
    except (torch_import.CheckpointError, ValueError, OSError) as err:  # names file and key
        print(f"error: {err}", file=sys.stderr)
        return 2
    config.workdir = str(out)
    config.torch_source = str(args.checkpoint)
    try:
        with RunLock(out):  # never under a trainer that is still writing there
            removed = run_dir.clear_run(out) if args.overwrite else []
            run_dir.save_params_only(out, params, config)
    except RunLockedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if removed:
        print(f"--overwrite: removed the previous run's {', '.join(removed)} from {out}")
    print(f"imported {args.checkpoint} -> {out} (d_model={spec.d_model}, layers={spec.layers}, "
          f"heads={spec.heads}, max_len={spec.max_len}, n_types={spec.n_types})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
