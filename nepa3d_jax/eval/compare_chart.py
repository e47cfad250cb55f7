"""The chart of `compare`: one panel per metric that any row reports (no empty panels), one
group of bars per row: the pretrained result with its 95% interval and, beside it, the
baselines the same evaluation scored (random-init, nn_copy), so a bar is read against what
no pretraining gives."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

from nepa3d_jax import atomic_io

BASELINE_STYLE = {"random_init": dict(color="#9e9e9e", hatch="//", label="random-init"),
                  "nn_copy": dict(color="#e0e0e0", hatch="..", label="nn_copy")}


def panels(runs: Sequence[dict], cols: Sequence) -> list:
    """The columns with at least one value (a row's or a baseline's)."""
    return [c for c in cols
            if any(r["values"].get(c.header) is not None
                   or (r.get("baselines") or {}).get(c.header) for r in runs)]


def _err(value: float | None, ci: tuple | None) -> tuple[float, float]:
    if value is None or ci is None:
        return 0.0, 0.0
    return max(value - ci[0], 0.0), max(ci[1] - value, 0.0)


def bar_chart(runs: Sequence[dict], cols: Sequence, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    shown = panels(runs, cols)
    n = max(1, len(shown))
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    width = max(3.6, 1.1 * len(runs) + 1.8)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, 3.6 * nrows + 0.6),
                             squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    names = [textwrap.fill(r["name"], 22) for r in runs]
    used = set()
    for ax, col in zip(axes.flat, shown):
        kinds = [k for k in BASELINE_STYLE
                 if any(k in (r.get("baselines") or {}).get(col.header, {}) for r in runs)]
        slots = 1 + len(kinds)
        w = 0.8 / slots
        for i, r in enumerate(runs):
            v = r["values"].get(col.header)
            x0 = i - 0.4 + w / 2
            if v is not None:
                err = _err(v, r.get("intervals", {}).get(col.header))
                ax.bar(x0, v, w, color=colors[i % len(colors)], yerr=[[e] for e in err],
                       capsize=3, ecolor="black")
                ax.text(x0, v + err[1], f"{v:.3f}", ha="center", va="bottom", fontsize=7)
            else:
                ax.text(x0, 0.0, "-", ha="center", va="bottom", fontsize=8)
            for j, kind in enumerate(kinds, start=1):
                found = (r.get("baselines") or {}).get(col.header, {}).get(kind)
                if found is None:
                    continue
                bv, ci = found
                style = BASELINE_STYLE[kind]
                err = _err(bv, ci)
                ax.bar(x0 + j * w, bv, w, color=style["color"], hatch=style["hatch"],
                       edgecolor="#555555", yerr=[[e] for e in err], capsize=3,
                       ecolor="black")
                ax.text(x0 + j * w, bv + err[1], f"{bv:.3f}", ha="center", va="bottom",
                        fontsize=6)
                used.add(kind)
        ax.set_xticks(range(len(runs)), names, rotation=20, ha="right", fontsize=7)
        ax.set_title(f"{col.header} ({'higher' if col.higher_is_better else 'lower'} is better)",
                     fontsize=9)
        ax.margins(y=0.12)
    for ax in list(axes.flat)[len(shown):]:
        ax.set_visible(False)
    if not shown:
        axes.flat[0].text(0.5, 0.5, "no metric to draw", ha="center", va="center")
        axes.flat[0].set_visible(True)
        axes.flat[0].set_axis_off()
    handles = [Patch(facecolor="#1f77b4", label="pretrained (bar colour = row); "
                     "error bar = 95% interval")]
    handles += [Patch(facecolor=BASELINE_STYLE[k]["color"], hatch=BASELINE_STYLE[k]["hatch"],
                      edgecolor="#555555", label=BASELINE_STYLE[k]["label"])
                for k in BASELINE_STYLE if k in used]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    with atomic_io.atomic_open(path, "wb") as f:  # no half-written picture on an error
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)
