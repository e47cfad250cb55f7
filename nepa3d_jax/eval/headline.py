"""The few numbers a reader of `results.json` wants first: does pretraining beat its baselines?

`headline(evals)` condenses the evaluator results of `train.eval_after` into
  cpac_mae      {pretrained, random_init, nn_copy: {mean, ci_low, ci_high, per_seed}} and
                the Wilcoxon p-values of pretrained vs each baseline
  cls_test_acc  {pretrained, random_init: {mean, ci_low, ci_high, per_seed}} and the paired
                t-test p-value
  verdict       one sentence per evaluator: which of pretrained / random-init is better and
                whether the difference is significant (p < 0.05)
"""

from __future__ import annotations

from typing import Any, Mapping


def _interval(block: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not block:
        return None
    return {k: block.get(k) for k in ("mean", "ci_low", "ci_high", "per_seed")}


def _verdict(metric: str, a: Mapping | None, b: Mapping | None, sig: Mapping | None,
             lower_is_better: bool) -> str | None:
    if not a or not b or a.get("mean") is None or b.get("mean") is None:
        return None
    better = (a["mean"] < b["mean"]) == lower_is_better
    p = (sig or {}).get("p")
    how = ("significant" if (sig or {}).get("significant") else "not significant") + (
        f", p={p:.3g}" if p is not None else ", no test")
    return (f"{metric}: pretrained {a['mean']:.4f} vs random-init {b['mean']:.4f}: "
            f"pretrained {'better' if better else 'NOT better'} ({how})")


def headline(evals: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"verdict": []}
    cpac = evals.get("cpac_udf")
    if cpac and "summary" in cpac:
        s = cpac["summary"]
        out["cpac_mae"] = {name: _interval((s.get(name) or {}).get("mae"))
                           for name in ("pretrained", "random_init", "nn_copy") if name in s}
        out["cpac_mae"]["seeds"] = cpac.get("seeds")
        out["cpac_mae"]["p"] = {k: v.get("p") for k, v in (cpac.get("significance") or {}).items()}
        v = _verdict("CPAC mae", out["cpac_mae"].get("pretrained"),
                     out["cpac_mae"].get("random_init"),
                     (cpac.get("significance") or {}).get("pretrained_vs_random_init"), True)
        if v:
            out["verdict"].append(v)
    cls = evals.get("finetune_cls")
    if cls and "summary" in cls:
        s = cls["summary"]
        out["cls_test_acc"] = {name: _interval((s.get(name) or {}).get("test_acc"))
                               for name in ("pretrained", "random_init") if name in s}
        out["cls_test_acc"]["seeds"] = cls.get("seeds")
        sig = (cls.get("significance") or {}).get("pretrained_vs_random_init")
        out["cls_test_acc"]["p"] = (sig or {}).get("p")
        v = _verdict("classification test_acc", out["cls_test_acc"].get("pretrained"),
                     out["cls_test_acc"].get("random_init"), sig, False)
        if v:
            out["verdict"].append(v)
    return out
