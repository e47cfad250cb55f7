"""One study arm: pretrain one recipe with one seed, then score it and its own random init.

The configs are the jobs' own (`jobs.default_config`), with the preset's and the recipe's
fields set on top, so what a study arm runs is exactly what `nepa3d-jax --config ...` with
those overrides would run; each run directory keeps its config.json.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import ml_collections

from nepa3d_jax import atomic_io, jobs
from nepa3d_jax.study import recipes
from nepa3d_jax.study.corpus import Corpus
from nepa3d_jax.train.pretrain_defaults import mix_component


def set_field(config: ml_collections.ConfigDict, dotted: str, value: Any, where: str) -> None:
    """`config.a.b = value` for an existing field; ValueError naming it otherwise."""
    node = config
    parts = dotted.split(".")
    for part in parts[:-1]:
        if part not in node:
            raise ValueError(f"{where}: unknown config field {dotted!r}")
        node = node[part]
    if parts[-1] not in node:
        raise ValueError(f"{where}: unknown config field {dotted!r}")
    node[parts[-1]] = value


def _mixture(corpus: Corpus, kind: str) -> ml_collections.ConfigDict:
    """The study corpus as Runs A/C/D's mixture (mesh + UDF grid + partial scans) or Run B's
    (point clouds of the meshes + partial scans), in the original YAML's component order."""
    m, s = corpus.mesh_root, corpus.scan_root
    if kind == "mesh_udf_scan":
        return ml_collections.ConfigDict(dict(
            study_mesh=mix_component(m, "mesh", 0.34, corpus.pretrain_split, order=0),
            study_udf=mix_component(m, "udfgrid", 0.33, corpus.pretrain_split, order=1),
            study_scan=mix_component(s, "pointcloud_noray", 0.33, corpus.scan_split, order=2)))
    if kind == "pointcloud":
        return ml_collections.ConfigDict(dict(
            study_pc=mix_component(m, "pointcloud_noray", 0.5, corpus.pretrain_split, order=0),
            study_scan=mix_component(s, "pointcloud_noray", 0.5, corpus.scan_split, order=1)))
    raise ValueError(f"recipe mixture {kind!r}: mesh_udf_scan | pointcloud")


def pretrain_config(preset: dict, recipe: str, seed: int, corpus: Corpus, workdir: str,
                    validate: str = "full") -> ml_collections.ConfigDict:
    c = jobs.default_config("pretrain")
    c.workdir = workdir
    c.seed = int(seed)
    c.data.mix_seed = int(seed)
    spec = recipes.get(recipe)
    c.data.mix = _mixture(corpus, spec.get("mixture", "mesh_udf_scan"))
    c.data.loader = "threads"
    c.data.workers = 2
    c.data.validate = validate
    for dotted, value in {**preset["pretrain"], **spec.get("pretrain", {})}.items():
        set_field(c, dotted, value, f"study recipe {recipe!r}")
    if int(c.data.max_len) <= 0:
        c.data.max_len = cpac_max_len(preset, c.data)
    return c


def cpac_max_len(preset: dict, data: ml_collections.ConfigDict) -> int:
    """The positional table of a study run: -1 (its own sequence length) when CPAC's sequence
    (the preset's n_context + n_query, the run's token layout) fits in it, else CPAC's length.
    Every recipe is scored by the same CPAC protocol, so a run with a shorter sequence (Runs B
    and D: no rays) gets the longer table, as the users' B and D got max_len=2500 over their
    1,026 / 2,050 tokens; its rows past the pretraining length stay untrained, as theirs did."""
    from nepa3d_jax.eval.cpac.tokens import sequence_length as cpac_length
    from nepa3d_jax.tokenizer.types import sequence_length

    qa, eos = bool(int(data.qa_tokens)), bool(int(data.add_eos))
    own = sequence_length(int(data.n_point), int(data.n_ray), qa, eos)
    cpac = preset.get("cpac") or {}
    if "n_context" not in cpac or "n_query" not in cpac:
        return -1
    need = cpac_length(int(cpac["n_context"]), int(cpac["n_query"]), qa, eos)
    return need if need > own else -1


def probe_config(preset: dict, recipe: str, corpus: Corpus, ckpt: str, out_json: str
                 ) -> ml_collections.ConfigDict:
    c = jobs.default_config("probe")
    c.ckpt, c.out_json, c.progress = ckpt, out_json, False
    c.cache_root = corpus.labeled_root
    c.train_split, c.test_split = corpus.labeled_train, corpus.labeled_test
    for dotted, value in {**preset["probe"], **recipes.get(recipe).get("probe", {})}.items():
        set_field(c, dotted, value, f"study recipe {recipe!r} (probe)")
    return c


