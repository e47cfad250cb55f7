"""Compare evaluation results across runs: a Markdown table and a PNG bar chart.

  python -m nepa3d_jax.eval.compare results/runA results/runB results/runC results/runD \
      [--out results/compare_abcd]

Reads, from each folder (an eval-bundle folder `results/<run_tag>` or a run folder whose
`train.eval_after` wrote its results there), the result file of every registered evaluator
output (`nepa3d_jax.jobs`: `cls_scanobjectnn.json`, `cls_modelnet40.json`, `cpac_udf.json`,
and the frozen-feature probe's `probe.json`, which a study arm folder holds) and `bundle.json`
for the run tag and the evaluated checkpoint. A folder with none of them is
skipped with a warning naming what it holds; a file that is not JSON is read as missing,
with a warning. Writes `<out>.md` and `<out>.png` (default `<parent of the first dir>/compare`)
and prints the table and where it wrote them.

Rows are labelled by run (the shortest folder path that tells them apart) and, when known, the
pretraining config file. A missing or skipped result shows as `-`. Where the results carry
them, cells show `mean [95% interval]` and `*` marks a difference from the first row that is
significant (p < 0.05; the tests and p-values are listed under the table, see
`compare_stats`); the baselines each result carries (random-init, nn_copy) are listed under
the table and drawn beside each run's bar. Runs whose pretraining configs differ only in the
seed are grouped into one row (`--no-group` keeps them apart).
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

from nepa3d_jax import atomic_io, cli, jobs
from nepa3d_jax.eval import compare_stats

log = logging.getLogger(__name__)
BASELINES = ("random_init", "nn_copy")


class Column(NamedTuple):
    header: str                  # "CPAC MAE"
    stem: str                    # result file stem
    key: str                     # metric key in that file
    higher_is_better: bool
    paired: str                  # the job's paired-values hook ("" = none)
    always: bool = True          # False: shown only when some folder has a value (not a bundle
                                 # step, e.g. the probe a study arm holds)


def columns() -> list[Column]:
    """One column per metric of every registered evaluator output, in registry order."""
    return [Column(f"{out.label} {m.heading}", out.name, m.key, m.higher_is_better, job.paired,
                   out.in_bundle)
            for job, out in jobs.outputs(bundle_only=False)
            for m in job.metrics_of(out)]


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _baselines(result: dict | None, key: str) -> dict[str, tuple[float, tuple | None]]:
    """{baseline: (value, 95% interval or None)} that a result states for `key`."""
    out = {}
    for name in BASELINES:
        v = _number(((result or {}).get("baselines") or {}).get(name, {}).get(key))
        if v is None:
            continue
        block = (((result or {}).get("summary") or {}).get(name) or {}).get(key) or {}
        lo, hi = _number(block.get("ci_low")), _number(block.get("ci_high"))
        out[name] = (v, (lo, hi) if lo is not None and hi is not None else None)
    return out


def _config_name(run_dir: str) -> str:
    """The pretraining config file of the evaluated run (`config_source` of its record)."""
    folder = compare_stats.source(run_dir) or run_dir
    record = compare_stats.read_json(os.path.join(folder, "config.json"))
    source = ((record or {}).get("config_source") or {}).get("path") or ""
    return os.path.basename(str(source))


def load_run(run_dir: str, cols: Sequence[Column] | None = None) -> dict | None:
    """{"name", "values": {header: float|None}, "readout", "intervals", "paired",
    "baselines", "config_key", "config", "dir"}; None (with a warning) when the folder holds
    no result file compare knows."""
    if not os.path.isdir(run_dir):
        raise ValueError(f"results directory not found: {run_dir}")
    cols = columns() if cols is None else cols
    stems = list(dict.fromkeys(c.stem for c in cols))
    files = {stem: compare_stats.read_json(os.path.join(run_dir, stem + ".json")) for stem in stems}
    if not any(files.values()):
        found = sorted(f for f in os.listdir(run_dir) if f.endswith(".json"))
        log.warning("compare: %s: no readable %s (it holds %s); skipped", run_dir,
                    ", ".join(s + ".json" for s in stems), ", ".join(found) or "no JSON file")
        return None
    bundle = compare_stats.read_json(os.path.join(run_dir, "bundle.json")) or {}
    values, intervals, paired, base = {}, {}, {}, {}
    for col in cols:
        result = files[col.stem]
        values[col.header] = _number((result or {}).get(col.key))
        ci = compare_stats.interval(result, col.key)
        if ci is not None:
            intervals[col.header] = ci
        if col.paired and result:
            found = jobs.resolve(col.paired)(run_dir, result, col.key)
            if found is not None:
                paired[col.header] = found
        base[col.header] = _baselines(result, col.key)
    readout = ""
    for result in files.values():
        resolved = ((result or {}).get("settings") or {}).get("resolved") or {}
        if "xyz_only" in resolved:
            readout = "xyz-only" if resolved["xyz_only"] else "full-spec"
            break
    return dict(name=bundle.get("run_tag") or os.path.basename(os.path.normpath(run_dir)),
                tag=bundle.get("run_tag") or "",
                dir=os.path.normpath(run_dir), config=_config_name(run_dir),
                source=compare_stats.source(run_dir),
                values=values, readout=readout, intervals=intervals, paired=paired,
                baselines=base, config_key=compare_stats.config_key(run_dir))


def label_rows(runs: Sequence[dict]) -> None:
    """Unique row labels: the run name, or the shortest folder path telling equal names
    apart, plus the pretraining config file when known."""
    def suffix(path: str, n: int) -> str:
        parts = path.replace(os.sep, "/").split("/")
        return "/".join(parts[-n:])

    given = [r["name"] for r in runs]
    names = list(given)
    for i, r in enumerate(runs):
        if given.count(r["name"]) > 1:
            n = 2
            others = [o["dir"] for o in runs if o is not r and o["name"] == r["name"]]
            while n < 16 and any(suffix(o, n) == suffix(r["dir"], n) for o in others):
                n += 1
            names[i] = suffix(r["dir"], n)
    for i, name in enumerate(names):
        if names.count(name) > 1:  # the same folder given twice
            names[i] = f"{name} #{names[:i + 1].count(name)}"
    for r, name in zip(runs, names):
        r["name"] = f"{name} ({r['config']})" if r.get("config") else name


def significance(runs: Sequence[dict], cols: Sequence[Column]) -> dict[tuple[int, str], dict]:
    """{(row, header): test result} of every row against row 0, where data allow a test."""
    out = {}
    ref = runs[0]
    for i, r in enumerate(runs[1:], start=1):
        for col in cols:
            header = col.header
            if "members" in r or "members" in ref:
                a = r.get("member_values", {}).get(header, [r["values"][header]])
                b = ref.get("member_values", {}).get(header, [ref["values"][header]])
                res = compare_stats.welch([x for x in a if x is not None],
                                          [x for x in b if x is not None])
            else:
                kind, mine = r.get("paired", {}).get(header, (None, None))
                res = compare_stats.paired(ref.get("paired", {}).get(header, (None, None))[1], mine,
                                           kind) if kind else None
            if res is not None:
                out[(i, header)] = res
    return out


def _fmt(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def _cell(r: dict, header: str, best: dict, n_runs: int, sig: dict | None) -> str:
    v = r["values"][header]
    s = _fmt(v)
    if v is not None and n_runs > 1 and v == best.get(header):
        s = f"**{s}**"
    ci = r.get("intervals", {}).get(header)
    if v is not None and ci is not None:
        s += f" [{ci[0]:.4f}, {ci[1]:.4f}]"
    if sig is not None and sig.get("significant"):
        s += " *"
    return s


def _baseline_lines(runs: Sequence[dict], cols: Sequence[Column]) -> list[str]:
    lines = []
    for r in runs:
        parts = []
        for col in cols:
            for name, (v, ci) in (r.get("baselines") or {}).get(col.header, {}).items():
                interval = f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""
                parts.append(f"{name.replace('_init', '-init')} {col.header} {v:.4f}{interval}")
        if parts:
            lines.append(f"- {r['name']}: " + "; ".join(parts))
    return (["", "Baselines of each run (same evaluation, no pretraining):"] + lines
            if lines else [])


def markdown_table(runs: Sequence[dict], cols: Sequence[Column] | None = None) -> str:
    """One row per run; the best value of each column in bold; intervals and significance
    markers where the results carry them, the tests and the baselines listed under it."""
    cols = columns() if cols is None else cols
    sig = significance(runs, cols) if len(runs) > 1 else {}
    headers = ["run", "cls readout"] + [c.header for c in cols]
    best = {}
    for col in cols:
        vals = [r["values"][col.header] for r in runs if r["values"][col.header] is not None]
        if vals:
            best[col.header] = max(vals) if col.higher_is_better else min(vals)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for i, r in enumerate(runs):
        cells = [r["name"], r["readout"] or "-"]
        for col in cols:
            cells.append(_cell(r, col.header, best, len(runs), sig.get((i, col.header))))
        lines.append("| " + " | ".join(cells) + " |")
    if sig:
        lines.append("")
        lines.append(f"Against {runs[0]['name']} (`*`: p < 0.05; [..] = 95% interval):")
        for (i, header), res in sorted(sig.items()):
            lines.append(f"- {runs[i]['name']} {header}: {res['test']}, n={res['n']}, "
                         f"mean diff {res['mean_diff']:+.4f}, p={res['p']:.3g}"
                         + (" *" if res["significant"] else ""))
    lines += _baseline_lines(runs, cols)
    return "\n".join(lines) + "\n"


def compare(run_dirs: Sequence[str], out: str = "", group: bool = True,
            stems: Sequence[str] = ()) -> str:
    """Writes `<out>.md` and `<out>.png`; returns the Markdown table. `stems`: only the
    columns of these result files (e.g. the study's `cpac_udf`, `probe`); () = all."""
    if not run_dirs:
        raise ValueError("give at least one results directory")
    cols = [c for c in columns() if not stems or c.stem in stems]
    if not cols:
        raise ValueError(f"no compare column reads {', '.join(stems)}")
    runs = [r for r in (load_run(d, cols) for d in run_dirs) if r is not None]
    if not runs:
        raise ValueError("no folder holds a result compare can read: "
                         + ", ".join(run_dirs))
    cols = [c for c in cols if c.always or any(r["values"][c.header] is not None for r in runs)]
    label_rows(runs)
    if group:
        runs = compare_stats.group_runs(runs, [c.header for c in cols])
    table = markdown_table(runs, cols)
    out = output_prefix(run_dirs, out)
    atomic_io.write_text_atomic(out + ".md", table)
    from nepa3d_jax.eval import compare_chart

    compare_chart.bar_chart(runs, cols, out + ".png")
    return table


def output_prefix(run_dirs: Sequence[str], out: str = "") -> str:
    """`--out`, or `compare` beside the first folder."""
    return out or os.path.join(os.path.dirname(os.path.normpath(run_dirs[0])) or ".",
                               "compare")


def main(argv: Sequence[str] | None = None) -> int:
    ap = cli.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dirs", nargs="+", help="results/<run_tag> or run folders")
    ap.add_argument("--out", default="", help="output prefix for .md and .png")
    ap.add_argument("--no_group", action="store_true",
                    help="one row per directory even when runs differ only in the seed")
    args = ap.parse_args(argv)
    try:
        table = compare(args.run_dirs, args.out, group=not args.no_group)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    prefix = output_prefix(args.run_dirs, args.out)
    sys.stdout.write(table)
    print(f"\nwrote {prefix}.md and {prefix}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
