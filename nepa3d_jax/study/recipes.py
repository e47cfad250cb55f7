"""Recipes: named sets of opt-in fields (DESIGN.md section 9). `original` changes nothing: it
is the original's method, whose numbers the goldens hold.

Each recipe maps a stage (`pretrain`, `probe`, `cpac`) to dotted field overrides of that stage's
config; `mixture` picks the pretraining mixture of the study corpus (`mesh_udf_scan`, Runs
A/C/D's, by default; `pointcloud`, Run B's). The `abcd_*` recipes are the A/B/C/D study's
differences at study scale (Run A is `original`): no rays (D), Morton order (C), legacy tokens
+ xyz-only + Morton (B).
"""

from __future__ import annotations

from typing import Any

# The recipe this project recommends (docs/evaluation.md "The recommended recipe"): the only one
# so far whose probes and CPAC beat its own random init with every 95% interval above 0.
RECOMMENDED = "answer_cos_aug"

# The building blocks, each stated once.
_READOUT = {"model.final_norm": True, "model.type_emb_std": 0.02}
_CONTENT_STD = {**_READOUT, "model.nepa_target": "content_std"}
_ANSWER = {**_CONTENT_STD, "train.answer_loss_weight": 1.0}
_COSINE = {"train.lr_schedule": "cosine", "train.lr_warmup_steps": 100}
_AUGMENT = {"data.aug_scale": 0.2, "data.aug_shift": 0.1, "data.aug_yaw": 1}

RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "original": {},
    # Readout fixes only: a LayerNorm after the encoder and a type table that does not swamp
    # pooled features. They change what fine-tuning/probes can read, not the objective.
    "readout": {"pretrain": _READOUT},
    # A target with variance: the content part standardised over the batch's targets.
    "content_std": {"pretrain": _CONTENT_STD},
    # + regression of the raw answer slots (distance, hit, depth, normal) from h.
    "answer": {"pretrain": _ANSWER},
    # + a warmup and cosine-decayed LR (the original's is constant): the final weights are not
    # one noisy iterate of a constant-LR walk.
    "answer_cos": {"pretrain": {**_ANSWER, **_COSINE}},
    # + pretraining augmentation: a random scale, shift and yaw per sample and step.
    "answer_cos_aug": {"pretrain": {**_ANSWER, **_COSINE, **_AUGMENT}},
    # `answer` + the augmentation alone (the constant LR of the original): separates the two.
    "answer_aug": {"pretrain": {**_ANSWER, **_AUGMENT}},
    # `answer` scored with CPAC's opt-in query isolation (queries do not see each other's fake
    # zero answers); the pretraining is the same as `answer`'s.
    "answer_iso": {"pretrain": _ANSWER, "cpac": {"query_isolation": 1}},
    "abcd_C": {"pretrain": {"data.point_order_mode": "morton"}},
    "abcd_D": {"pretrain": {"data.n_ray": 0}},
    "abcd_B": {"pretrain": {"data.n_ray": 0, "data.qa_tokens": 0, "data.pt_xyz_key": "pc_xyz",
                            "data.ablate_point_dist": 1, "data.point_order_mode": "morton"},
               "mixture": "pointcloud"},
}

# Runs B / C / D's differences on top of the recommended recipe (`--preset abcd_recommended`).
for _run in ("B", "C", "D"):
    _base = RECIPES[RECOMMENDED]
    _diff = RECIPES[f"abcd_{_run}"]
    RECIPES[f"{RECOMMENDED}_{_run}"] = {
        **_base, **_diff, "pretrain": {**_base["pretrain"], **_diff["pretrain"]}}


def pretrain_fields(name: str) -> dict[str, Any]:
    """The recipe's pretraining field overrides (`configs/recipe.py` applies them to base)."""
    return dict(get(name).get("pretrain", {}))


def get(name: str) -> dict[str, dict[str, Any]]:
    if name not in RECIPES:
        raise ValueError(f"--recipes: unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    return RECIPES[name]


def describe(name: str) -> str:
    """`field=value` list of a recipe (for tables); 'the original' for the empty one."""
    recipe = get(name)
    parts = [f"{k}={v}" for stage in recipe.values() if isinstance(stage, dict)
             for k, v in stage.items()]
    if "mixture" in recipe:
        parts.append(f"mixture={recipe['mixture']}")
    return ", ".join(parts) if parts else "the original (no changes)"
