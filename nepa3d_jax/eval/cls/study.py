"""Classification fine-tuning, the job entry: seeds, t intervals, random-init baseline.

`run(config)` fine-tunes once per seed of `config.seeds` (empty: `seed` alone; the seed
drives the head initialisation, the batch order and the augmentation) and, with
`random_init_baseline=1` and a checkpoint, repeats each seed from a freshly initialised
backbone of the same config. The result is the first seed's original-format dict (with
several seeds the top-level `test_acc` / `best_val` are means over seeds) plus:
  seeds, per_seed    the seeds and each run's best_val / best_ep / test_acc
  summary            per model: mean, std, 95% Student t interval over seeds
  baselines          {"random_init": {test_acc, best_val, per_seed, ...}}
  significance       pretrained vs random_init: paired t-test over the same seeds
Each seed's log and TensorBoard folder sit beside `out_json` (`.seed<k>` before the suffix
when there are several seeds; `.random_init` for the baseline).
"""

from __future__ import annotations

from typing import Any

import ml_collections

from nepa3d_jax import atomic_io
from nepa3d_jax.eval import stats
from nepa3d_jax.eval.cls.finetune import run_single

METRICS = ("test_acc", "best_val")


def _with_tag(path: str, tag: str) -> str:
    if not path or not tag:
        return path
    stem, dot, ext = path.rpartition(".")
    return f"{stem}.{tag}.{ext}" if dot else f"{path}.{tag}"


def _one(c, seed: int, tag: str, random_init: bool) -> dict[str, Any]:
    """One fine-tune (`finetune.run_single`) with its files tagged by seed / baseline."""
    s = ml_collections.ConfigDict(c.to_dict())
    s.seed = int(seed)
    s.random_init = bool(random_init)
    s.out_json = _with_tag(str(c.out_json), tag)
    if str(c.log_path):
        s.log_path = _with_tag(str(c.log_path), tag)
    if str(c.save_dir) and tag:
        s.save_dir = f"{c.save_dir}/{tag}"
    if str(c.tb_dir) and tag:
        s.tb_dir = f"{c.tb_dir}/{tag}"
    return run_single(s)


def _per_seed(runs: list[dict[str, Any]], seeds: list[int]) -> list[dict[str, Any]]:
    return [dict(seed=s, test_acc=r["test_acc"], best_val=r["best_val"], best_ep=r["best_ep"])
            for s, r in zip(seeds, runs)]


def run(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """Fine-tunes once per seed (and per seed from a random-init backbone); returns (and
    writes to `out_json`) the result."""
    c = ml_collections.ConfigDict(config.to_dict())
    seeds = stats.parse_seeds(c.seeds, int(c.seed))
    several = len(seeds) > 1

    def tag(prefix: str, seed: int) -> str:
        parts = ([prefix] if prefix else []) + ([f"seed{seed}"] if several else [])
        return ".".join(parts)

    runs = [_one(c, s, tag("", s), False) for s in seeds]
    want_random = bool(int(c.random_init_baseline)) and bool(str(c.ckpt))
    rand = [_one(c, s, tag("random_init", s), True) for s in seeds] if want_random else []

    out = dict(runs[0])
    out["seeds"] = seeds
    out["per_seed"] = _per_seed(runs, seeds)
    summary = {"pretrained": {m: stats.t_interval([r[m] for r in runs]) for m in METRICS}}
    if several:
        out.update({m: summary["pretrained"][m]["mean"] for m in METRICS})
    out["baselines"] = {}
    if rand:
        summary["random_init"] = {m: stats.t_interval([r[m] for r in rand]) for m in METRICS}
        out["baselines"]["random_init"] = {
            "name": "random_init", "per_seed": _per_seed(rand, seeds),
            **{m: summary["random_init"][m]["mean"] for m in METRICS}}
        out["significance"] = {"pretrained_vs_random_init": {
            "metric": "test_acc per seed",
            **stats.paired_test([r["test_acc"] for r in runs],
                                [r["test_acc"] for r in rand], "t")}}
    elif str(c.ckpt):
        out["baselines"]["random_init"] = {"name": "random_init",
                                           "skipped": "random_init_baseline=0"}
    else:
        out["baselines"]["random_init"] = {"name": "random_init",
                                           "skipped": "from-scratch run: it is the baseline"}
    out["summary"] = summary
    if str(c.out_json) and (several or rand):
        atomic_io.write_json_atomic(str(c.out_json), out, indent=2, sort_keys=True)
    return out
