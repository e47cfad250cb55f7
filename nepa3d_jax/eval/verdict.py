"""The verdict: the one sentence that says what a pretrained-vs-baselines comparison shows.

Every reader of results (the demo's closing summary, `results.json`'s headline, the eval
bundle, a study across runs) words it here, so the rules hold everywhere:
* "better" / "worse" only with a significant paired test (p < `stats.ALPHA`); otherwise
  "no significant difference", with the p-value;
* the strongest baseline is named when it is not random-init (e.g. nn_copy beating both);
* a run pretrained for fewer than `FEW_STEPS` steps is flagged: the demo read "significantly
  better than random-init (p=0.0085)" after 30 steps and "no significant difference" after
  300 (p=0.30) and 1000 (p=0.71) (docs/evaluation.md), so a short run's reading is not the
  method's.

Two entry points: `verdict` from summary numbers and p-values (what result files hold) and
`verdict_from_units` from paired per-unit values (per shape or per seed), which runs the test.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from nepa3d_jax.eval import stats

FEW_STEPS = 10_000
PRETRAINED = "pretrained"
RANDOM_INIT = "random_init"


def display(name: str) -> str:
    """How a model is named in text: `random_init` -> `random-init`."""
    return name.replace("_init", "-init")


def format_p(p: float | None) -> str:
    """p-values as a reader wants them: 0.30, 0.0085, <0.0001."""
    if p is None:
        return "no test"
    if p < 1e-4:
        return "<0.0001"
    return f"{p:.4f}" if p < 0.01 else f"{p:.2f}"


def _p(p: float | None) -> str:
    text = format_p(p)
    return f"p{text}" if text.startswith("<") else f"p={text}"


def _mean(score: Any) -> float | None:
    value = score.get("mean") if isinstance(score, Mapping) else score
    return None if value is None else float(value)


def _against(name: str, better: bool, p: float | None) -> str:
    if p is None:
        return f"not tested against {display(name)} (too few paired values)"
    if p >= stats.ALPHA:
        return f"no significant difference from {display(name)} ({_p(p)})"
    return f"significantly {'better' if better else 'worse'} than {display(name)} ({_p(p)})"


def _strongest(name: str, beats_pretrained: bool, p: float | None) -> str:
    if beats_pretrained:
        if p is not None and p < stats.ALPHA:
            return f"{display(name)} is best ({_p(p)})"
        return f"{display(name)} has the best mean, not significantly ({_p(p)})"
    if p is not None and p < stats.ALPHA:
        return f"pretrained is best ({_p(p)} against {display(name)}, the strongest baseline)"
    return f"pretrained has the best mean, not significantly above {display(name)} ({_p(p)})"


def length_note(steps: int | None) -> str | None:
    """The caveat for a short pretraining run, or None."""
    if steps is None or int(steps) >= FEW_STEPS:
        return None
    return (f"after only {int(steps)} pretraining steps this reading can change with "
            "training length")


def verdict(metric: str, higher_is_better: bool, scores: Mapping[str, Any],
            p: Mapping[str, float | None], steps: int | None = None) -> str | None:
    """One sentence on `scores` (model name -> mean, or a mapping with "mean"; "pretrained"
    plus baselines such as "random_init", "nn_copy") given `p` (baseline name -> two-sided
    p-value of the paired test pretrained vs that baseline; None = no test). `steps`: the
    checkpoint's pretraining steps, when known. None without a pretrained mean or baseline.

    >>> verdict("CPAC mae", False, {"pretrained": 0.143, "random_init": 0.148,
    ...         "nn_copy": 0.088}, {"random_init": 0.30, "nn_copy": 1e-4})
    'CPAC mae: pretrained 0.1430 vs random-init 0.1480: no significant difference from \
random-init (p=0.30); nn_copy is best (p=0.0001)'
    """
    means = {k: _mean(v) for k, v in scores.items()}
    means = {k: v for k, v in means.items() if v is not None}
    if PRETRAINED not in means or len(means) < 2:
        return None
    pre = means[PRETRAINED]
    base = {k: v for k, v in means.items() if k != PRETRAINED}

    def beats(a: float, b: float) -> bool:
        return a > b if higher_is_better else a < b

    head = f"{metric}: pretrained {pre:.4f}"
    parts = []
    if RANDOM_INIT in base:
        head += f" vs random-init {base[RANDOM_INIT]:.4f}"
        parts.append(_against(RANDOM_INIT, beats(pre, base[RANDOM_INIT]), p.get(RANDOM_INIT)))
    best = max(base, key=lambda k: base[k] if higher_is_better else -base[k])
    if best != RANDOM_INIT:
        parts.append(_strongest(best, beats(base[best], pre), p.get(best)))
    note = length_note(steps)
    if note:
        parts.append(note)
    return f"{head}: " + "; ".join(parts)


def verdict_from_units(metric: str, higher_is_better: bool,
                       units: Mapping[str, Sequence[float]], kind: str = "wilcoxon",
                       steps: int | None = None) -> str | None:
    """`verdict` from paired per-unit values: model name -> one value per unit (shape or
    seed), the same units in the same order for every model. `kind`: "wilcoxon" (shapes) or
    "t" (seeds), the tests of `stats.paired_test`; the mean over units is the score."""
    pre = units.get(PRETRAINED)
    if pre is None:
        return None
    scores = {k: float(np.mean(np.asarray(v, np.float64))) for k, v in units.items()}
    p = {k: stats.paired_test(pre, v, kind)["p"] for k, v in units.items() if k != PRETRAINED}
    return verdict(metric, higher_is_better, scores, p, steps)