def cpac_config(preset: dict, recipe: str, corpus: Corpus, ckpt: str, out_json: str,
                render_png: str) -> ml_collections.ConfigDict:
    c = jobs.default_config("cpac_udf")
    c.ckpt, c.out_json, c.progress = ckpt, out_json, False
    c.cache_root = corpus.cpac_root
    c.random_init_baseline = 1
    c.render_png = render_png
    for dotted, value in {**preset["cpac"], **recipes.get(recipe).get("cpac", {})}.items():
        set_field(c, dotted, value, f"study recipe {recipe!r} (cpac)")
    return c


def finetune_config(preset: dict, recipe: str, corpus: Corpus, ckpt: str, k: int,
                    out_json: str) -> ml_collections.ConfigDict:
    """Few-shot fine-tuning on K shapes per class of the labelled pool (episode = fewshot_seed,
    the same files for the pretrained model and its random init), scored on the test split."""
    c = jobs.default_config("finetune_cls")
    c.ckpt, c.out_json, c.progress = ckpt, out_json, False
    c.cache_root = corpus.labeled_root
    c.fewshot_k = int(k)
    c.random_init_baseline = 1
    for dotted, value in {**preset["finetune"], **recipes.get(recipe).get("finetune", {})
                          }.items():
        if dotted != "shots":
            set_field(c, dotted, value, f"study recipe {recipe!r} (finetune)")
    return c


def _stage(config: ml_collections.ConfigDict, out_json: str,
           log: Callable[[str], None]) -> dict[str, Any]:
    """`jobs.run(config)`, or the result already at `out_json` when it was made by exactly this
    config (recorded beside it): a rerun of the study re-scores nothing that is done."""
    import json

    record = out_json + ".config.json"
    want = json.loads(atomic_io.dumps(config.to_dict()))
    if os.path.isfile(out_json) and os.path.isfile(record):
        with open(record, encoding="utf-8") as f:
            if json.load(f) == want:
                log(f"[study] reusing {out_json} (same config)")
                with open(out_json, encoding="utf-8") as g:
                    return json.load(g)
    result = jobs.run(config)
    atomic_io.write_json_atomic(record, want)
    return result


def run_arm(preset: dict, recipe: str, seed: int, corpus: Corpus, out_dir: str, *,
            programs: Any = None, render: bool = False, validate: str = "full",
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """Pretrain (resumes a finished run at once), probe, CPAC; returns the arm's numbers.
    `validate`: the pretraining run's cache check (the study checks every cache fully in its
    first run and reads only the headers after that: the corpus does not change between arms)."""
    from nepa3d_jax.eval.probe import run as probe_run
    from nepa3d_jax.train import loop

    arm_dir = os.path.join(out_dir, "runs", recipe, f"seed{seed}")
    workdir = os.path.join(arm_dir, "run")
    log(f"[study] {recipe} seed {seed}: pretraining in {workdir}")
    train = loop.run(pretrain_config(preset, recipe, seed, corpus, workdir, validate),
                     programs=programs)
    log(f"[study] {recipe} seed {seed}: probes (pretrained and random-init)")
    probe_json = os.path.join(arm_dir, "probe.json")
    probe = _stage(probe_config(preset, recipe, corpus, workdir, probe_json), probe_json, log)
    if not all(m.key in probe for m in jobs.PROBE_METRICS):  # written before `compare` read it
        atomic_io.write_json_atomic(probe_json, probe_run.with_metrics(probe))
    log(f"[study] {recipe} seed {seed}: CPAC-UDF (pretrained, random-init, nn_copy)")
    png = os.path.join(out_dir, f"cpac_sheet_{recipe}.png") if render else ""
    cpac = _stage(cpac_config(preset, recipe, corpus, workdir,
                              os.path.join(arm_dir, "cpac_udf.json"), png),
                  os.path.join(arm_dir, "cpac_udf.json"), log)
    # The arm folder as `compare` reads a bundle folder: its results and the run they scored.
    atomic_io.write_json_atomic(os.path.join(arm_dir, "bundle.json"),
                                dict(run_tag=recipe, ckpt=workdir, seed=int(seed)))
    finetune = {}
    if preset.get("finetune"):
        for k in [int(x) for x in str(preset["finetune"]["shots"]).split(",")]:
            log(f"[study] {recipe} seed {seed}: few-shot fine-tuning K={k} (pretrained and "
                "random-init)")
            out_json = os.path.join(arm_dir, f"finetune_k{k}.json")
            r = _stage(finetune_config(preset, recipe, corpus, workdir, k, out_json), out_json,
                       log)
            finetune[f"K{k}"] = {arm: r["summary"][arm]["test_acc"]["mean"]
                                 for arm in ("pretrained", "random_init") if arm in r["summary"]}
    return dict(recipe=recipe, seed=int(seed), workdir=workdir, finetune=finetune, train=dict(
        final_loss=train.get("final_loss"), losses=train.get("losses"),
        steps=train.get("step"), collapse=train.get("collapse")),
        probe=dict(summary=probe["summary"], protocol=probe["protocol"]),
        cpac=dict(summary=cpac.get("summary"), significance=cpac.get("significance")),
        cpac_sheet=png or None)
