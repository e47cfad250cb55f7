"""The study's pictures: probe accuracy vs K, CPAC mae per recipe, loss curves (error bars are
the 95% t intervals over pretraining seeds)."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from nepa3d_jax.eval.figures import pyplot, save_png


def _save(plt, fig, path: str) -> str:
    fig.tight_layout()
    save_png(fig, path)  # the package's one atomic PNG writer
    plt.close(fig)
    return path


def _err(block: dict) -> tuple[float, float]:
    m = block["mean"]
    if block.get("ci_low") is None:
        return m, 0.0
    return m, (block["ci_high"] - block["ci_low"]) / 2


def probe_vs_k(summary: dict, shots: Sequence[int], path: str, chance: float | None,
               hand: dict | None = None) -> str:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (recipe, b) in enumerate(summary.items()):
        for arm, style in (("pretrained", "-o"), ("random_init", "--s")):
            pts = [(k, b["probe"][f"K{k}"]["logreg"][arm]) for k in shots
                   if "logreg" in b["probe"][f"K{k}"]]
            if not pts:
                continue
            xs = [k for k, _ in pts]
            ms, es = zip(*(_err(p) for _, p in pts))
            ax.errorbar(xs, ms, yerr=es, fmt=style, color=f"C{i}", capsize=3,
                        label=f"{recipe}: {arm.replace('_', '-')}")
    if hand:
        ks = [k for k in shots if f"K{k}" in hand]
        ax.plot(ks, [hand[f"K{k}"] for k in ks], "x--", color="black", lw=1,
                label="hand-crafted (D2 + PCA)")
    if chance is not None:
        ax.axhline(chance, color="grey", lw=1, ls=":", label="chance")
    ax.set_xticks(list(shots))
    ax.set_xlabel("labelled shapes per class (K)")
    ax.set_ylabel("test accuracy (points)")
    ax.set_title("Linear probe on frozen features (95% CI over pretraining seeds)")
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


def cpac_bars(summary: dict, path: str) -> str:
    plt = pyplot()

    recipes = [r for r, b in summary.items() if b.get("cpac_mae")]
    fig, ax = plt.subplots(figsize=(max(6.4, 1.8 * len(recipes) + 2), 4.0))
    width = 0.27
    for j, (name, label) in enumerate((("pretrained", "pretrained"),
                                       ("random_init", "random-init"), ("nn_copy", "nn_copy"))):
        ms, es = [], []
        for r in recipes:
            b = summary[r]
            block = b["nn_copy_mae"] if name == "nn_copy" else b["cpac_mae"][name]
            m, e = _err(block)
            ms.append(m)
            es.append(e)
        ax.bar(np.arange(len(recipes)) + (j - 1) * width, ms, width, yerr=es, capsize=3,
               label=label, color=f"C{j}")
    ax.set_xticks(np.arange(len(recipes)), recipes)
    ax.set_ylabel("CPAC-UDF mae (lower is better)")
    ax.set_title("CPAC-UDF per recipe (95% CI over pretraining seeds)")
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def loss_curves(arms: list[dict], path: str) -> str:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    recipes = list(dict.fromkeys(a["recipe"] for a in arms))
    for a in arms:
        losses = a["train"].get("losses") or []
        if not losses:
            continue
        steps, values = zip(*[(s, v) for s, v in losses if v is not None and v > 0])
        i = recipes.index(a["recipe"])
        ax.plot(steps, values, color=f"C{i}", lw=1, alpha=0.8,
                label=a["recipe"] if a["seed"] == min(b["seed"] for b in arms
                                                      if b["recipe"] == a["recipe"]) else None)
        ref = ((a["train"].get("collapse") or {}).get("typepos_only_loss"))
        if ref:
            ax.axhline(float(ref), color=f"C{i}", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("NEPA loss (log)")
    ax.set_title("Pretraining loss per seed (dotted: type+position-only predictor)")
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def all_plots(summary: dict, arms: list[dict], shots: Sequence[int], out_dir: str,
              hand: dict | None = None) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    chance = next(iter(summary.values())).get("chance")
    return dict(probe=probe_vs_k(summary, shots, os.path.join(out_dir, "probe_vs_k.png"), chance,
                                 hand),
                cpac=cpac_bars(summary, os.path.join(out_dir, "cpac_mae.png")),
                loss=loss_curves(arms, os.path.join(out_dir, "loss_curves.png")))
