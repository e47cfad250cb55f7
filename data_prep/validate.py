"""Check a cache root against the shared cache contract and print a table of problems.

  python -m data_prep.validate --cache_root cache [--splits train,test] \\
      [--backends mesh,pointcloud_noray,udfgrid] [--no_values] [--workers 4]

`--backends` defaults to the trainer's default backend (`mesh`), so a key the trainer would
find missing (e.g. `pt_dist_pool`) is flagged here too; name the backends your runs use.

`--cache_root` may also be a TFDS build of a cache root (`python -m data_prep.to_tfds`).

Layout (split and class folders, empty ones), then per file: readable archive, keys each
named backend reads, dtypes, ranks, pool lengths that agree, finite values and FPS-order
index ranges. The checks are `nepa3d_jax.data.schema`'s, the same the loaders run, so a root
that passes here loads there. Exit status 1 when any problem is found.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys

from nepa3d_jax.data import schema, tfds_source
from data_prep.runner import process_context
from nepa3d_jax import cli
from nepa3d_jax.process_pool import process_pool

# The backend a mixture component reads when its config names none (one owner: mixture.py).
# Checked when --backends is not given: the backend of Runs A/C/D's first component, the one
# that reads the most keys (pt_dist_pool among them).
DEFAULT_BACKEND = "mesh"
_LINE = re.compile(r"^(?P<path>.*?)(?: \[(?P<key>[^\]]*)\])?: (?P<msg>.*)$", re.S)


def required_keys(backends: list[str]) -> list:
    unknown = [b for b in backends if b not in schema.BACKEND_REQUIRED_KEYS]
    if unknown:
        raise ValueError(f"unknown backend(s) {unknown}; known: {', '.join(schema.BACKENDS)}")
    req: list = []
    for b in backends:
        req += [r for r in schema.BACKEND_REQUIRED_KEYS[b] if r not in req]
    return req


def validate_root(cache_root: str, splits: list[str], backends: list[str] = (),
                  check_values: bool = True, workers: int = 1) -> tuple[int, list[schema.Problem]]:
    """(number of files checked, problems)."""
    if tfds_source.find_build(cache_root) is not None:
        return validate_build(cache_root, splits, backends, check_values)
    problems = list(schema.check_cache_root(cache_root, splits))
    files = [f for s in splits for f in schema.list_cache_files(cache_root, s)]
    check = functools.partial(schema.check_cache_file, required_keys=required_keys(list(backends)),
                              check_values=check_values)
    if workers > 1 and len(files) > 1:
        with process_pool(workers, process_context()) as ex:
            results = list(ex.map(check, files, chunksize=16))
    else:
        results = [check(f) for f in files]
    for found in results:
        for text in found:
            m = _LINE.match(text)
            problems.append(schema.Problem(m["path"], m["key"] or "", m["msg"]) if m
                            else schema.Problem("", "", text))
    return len(files), problems


def validate_build(root: str, splits: list[str], backends: list[str] = (),
                   check_values: bool = True) -> tuple[int, list[schema.Problem]]:
    """The same checks on a `data_prep.to_tfds` build: headers from its index, then (values)
    every record decoded, which also proves each shard readable (errors name shard + record)."""
    from nepa3d_jax.data import sources

    required = required_keys(list(backends))
    problems: list[schema.Problem] = []
    n = 0
    for split in splits:
        try:
            src = sources.TfdsBuildSplit(root, split)
        except schema.CacheError as e:
            problems.append(schema.Problem(root, "", str(e)))
            continue
        problems += [schema.Problem(root, "", p) for p in src.layout_problems()]
        for i, name in enumerate(src.names):
            found = schema.check_headers(name, src.headers(i), required)
            if check_values and not found:
                found = src.check_values(i, set(schema.KEY_SPECS))
            problems += [_problem(text) for text in found]
        n += len(src)
    return n, problems


def _problem(text: str) -> schema.Problem:
    m = _LINE.match(text)
    return schema.Problem(m["path"], m["key"] or "", m["msg"]) if m else schema.Problem("", "", text)


def format_table(problems: list[schema.Problem]) -> str:
    rows = [("file", "key", "problem")] + [(p.path, p.key or "-", p.message) for p in problems]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows)


def main(argv: list[str] | None = None) -> int:
    ap = cli.ArgumentParser(prog="python -m data_prep.validate", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache_root", required=True)
    cli.add_list(ap, "--splits", default=("train", "test"), help="split folders")
    cli.add_list(ap, "--backends", default=(DEFAULT_BACKEND,),
                 help=f"of: {', '.join(schema.BACKENDS)}; default {DEFAULT_BACKEND}, the "
                      "trainer's default")
    ap.add_argument("--no_values", action="store_true", help="headers only (no NaN/index pass)")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)
    splits = [s for s in args.splits if s]
    backends = [b for b in args.backends if b]
    try:
        n, problems = validate_root(args.cache_root, splits, backends, not args.no_values,
                                    args.workers)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if problems:
        print(format_table(problems))
    print(f"checked {n} files under {args.cache_root} ({', '.join(splits)}): "
          f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
