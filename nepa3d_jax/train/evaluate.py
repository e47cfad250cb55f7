"""`train.eval_after`: run an evaluator on the finished run directory; `results.json`.

The evaluator's config is `configs/<name>.py` (its defaults) updated with the pretraining
config's `eval.<name>` block when present, with `ckpt` set to this run's workdir and
`out_json` inside it. Results of the run (and of the evaluator) land in
`<workdir>/results.json`.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import pathlib
from typing import Any

import jax
import ml_collections

EVALUATORS = {"cpac_udf": "nepa3d_jax.eval.cpac.udf", "finetune_cls": "nepa3d_jax.eval.cls.finetune"}
_REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def evaluator_config(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
    from nepa3d_jax.config import load_config

    base = _REPO_ROOT / "configs" / f"{name}.py"
    sub = load_config(str(base)) if base.is_file() else ml_collections.ConfigDict()
    block = (config.get("eval") or {}).get(name) if config.get("eval") is not None else None
    if block is not None:
        sub.update(block.to_dict() if hasattr(block, "to_dict") else dict(block))
    sub.job = name
    sub.ckpt = str(config.workdir)
    sub.out_json = os.path.join(str(config.workdir), f"{name}.json")
    return sub


def names(eval_after: str) -> list[str]:
    """`train.eval_after` as a list ("cpac_udf,finetune_cls" runs both, in that order)."""
    return [n.strip() for n in str(eval_after or "").split(",") if n.strip()]


def run_after_training(config: ml_collections.ConfigDict, name: str) -> dict[str, Any]:
    if name not in EVALUATORS:
        raise ValueError(f"train.eval_after={name!r}: must be one of {', '.join(EVALUATORS)}")
    module = importlib.import_module(EVALUATORS[name])
    return module.run(evaluator_config(config, name))


def _finite(obj: Any) -> Any:
    """JSON-safe copy: floats stay floats (NaN/Inf as strings), arrays become lists."""
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "tolist"):
        return _finite(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def write_results(workdir: str | os.PathLike, result: dict[str, Any]) -> str | None:
    """`<workdir>/results.json` (process 0): the run summary and any evaluator results."""
    if jax.process_index() != 0:
        return None
    path = pathlib.Path(workdir) / "results.json"
    summary = {k: v for k, v in result.items() if k not in ("state",)}
    summary["losses"] = [[int(s), float(l)] for s, l in result.get("losses", [])]
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_finite(summary), indent=1))
    os.replace(tmp, path)
    return str(path)
