"""Study presets: corpus scale, model, training length, seeds, recipes and evaluation sizes.

  tiny   the plumbing, in the test suite (seconds of training, 2 seeds)
  small  the measured one: the original and the recommended recipe x 3 seeds on 2 CPU cores
         (about 25-40 minutes per recipe; `--recipes original` for one)
  full   every recipe x 5 seeds
  abcd   the A/B/C/D differences at study scale, 3 seeds each

CPAC's sequence (context + queries, as Q/A tokens) is as long as the pretraining sequence
(n_context + n_query = n_point + n_ray), so no positional row CPAC reads is left untrained.
"""

from __future__ import annotations

import ast
import copy
from typing import Any

from nepa3d_jax.study.recipes import RECOMMENDED

_SMALL_PRETRAIN = {
    "model.d_model": 64, "model.layers": 3, "model.heads": 4,
    "data.n_point": 96, "data.n_ray": 32, "data.max_len": -1, "data.mix_num_samples": 4000,
    "train.batch_per_device": 16, "train.num_steps": 1500, "train.base_lr": 5e-4,
    "train.lr_scale": False, "train.log_every_steps": 25, "train.checkpoint_every_steps": 500,
}

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        corpus="tiny", seeds=[0, 1], recipes=["original"],
        pretrain={"model.d_model": 32, "model.layers": 1, "model.heads": 2,
                  "data.n_point": 16, "data.n_ray": 8, "data.max_len": -1,
                  "data.mix_num_samples": 64, "train.batch_per_device": 4,
                  "train.num_steps": 6, "train.base_lr": 1e-3, "train.lr_scale": False,
                  "train.log_every_steps": 2, "train.checkpoint_every_steps": 6},
        probe={"shots": "1,2", "episodes": 2, "batch": 16, "readouts": "mean_pts,mean_max_ln",
               "logreg_cs": "0.1,1", "cv_folds": 2},
        cpac={"n_context": 16, "n_query": 8, "seeds": "0,1", "max_shapes": 4,
              "head_train_max_shapes": 6, "render_shapes": 2, "mesh_grid_res": 12,
              "mesh_chunk_n_query": 8}),
    "small": dict(
        corpus="small", seeds=[0, 1, 2], recipes=["original", RECOMMENDED],
        pretrain=_SMALL_PRETRAIN,
        probe={"shots": "1,5,10", "episodes": 5, "batch": 64},
        # every shape: CPAC's max_shapes keeps the first N in name order, i.e. whole classes
        cpac={"n_context": 64, "n_query": 64, "seeds": "0,1,2", "max_shapes": 0,
              "head_train_max_shapes": 0, "render_shapes": 4, "mesh_grid_res": 24,
              "mesh_chunk_n_query": 64}),
}
# Few-shot fine-tuning (the classification protocol on K shapes per class): `full` only, it is
# the costliest stage (two fine-tunes per K and seed). The readout fixes are on: the probes'
# headline readout (LayerNorm'd [mean, max], here with learned scale and bias), warmup + cosine.
_FINETUNE = {"shots": "1,5,10", "epochs": 40, "batch": 32, "lr": 5e-4, "val_ratio": 0.1,
             "mc_eval_k_test": 1, "n_point": -1, "cls_pooling": "mean_max", "head_norm": 1,
             "lr_schedule": "cosine", "lr_warmup_epochs": 4}
PRESETS["full"] = dict(copy.deepcopy(PRESETS["small"]), seeds=[0, 1, 2, 3, 4],
                       recipes=["original", "readout", "content_std", "answer", "answer_cos",
                                "answer_aug", RECOMMENDED],
                       finetune=dict(_FINETUNE))
PRESETS["abcd"] = dict(copy.deepcopy(PRESETS["small"]), seeds=[0, 1, 2],
                       recipes=["original", "abcd_B", "abcd_C", "abcd_D"])
# The A/B/C/D differences on top of the recommended recipe (issue 25: do the conclusions change?).
PRESETS["abcd_recommended"] = dict(copy.deepcopy(PRESETS["small"]), seeds=[0, 1, 2],
                                   recipes=[RECOMMENDED, f"{RECOMMENDED}_B",
                                            f"{RECOMMENDED}_C", f"{RECOMMENDED}_D"])


def get(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ValueError(f"--preset {name!r}: one of {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def apply_override(preset: dict[str, Any], item: str) -> None:
    """`STAGE:FIELD=VALUE` (e.g. `pretrain:train.num_steps=500`) into a preset, in place."""
    stage, sep, rest = item.partition(":")
    field, eq, text = rest.partition("=")
    if not sep or not eq or stage not in ("pretrain", "probe", "cpac", "finetune") or not field:
        raise ValueError(f"--set {item!r}: expected STAGE:FIELD=VALUE with STAGE one of "
                         "pretrain, probe, cpac, finetune")
    preset.setdefault(stage, {})
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text
    preset[stage][field] = value
