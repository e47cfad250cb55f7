"""Review an ablation: which settings really differ, and did a run use what its config says.

  nepa3d-config diff configs/runA.py configs/runC.py          # two configs
  nepa3d-config diff configs/run{A,B,C,D}.py --markdown       # the whole matrix
  nepa3d-config diff --run runs/pretrain_abcd_1024_runA configs/runA.py  # run vs a file
  nepa3d-config diff --run runs/pretrain_abcd_1024_runA --show_source    # its recorded file
  nepa3d-config diff --run runs/old/last.pt configs/runA.py   # original .pt args
(`nepa3d-config diff` = `python -m nepa3d_jax.config diff` = `python -m nepa3d_jax.config_diff`.)

Configs are compared after defaults and derived values (sequence length, global batch,
effective LR, steps) for a stated device count (`--devices`, default 8 = 2 nodes x 4 GPUs).
`workdir` differs between runs by design and is left out unless `--include_workdir`.
`--run` exits with status 1 when the run differs from its config file. A run directory is
untrusted input: only its `config.json` is read. The config file it records is never imported
(`--show_source` prints it as text); give the file to compare with on the command line (the
recorded overrides are applied to it). Without one, the saved derived values are checked
against the saved resolved config. For an original `.pt` it
also compares the mixture (components in sampling order, roots, splits, backends, normalised
weights, samples per epoch, seed) with `nepa3d_jax.review.mix_check`, reading the run's
`mix_config` YAML when it can be found, and says so when it cannot.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any, Sequence

from nepa3d_jax import cli
from nepa3d_jax.config.derived import derive
from nepa3d_jax.config.loading import load_config
from nepa3d_jax.config.record import flatten
from nepa3d_jax.review.run_check import (Mismatch, check_run_dir, check_torch_ckpt, source_text,
                                         values_equal)

# Derived values that only restate the device count given on the command line.
_DERIVED_SKIP = ("num_devices", "num_processes", "max_len")
ABSENT = "—"


def resolved_fields(path: str, num_devices: int, overrides: Sequence[str] = (),
                    include_workdir: bool = False) -> dict[str, Any]:
    """Flat {field: value} of a config after defaults, plus `derived.*` values."""
    config = load_config(path, overrides)
    derived = derive(config, num_devices)
    flat = flatten(config)
    if flat.get("data.max_len") == -1:
        flat["data.max_len"] = f"-1 (={derived.max_len})"
    for key, value in derived.items():
        if key not in _DERIVED_SKIP:
            flat[f"derived.{key}"] = value
    if not include_workdir:
        flat.pop("workdir", None)
    return flat


def differing_rows(columns: Sequence[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """Fields whose value is not the same in every column (absent counts as a value)."""
    keys = sorted(set().union(*columns), key=lambda k: (k.startswith("derived."), k))
    rows = []
    for key in keys:
        values = [col.get(key, ABSENT) for col in columns]
        if not all(values_equal(values[0], v) for v in values[1:]):
            rows.append((key, values))
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def render_table(header: Sequence[str], rows: Sequence[Sequence[Any]], markdown: bool) -> str:
    cells = [[_fmt(v) for v in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(f"`{c}`" if i == 0 else c for i, c in enumerate(row)) + " |"
                  for row in cells]
        return "\n".join(lines)
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _run_label(path: str) -> str:
    return pathlib.Path(path.split(":", 1)[0]).stem


def diff_configs(paths: Sequence[str], num_devices: int, include_workdir: bool,
                 markdown: bool) -> str:
    columns = [resolved_fields(p, num_devices, include_workdir=include_workdir) for p in paths]
    rows = differing_rows(columns)
    labels = [_run_label(p) for p in paths]
    if len(set(labels)) < len(labels):
        labels = list(paths)
    title = f"fields that differ ({len(rows)}), derived values at {num_devices} devices"
    if not rows:
        return f"{title}: none"
    table = render_table(["field", *labels], [[k, *v] for k, v in rows], markdown)
    return f"{title}:\n\n{table}" if markdown else f"{title}:\n{table}"


def _report_mismatches(what: str, rows: Sequence[Mismatch], info: dict[str, Any],
                       markdown: bool) -> str:
    notes = ", ".join(f"{k}={v}" for k, v in info.items() if v not in (None, [], {}))
    if not rows:
        return f"OK: {what} matches its config ({notes})"
    table = render_table(["field", "ran", "config file"],
                         [[m.field, m.ran, m.intended] for m in rows], markdown)
    sep = "\n\n" if markdown else "\n"
    return f"MISMATCH: {what} differs from its config in {len(rows)} field(s) ({notes}):{sep}{table}"


def check_run(target: str, config_path: str | None, use_overrides: bool, markdown: bool,
              num_devices: int = 8) -> tuple[str, int]:
    if target.endswith(".pt") or pathlib.Path(target).is_file():
        if config_path is None:
            raise ValueError(f"{target}: an original checkpoint records no config file; "
                             "pass the config it should match as the second argument")
        rows, info = check_torch_ckpt(target, config_path, num_devices=num_devices)
    else:
        rows, info = check_run_dir(target, config_path, use_overrides=use_overrides)
    return _report_mismatches(target, rows, info, markdown), (1 if rows else 0)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = cli.ArgumentParser(prog="nepa3d-config diff", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*", help="config files (two or more), or with --run: "
                        "the config file to check against (default: the one the run recorded)")
    parser.add_argument("--run", metavar="WORKDIR_OR_PT",
                        help="a run directory (its config.json) or an original .pt checkpoint")
    parser.add_argument("--devices", type=int, default=8,
                        help="device count for derived values (default 8 = 2 nodes x 4 GPUs)")
    parser.add_argument("--include_workdir", action="store_true")
    parser.add_argument("--ignore_overrides", action="store_true",
                        help="with --run: compare with the bare config file, not file + overrides")
    parser.add_argument("--show_source", action="store_true",
                        help="with --run WORKDIR: print the config file the run recorded, as "
                        "text (it is never run)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.run and args.show_source:
            if args.configs or pathlib.Path(args.run).is_file():
                raise ValueError("--show_source takes a run directory and no config file")
            text, code = source_text(args.run), 0
        elif args.run:
            if len(args.configs) > 1:
                raise ValueError("--run takes at most one config file")
            text, code = check_run(args.run, args.configs[0] if args.configs else None,
                                   not args.ignore_overrides, args.markdown, args.devices)
        else:
            if len(args.configs) < 2:
                raise ValueError("give two or more config files (or --run WORKDIR [CONFIG])")
            text, code = diff_configs(args.configs, args.devices, args.include_workdir,
                                      args.markdown), 0
    except ValueError as err:
        print(f"config_diff: error: {err}", file=sys.stderr)
        return 2
    print(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
