"""Intervals and paired tests of nepa3d_jax.eval.stats against scipy and closed forms, and
the significance marker on a constructed pair (one real difference, one null)."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from nepa3d_jax.eval import stats


def test_parse_seeds_forms_and_errors():
    assert stats.parse_seeds("", 7) == [7]
    assert stats.parse_seeds(None, 3) == [3]
    assert stats.parse_seeds("0, 1,2", 0) == [0, 1, 2]
    assert stats.parse_seeds((4, 5), 0) == [4, 5]
    assert stats.parse_seeds(9, 0) == [9]
    with pytest.raises(ValueError, match="integers"):
        stats.parse_seeds("0,a", 0)
    with pytest.raises(ValueError, match="repeated"):
        stats.parse_seeds("1,1", 0)


def test_t_interval_over_seeds_matches_scipy():
    x = [0.812, 0.795, 0.830, 0.801]
    out = stats.t_interval(x)
    lo, hi = scipy_stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=scipy_stats.sem(x))
    assert out["mean"] == pytest.approx(np.mean(x))
    assert out["std"] == pytest.approx(np.std(x, ddof=1))
    assert out["ci_low"] == pytest.approx(lo) and out["ci_high"] == pytest.approx(hi)
    one = stats.t_interval([0.8])
    assert one["ci_low"] is None and one["std"] is None and "one seed" in one["ci_reason"]


def test_bootstrap_interval_of_a_mean_matches_the_normal_closed_form():
    rng = np.random.default_rng(0)
    x = rng.exponential(0.1, size=2000)  # skewed like per-shape errors
    lo, hi = stats.bootstrap_ci(lambda i: float(np.mean(x[i])), x.size, seed=1)
    half = 1.959964 * x.std(ddof=0) / math.sqrt(x.size)
    assert lo == pytest.approx(x.mean() - half, rel=0.01)
    assert hi == pytest.approx(x.mean() + half, rel=0.01)


def test_cpac_summary_whole_set_metrics_and_seed_spread():
    rng = np.random.default_rng(2)
    t = rng.uniform(0, 0.2, (30, 16))
    per_seed = [stats.per_shape_stats(t, t + rng.normal(0, s, t.shape), 0.03)
                for s in (0.01, 0.02)]
    out = stats.cpac_summary(per_seed)
    for k, row in enumerate(per_seed):  # per-seed values equal the whole-set definitions
        err = np.sqrt(row["sq_err"].mean())
        assert out["rmse"]["per_seed"][k] == pytest.approx(err)
        assert out["mae"]["per_seed"][k] == pytest.approx(row["abs_err"].mean())
    mae = out["mae"]
    assert mae["mean"] == pytest.approx(np.mean(mae["per_seed"]))
    assert mae["std_seeds"] == pytest.approx(np.std(mae["per_seed"], ddof=1))
    assert mae["ci_low"] < mae["mean"] < mae["ci_high"]
    assert 0.0 <= out["iou@tau"]["ci_low"] <= out["iou@tau"]["ci_high"] <= 1.0


def test_paired_tests_mark_the_real_difference_and_not_the_null():
    rng = np.random.default_rng(3)
    base = rng.exponential(0.1, 200)
    better = base - 0.01 + rng.normal(0, 0.005, 200)   # a real, consistent improvement
    # The null: the same model re-sampled, noise symmetric by construction (+e and -e).
    e = rng.normal(0, 0.005, 100)
    noise = base + rng.permutation(np.concatenate([e, -e]))
    real = stats.paired_test(better, base, "wilcoxon")
    null = stats.paired_test(noise, base, "wilcoxon")
    assert real["significant"] and real["p"] < 1e-10 and real["mean_diff"] < 0
    assert not null["significant"] and null["p"] > 0.05
    assert real["p"] == pytest.approx(scipy_stats.wilcoxon(better, base).pvalue)
    # Over seeds: paired t-test, equal to scipy's.
    a, b = [0.80, 0.82, 0.81], [0.70, 0.73, 0.71]
    t = stats.paired_test(a, b, "t")
    assert t["p"] == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue) and t["significant"]
    same = stats.paired_test(a, a, "t")
    assert same["p"] == 1.0 and not same["significant"]
    assert stats.paired_test([1.0], [0.0], "t")["p"] is None


def test_headline_states_the_pretrained_vs_random_outcome():
    from nepa3d_jax.eval.headline import headline

    mae = lambda m: {"mae": {"mean": m, "ci_low": m - 0.01, "ci_high": m + 0.01,
                             "per_seed": [m, m]}}
    evals = {"cpac_udf": {"seeds": [0, 1], "summary": {
        "pretrained": mae(0.08), "random_init": mae(0.12), "nn_copy": mae(0.09)},
        "significance": {"pretrained_vs_random_init": {"p": 0.001, "significant": True},
                         "pretrained_vs_nn_copy": {"p": 0.2, "significant": False}}},
        "finetune_cls": {"seeds": [0, 1], "summary": {
            "pretrained": {"test_acc": {"mean": 0.5}}, "random_init": {"test_acc": {"mean": 0.6}}},
            "significance": {"pretrained_vs_random_init": {"p": 0.3, "significant": False}}}}
    h = headline(evals)
    assert h["cpac_mae"]["random_init"]["mean"] == 0.12 and h["cpac_mae"]["p"] == {
        "pretrained_vs_random_init": 0.001, "pretrained_vs_nn_copy": 0.2}
    assert h["verdict"][0] == (
        "CPAC mae: pretrained 0.0800 vs random-init 0.1200: significantly better than "
        "random-init (p=0.0010); pretrained has the best mean, not significantly above nn_copy "
        "(p=0.20)")
    assert h["verdict"][1] == ("classification test_acc: pretrained 0.5000 vs random-init "
                               "0.6000: no significant difference from random-init (p=0.30)")
    assert h["cls_test_acc"]["p"] == {"pretrained_vs_random_init": 0.3}
    short = headline(evals, steps=300)["verdict"]
    assert all(v.endswith("after only 300 pretraining steps this reading can change with "
                          "training length") for v in short)
