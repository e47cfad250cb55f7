"""Uncertainty of evaluation numbers: seeds, intervals and paired significance tests.

The protocol (docs/evaluation.md):
  * CPAC: every evaluation seed re-draws contexts and queries; a shape's metric is averaged
    over the seeds, and the 95% interval of the mean is a percentile bootstrap over shapes
    (shapes are the population a benchmark samples; seeds only reduce sampling noise).
    `std_seeds` is the standard deviation of the whole-set metric across seeds.
  * Classification fine-tuning: one number per seed; the 95% interval is Student's t
    interval over seeds (mean +- t_{0.975, n-1} * sd / sqrt(n), sd with ddof=1).
  * Two runs compared on the same shapes: Wilcoxon signed-rank test on the per-shape
    differences (two-sided; no normality assumed; per-shape errors are skewed). On the same
    seeds: paired t-test over seeds (with 2-5 seeds a rank test cannot reach p < 0.05).
A difference is marked significant when p < ALPHA. Undefined values are None with a reason,
never NaN.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Sequence

import numpy as np

ALPHA = 0.05
LEVEL = 0.95
N_BOOT = 2000


def parse_seeds(value: Any, default: int) -> list[int]:
    """`eval.seeds` as a list: "0,1,2", a sequence, one int, or empty (= [default])."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return [int(default)]
    if isinstance(value, str):
        items = [v for v in value.replace(" ", "").split(",") if v]
    elif isinstance(value, Iterable):
        items = list(value)
    else:
        items = [value]
    try:
        seeds = [int(v) for v in items]
    except (TypeError, ValueError) as err:
        raise ValueError(f"eval seeds {value!r}: expected comma-separated integers") from err
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"eval seeds {value!r}: repeated seed")
    return seeds or [int(default)]


def t_interval(values: Sequence[float], level: float = LEVEL) -> dict[str, Any]:
    """mean, std (ddof=1), n and Student's t interval of the mean; interval None for n < 2."""
    from scipy import stats as scipy_stats

    x = np.asarray(values, np.float64)
    out: dict[str, Any] = {"mean": float(x.mean()) if x.size else None, "n": int(x.size),
                           "per_seed": [float(v) for v in x]}
    if x.size < 2:
        out.update(std=None, ci_low=None, ci_high=None,
                   ci_reason="one seed: no interval (set eval.seeds to 2 or more)")
        return out
    sd = float(x.std(ddof=1))
    half = float(scipy_stats.t.ppf(0.5 + level / 2, x.size - 1)) * sd / math.sqrt(x.size)
    out.update(std=sd, ci_low=out["mean"] - half, ci_high=out["mean"] + half,
               ci=f"{level:.0%} Student t over seeds")
    return out


def bootstrap_ci(statistic: Callable[[np.ndarray], float], n_items: int, *,
                 n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0
                 ) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic(indices)` over `n_items` resampled items."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_items, size=(n_boot, n_items))
    vals = np.array([statistic(i) for i in idx], np.float64)
    lo, hi = np.quantile(vals, [0.5 - level / 2, 0.5 + level / 2])
    return float(lo), float(hi)


# CPAC per-shape sufficient statistics -> whole-set metric (same definitions as metrics.py).
CPAC_METRICS: dict[str, Callable[[dict[str, np.ndarray], np.ndarray], float]] = {
    "mae": lambda s, i: float(np.mean(s["abs_err"][i])),
    "rmse": lambda s, i: float(np.sqrt(np.mean(s["sq_err"][i]))),
    "iou@tau": lambda s, i: float(np.sum(s["inter"][i]) / (np.sum(s["union"][i]) + 1e-9)),
}


def per_shape_stats(y_true_SM: np.ndarray, y_pred_SM: np.ndarray, tau: float
                    ) -> dict[str, np.ndarray]:
    """Per-shape sufficient statistics of the CPAC metrics (shape s has M queries)."""
    t = np.asarray(y_true_SM, np.float32)
    p = np.asarray(y_pred_SM, np.float32)
    err = p - t
    gt, pr = t <= float(tau), p <= float(tau)
    return {"abs_err": np.mean(np.abs(err), axis=1).astype(np.float64),
            "sq_err": np.mean(err ** 2, axis=1).astype(np.float64),
            "inter": np.sum(gt & pr, axis=1).astype(np.float64),
            "union": np.sum(gt | pr, axis=1).astype(np.float64)}


def cpac_summary(per_seed: Sequence[dict[str, np.ndarray]], *, seed: int = 0
                 ) -> dict[str, dict[str, Any]]:
    """mean (over seeds of the whole-set metric), std over seeds, per-seed values and the
    bootstrap-over-shapes interval of the seed-averaged shapes, per CPAC metric."""
    keys = per_seed[0].keys()
    avg = {k: np.mean([s[k] for s in per_seed], axis=0) for k in keys}
    n = len(avg["abs_err"])
    all_idx = np.arange(n)
    out = {}
    for name, fn in CPAC_METRICS.items():
        values = [fn(s, all_idx) for s in per_seed]
        lo, hi = bootstrap_ci(lambda i, fn=fn: fn(avg, i), n, seed=seed)
        out[name] = {"mean": float(np.mean(values)),
                     "std_seeds": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                     "per_seed": values, "ci_low": lo, "ci_high": hi,
                     "ci": f"{LEVEL:.0%} percentile bootstrap over {n} shapes ({N_BOOT} draws)"}
    return out


def paired_test(a: Sequence[float], b: Sequence[float], kind: str) -> dict[str, Any]:
    """Two-sided paired test of a vs b: kind "wilcoxon" (shapes) or "t" (seeds).

    Returns mean difference (a - b), p-value (None with a reason when undefined) and
    `significant` (p < ALPHA)."""
    from scipy import stats as scipy_stats

    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired test needs equal lengths, got {x.shape} and {y.shape}")
    d = x - y
    out: dict[str, Any] = {"test": {"wilcoxon": "Wilcoxon signed-rank (two-sided)",
                                    "t": "paired t-test (two-sided)"}[kind],
                           "n": int(d.size), "mean_diff": float(d.mean()) if d.size else None}
    if d.size < 2:
        return {**out, "p": None, "significant": False, "reason": "fewer than 2 pairs"}
    if not np.any(d != 0):
        return {**out, "p": 1.0, "significant": False}
    if kind == "wilcoxon":
        p = float(scipy_stats.wilcoxon(x, y, alternative="two-sided").pvalue)
    else:
        if float(np.std(d)) == 0.0:  # a constant non-zero difference: t is infinite
            p = 0.0
        else:
            p = float(scipy_stats.ttest_rel(x, y).pvalue)
    return {**out, "p": p, "significant": bool(p < ALPHA)}
