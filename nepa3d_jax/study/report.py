"""The study's numbers: per recipe, pretrained vs its own random init over pretraining seeds.

Every figure is a per-seed difference (pretrained - random init, both from the same run's config
and seed), summarised by its mean and Student's t 95% interval with the pretraining seed as the
unit, and a paired t-test over seeds (`eval.stats`). Probe accuracies are in points (x100); the
CPAC delta is in mae (negative = pretrained better). `nn_copy` (the nearest context point's
distance) is reported beside CPAC because it needs no learning at all.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from nepa3d_jax.eval import stats

PROBE_KEYS = ("logreg", "knn1", "knn5")


def _cpac_mae(arm: dict, name: str) -> float | None:
    block = ((arm["cpac"].get("summary") or {}).get(name) or {}).get("mae") or {}
    return None if block.get("mean") is None else float(block["mean"])


def _pair(pre: Sequence[float], rnd: Sequence[float], scale: float) -> dict[str, Any]:
    pre = np.asarray(pre, np.float64) * scale
    rnd = np.asarray(rnd, np.float64) * scale
    out = {"pretrained": stats.t_interval(pre), "random_init": stats.t_interval(rnd),
           "delta": stats.t_interval(pre - rnd), "test": stats.paired_test(pre, rnd, "t")}
    return out


def summarise(arms: list[dict], shots: Sequence[int]) -> dict[str, Any]:
    """{recipe: {"probe": {K<k>: {metric: pair}}, "cpac_mae": pair, "nn_copy": interval,
    "seeds": [...]}} from the arms' numbers."""
    out: dict[str, Any] = {}
    for recipe in dict.fromkeys(a["recipe"] for a in arms):
        rows = sorted((a for a in arms if a["recipe"] == recipe), key=lambda a: a["seed"])
        block: dict[str, Any] = {"seeds": [a["seed"] for a in rows], "probe": {}}
        for k in shots:
            block["probe"][f"K{k}"] = {}
            for m in PROBE_KEYS:
                pre = [a["probe"]["summary"]["pretrained"][f"K{k}"].get(m) for a in rows]
                rnd = [a["probe"]["summary"].get("random_init", {}).get(f"K{k}", {}).get(m)
                       for a in rows]
                if None in pre or None in rnd:
                    continue
                block["probe"][f"K{k}"][m] = _pair(pre, rnd, 100.0)
        block["finetune"] = {}
        for kk in rows[0].get("finetune", {}):
            pre = [a["finetune"][kk].get("pretrained") for a in rows]
            rnd = [a["finetune"][kk].get("random_init") for a in rows]
            if None not in pre and None not in rnd:
                block["finetune"][kk] = _pair(pre, rnd, 100.0)
        pre = [_cpac_mae(a, "pretrained") for a in rows]
        rnd = [_cpac_mae(a, "random_init") for a in rows]
        if None not in pre and None not in rnd:
            block["cpac_mae"] = _pair(pre, rnd, 1.0)
        nn = [_cpac_mae(a, "nn_copy") for a in rows]
        if None not in nn:
            block["nn_copy_mae"] = stats.t_interval(nn)
        chance = rows[0]["probe"]["protocol"].get("chance")
        block["chance"] = None if chance is None else 100.0 * float(chance)
        block["final_loss"] = stats.t_interval([a["train"]["final_loss"] for a in rows
                                                if a["train"].get("final_loss") is not None])
        out[recipe] = block
    return out


def _fmt(block: dict | None, digits: int = 1) -> str:
    if not block or block.get("mean") is None:
        return "-"
    if block.get("ci_low") is None:
        return f"{block['mean']:.{digits}f}"
    return f"{block['mean']:.{digits}f} [{block['ci_low']:.{digits}f}, {block['ci_high']:.{digits}f}]"


def _delta_text(pair: dict | None, digits: int) -> str:
    if not pair:
        return "-"
    p = pair["test"].get("p")
    return f"{_fmt(pair['delta'], digits)}" + (f" (p={p:.2g})" if p is not None else "")


