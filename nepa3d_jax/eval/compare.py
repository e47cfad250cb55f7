"""Compare eval-bundle results across runs: a Markdown table and a PNG bar chart.

  python -m nepa3d_jax.eval.compare results/runA results/runB results/runC results/runD \
      [--out results/compare_abcd]

Reads `cls_scanobjectnn.json`, `cls_modelnet40.json`, `cpac_udf.json` (and `bundle.json`
for skip reasons) from each directory; writes `<out>.md` and `<out>.png` (default
`<parent of the first dir>/compare`) and prints the table. A missing or skipped result
shows as `-`. Where the results carry them, cells show `mean [95% interval]` and `*` marks
a difference from the first row that is significant (p < 0.05; the tests and p-values are
listed under the table, see `compare_stats`); the PNG draws the intervals as error bars.
Runs whose pretraining configs differ only in the seed are grouped into one row
(`--no-group` keeps them apart).
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Sequence

from nepa3d_jax import cli
from nepa3d_jax.eval import compare_stats as cs

# (column header, result file stem, key, higher is better)
COLUMNS = (
    ("ScanObjectNN test_acc", "cls_scanobjectnn", "test_acc", True),
    ("ScanObjectNN best_val", "cls_scanobjectnn", "best_val", True),
    ("ModelNet40 test_acc", "cls_modelnet40", "test_acc", True),
    ("CPAC MAE", "cpac_udf", "mae", False),
    ("CPAC RMSE", "cpac_udf", "rmse", False),
    ("CPAC IoU@tau", "cpac_udf", "iou@tau", True),
)


def _read(path: str) -> dict | None:
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def load_run(run_dir: str) -> dict:
    """{"name", "values": {header: float|None}, "readout": str}."""
    if not os.path.isdir(run_dir):
        raise ValueError(f"results directory not found: {run_dir}")
    files = {stem: _read(os.path.join(run_dir, stem + ".json"))
             for stem in {c[1] for c in COLUMNS}}
    bundle = _read(os.path.join(run_dir, "bundle.json")) or {}
    values, intervals, paired = {}, {}, {}
    for header, stem, key, _ in COLUMNS:
        v = (files[stem] or {}).get(key)
        values[header] = float(v) if isinstance(v, (int, float)) else None
        ci = cs.interval(files[stem], key)
        if ci is not None:
            intervals[header] = ci
        if stem == "cpac_udf":
            per = cs.cpac_per_shape(run_dir, files[stem])
            paired[header] = ("wilcoxon", per.get(key) if per else None)
        elif key == "test_acc":
            paired[header] = ("t", cs.cls_per_seed(files[stem], key))
    scan = files["cls_scanobjectnn"] or {}
    resolved = scan.get("settings", {}).get("resolved", {})
    readout = "" if not resolved else ("xyz-only" if resolved.get("xyz_only") else "full-spec")
    return dict(name=bundle.get("run_tag") or os.path.basename(os.path.normpath(run_dir)),
                values=values, readout=readout, intervals=intervals, paired=paired,
                config_key=cs.config_key(run_dir))


def significance(runs: Sequence[dict]) -> dict[tuple[int, str], dict]:
    """{(row, header): test result} of every row against row 0, where data allow a test."""
    out = {}
    ref = runs[0]
    for i, r in enumerate(runs[1:], start=1):
        for header, *_ in COLUMNS:
            if "members" in r or "members" in ref:
                a = r.get("member_values", {}).get(header, [r["values"][header]])
                b = ref.get("member_values", {}).get(header, [ref["values"][header]])
                res = cs.welch([x for x in a if x is not None], [x for x in b if x is not None])
            else:
                kind, mine = r.get("paired", {}).get(header, (None, None))
                res = cs.paired(ref.get("paired", {}).get(header, (None, None))[1], mine,
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


def markdown_table(runs: Sequence[dict]) -> str:
    """One row per run; the best value of each column in bold; intervals and significance
    markers where the results carry them, the tests listed under the table."""
    sig = significance(runs) if len(runs) > 1 else {}
    headers = ["run", "cls readout"] + [c[0] for c in COLUMNS]
    best = {}
    for header, _, _, higher in COLUMNS:
        vals = [r["values"][header] for r in runs if r["values"][header] is not None]
        if vals:
            best[header] = max(vals) if higher else min(vals)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for i, r in enumerate(runs):
        cells = [r["name"], r["readout"] or "-"]
        for header, *_ in COLUMNS:
            cells.append(_cell(r, header, best, len(runs), sig.get((i, header))))
        lines.append("| " + " | ".join(cells) + " |")
    if sig:
        lines.append("")
        lines.append(f"Against {runs[0]['name']} (`*`: p < 0.05; [..] = 95% interval):")
        for (i, header), res in sorted(sig.items()):
            lines.append(f"- {runs[i]['name']} {header}: {res['test']}, n={res['n']}, "
                         f"mean diff {res['mean_diff']:+.4f}, p={res['p']:.3g}"
                         + (" *" if res["significant"] else ""))
    return "\n".join(lines) + "\n"


def bar_chart(runs: Sequence[dict], path: str) -> None:
    """One panel per metric, one bar per run (missing values leave a gap)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(COLUMNS), figsize=(3.0 * len(COLUMNS), 3.4))
    names = [r["name"] for r in runs]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (header, _, _, higher) in zip(axes, COLUMNS):
        vals = [r["values"][header] for r in runs]
        xs = range(len(runs))
        err = [[0.0] * len(runs), [0.0] * len(runs)]
        for i, r in enumerate(runs):
            ci = r.get("intervals", {}).get(header)
            if ci is not None and vals[i] is not None:
                err[0][i], err[1][i] = max(vals[i] - ci[0], 0.0), max(ci[1] - vals[i], 0.0)
        ax.bar(xs, [0.0 if v is None else v for v in vals],
               color=[colors[i % len(colors)] for i in xs], yerr=err, capsize=3,
               ecolor="black")
        for x, v in zip(xs, vals):
            ax.text(x, 0.0 if v is None else v, "-" if v is None else f"{v:.3f}", ha="center",
                    va="bottom", fontsize=7)
        ax.set_xticks(list(xs), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{header}\n({'higher' if higher else 'lower'} is better)", fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def compare(run_dirs: Sequence[str], out: str = "", group: bool = True) -> str:
    """Writes `<out>.md` and `<out>.png`; returns the Markdown table."""
    if not run_dirs:
        raise ValueError("give at least one results directory")
    runs = [load_run(d) for d in run_dirs]
    if group:
        runs = cs.group_runs(runs, COLUMNS)
    table = markdown_table(runs)
    out = out or os.path.join(os.path.dirname(os.path.normpath(run_dirs[0])) or ".", "compare")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + ".md", "w") as f:
        f.write(table)
    bar_chart(runs, out + ".png")
    return table


def main(argv: Sequence[str] | None = None) -> int:
    ap = cli.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dirs", nargs="+", help="results/<run_tag> directories")
    ap.add_argument("--out", default="", help="output prefix for .md and .png")
    ap.add_argument("--no-group", action="store_true",
                    help="one row per directory even when runs differ only in the seed")
    args = ap.parse_args(argv)
    sys.stdout.write(compare(args.run_dirs, args.out, group=not args.no_group))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
