"""The verdict wording (`eval.verdict`): "better" only with significance, the strongest
baseline named, short runs flagged; the same sentence from summary numbers and from paired
per-unit values."""

import numpy as np
import pytest

from nepa3d_jax.eval.verdict import FEW_STEPS, verdict, verdict_from_units


def test_the_demo_reading_names_nn_copy_and_never_says_better_without_significance():
    text = verdict("CPAC mae", False, {"pretrained": 0.1427, "random_init": 0.1478,
                                       "nn_copy": 0.0884},
                     {"random_init": 0.296, "nn_copy": 0.0001})
    assert text == ("CPAC mae: pretrained 0.1427 vs random-init 0.1478: no significant "
                    "difference from random-init (p=0.30); nn_copy is best (p=0.0001)")
    assert "better" not in text


@pytest.mark.parametrize("pre, rnd, p, words", [
    (0.10, 0.12, 0.01, "significantly better than random-init (p=0.01)"),
    (0.12, 0.10, 0.0085, "significantly worse than random-init (p=0.0085)"),
    (0.10, 0.12, 0.06, "no significant difference from random-init (p=0.06)"),
    (0.10, 0.12, None, "not tested against random-init (too few paired values)"),
    (0.10, 0.12, 1e-7, "significantly better than random-init (p<0.0001)"),
])
def test_random_init_clause(pre, rnd, p, words):
    text = verdict("m", False, {"pretrained": pre, "random_init": rnd}, {"random_init": p})
    assert text == f"m: pretrained {pre:.4f} vs random-init {rnd:.4f}: {words}"


def test_higher_is_better_and_the_strongest_baseline():
    scores = {"pretrained": {"mean": 0.8}, "random_init": {"mean": 0.7}, "nn_copy": 0.75}
    assert verdict("acc", True, scores, {"random_init": 0.01, "nn_copy": 0.02}).endswith(
        "; pretrained is best (p=0.02 against nn_copy, the strongest baseline)")
    assert verdict("acc", True, scores, {"random_init": 0.01, "nn_copy": 0.2}).endswith(
        "; pretrained has the best mean, not significantly above nn_copy (p=0.20)")
    worse = {"pretrained": 0.6, "random_init": 0.7, "nn_copy": 0.9}
    assert verdict("acc", True, worse, {"random_init": 0.3, "nn_copy": 0.4}).endswith(
        "; nn_copy has the best mean, not significantly (p=0.40)")
    # no random-init: the strongest baseline alone
    assert verdict("acc", True, {"pretrained": 0.6, "nn_copy": 0.9}, {"nn_copy": 0.001}) == (
        "acc: pretrained 0.6000: nn_copy is best (p=0.0010)")
    assert verdict("acc", True, {"pretrained": 0.6}, {}) is None


def test_short_runs_are_flagged():
    args = ("m", False, {"pretrained": 0.1, "random_init": 0.2}, {"random_init": 0.001})
    assert verdict(*args, steps=20).endswith(
        "; after only 20 pretraining steps this reading can change with training length")
    assert verdict(*args, steps=FEW_STEPS) == verdict(*args)


def test_from_units_runs_the_paired_test():
    rng = np.random.default_rng(0)
    pre = rng.exponential(0.1, 40)
    units = {"pretrained": pre, "random_init": pre + rng.normal(0, 0.01, 40),
             "nn_copy": pre - 0.05}
    from nepa3d_jax.eval import stats
    p_r = stats.paired_test(pre, units["random_init"], "wilcoxon")["p"]
    want = verdict("CPAC mae", False, {k: float(np.mean(x)) for k, x in units.items()},
                   {"random_init": p_r, "nn_copy": stats.paired_test(
                         pre, units["nn_copy"], "wilcoxon")["p"]})
    assert verdict_from_units("CPAC mae", False, units) == want
    assert "nn_copy is best (p<0.0001)" in want and "no significant difference" in want