def markdown(summary: dict, shots: Sequence[int], preset: str, descriptions: dict[str, str],
             baseline: dict | None = None, verdict_lines: dict[str, list[str]] | None = None
             ) -> str:
    """The results table: one row per recipe, intervals over pretraining seeds."""
    lines = [f"# Study `{preset}`: pretrained vs its own random init", "",
             "Mean [95% t interval over pretraining seeds] (paired t-test p). Probe accuracy in "
             "points (logistic probe, C by cross-validation; K labelled shapes per class, "
             "fixed episodes shared by both arms); CPAC mae (lower is better).", ""]
    head = ["recipe", "seeds"] + [f"probe K={k}: pretrained" for k in shots] + \
        [f"probe K={k}: delta" for k in shots] + ["kNN-1 K=max: delta", "CPAC mae: pretrained",
                                                  "CPAC mae: random-init", "CPAC delta",
                                                  "nn_copy mae"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    kmax = f"K{max(shots)}"
    for recipe, b in summary.items():
        cells = [f"`{recipe}`", str(len(b["seeds"]))]
        cells += [_fmt((b["probe"][f"K{k}"].get("logreg") or {}).get("pretrained")) for k in shots]
        cells += [_delta_text(b["probe"][f"K{k}"].get("logreg"), 1) for k in shots]
        cells.append(_delta_text(b["probe"][kmax].get("knn1"), 1))
        cpac = b.get("cpac_mae")
        cells += [_fmt((cpac or {}).get("pretrained"), 4), _fmt((cpac or {}).get("random_init"), 4),
                  _delta_text(cpac, 4), _fmt(b.get("nn_copy_mae"), 4)]
        lines.append("| " + " | ".join(cells) + " |")
    ft = [(r, kk, pair) for r, b in summary.items() for kk, pair in b.get("finetune", {}).items()]
    if ft:
        lines += ["", "Few-shot fine-tuning (test accuracy in points; both arms on the same "
                  "K-shot files):", "", "| recipe | K | pretrained | random-init | delta |",
                  "|---|---|---|---|---|"]
        lines += [f"| `{r}` | {kk[1:]} | {_fmt(p['pretrained'])} | {_fmt(p['random_init'])} | "
                  f"{_delta_text(p, 1)} |" for r, kk, p in ft]
    for recipe, said in (verdict_lines or {}).items():
        if said:
            lines += ["", f"Verdicts for `{recipe}` (paired t-test over pretraining seeds):"]
            lines += [f"- {v}" for v in said]
    lines += ["", "Recipes:"] + [f"- `{r}`: {d}" for r, d in descriptions.items()]
    chance = next(iter(summary.values())).get("chance")
    if chance is not None:
        lines.append(f"\nChance: {chance:.1f} points.")
    if baseline:
        lines.append("Hand-crafted baseline (no learning): " + ", ".join(
            f"{k} {v:.1f}" for k, v in baseline.items()) + " points.")
    return "\n".join(lines) + "\n"


def verdicts(summary: dict, steps: int | None = None) -> dict[str, list[str]]:
    """Per recipe, the verdict lines (`eval.verdict`, the one wording of the project) of its
    probe at each K and of CPAC, from the per-seed paired values (t-test over seeds)."""
    from nepa3d_jax.eval.verdict import verdict_from_units

    out: dict[str, list[str]] = {}
    for recipe, b in summary.items():
        lines = []
        for kk, metrics in b["probe"].items():
            pair = metrics.get("logreg")
            if pair:
                v = verdict_from_units(
                    f"probe accuracy {kk}", True,
                    {"pretrained": pair["pretrained"]["per_seed"],
                     "random_init": pair["random_init"]["per_seed"]}, "t", steps)
                if v:
                    lines.append(v)
        cpac = b.get("cpac_mae")
        if cpac:
            units = {"pretrained": cpac["pretrained"]["per_seed"],
                     "random_init": cpac["random_init"]["per_seed"]}
            if b.get("nn_copy_mae"):
                units["nn_copy"] = b["nn_copy_mae"]["per_seed"]
            v = verdict_from_units("CPAC mae", False, units, "t", steps)
            if v:
                lines.append(v)
        out[recipe] = lines
    return out


def value_line(summary: dict, recipe: str) -> str:
    """`pretrain value: recipe=<name> probe5_delta=... cpac_delta=... nn_copy=...`"""
    b = summary[recipe]

    def delta(pair: dict | None, digits: int) -> str:
        d = (pair or {}).get("delta") or {}
        if d.get("mean") is None:
            return "n/a"
        if d.get("ci_low") is None:
            return f"{d['mean']:+.{digits}f} [n/a]"
        return f"{d['mean']:+.{digits}f} [{d['ci_low']:+.{digits}f}, {d['ci_high']:+.{digits}f}]"

    probe = b["probe"]
    parts = [f"recipe={recipe}"]
    for k in (5, 10):
        parts.append(f"probe{k}_delta=" + delta((probe.get(f"K{k}") or {}).get("logreg"), 1))
    kmax = f"K{max(int(k[1:]) for k in probe)}"
    parts.append("knn_delta=" + delta(probe[kmax].get("knn1"), 1))
    parts.append("cpac_delta=" + delta(b.get("cpac_mae"), 4))
    nn = (b.get("nn_copy_mae") or {}).get("mean")
    parts.append("nn_copy=" + ("n/a" if nn is None else f"{nn:.4f}"))
    return "pretrain value: " + " ".join(parts)
