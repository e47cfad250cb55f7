"""CPAC-UDF as a study result: evaluation seeds, intervals, baselines, mesh metrics.

`run(config)` runs the single-seed protocol (`udf.run_single`, the original's numbers) once
per seed of `config.seeds` (empty: `eval_seed` alone) for the pretrained model and, with
`random_init_baseline=1`, for the same architecture at a fresh initialisation; `nn_copy`
comes with each pass. The result keeps the original's keys (with several seeds the top-level
`mae`, `rmse`, `iou@tau` are means over seeds) and adds:
  summary       per model and metric: mean, std over seeds, per-seed values, 95% bootstrap
                interval over shapes (nepa3d_jax.eval.stats)
  baselines     {"nn_copy": ..., "random_init": ...} with the same metrics
  significance  pretrained vs each baseline, Wilcoxon signed-rank over shapes of the
                seed-averaged per-shape MAE
  mesh_eval     with `mesh_eval=1` (first seed): Chamfer / F-score per model
  per_shape_json  the side file with every shape's statistics per seed, for paired
                comparisons between runs (`python -m nepa3d_jax.eval.compare`)
"""

from __future__ import annotations

import copy
import logging
import os
import time
from typing import Any, Callable

import numpy as np

from nepa3d_jax.eval import baselines, stats
from nepa3d_jax.eval.cpac import mesh_eval, report

log = logging.getLogger(__name__)
METRICS = tuple(stats.CPAC_METRICS)
PRIVATE = ("_per_shape", "_samples", "_loaded", "_layout_for", "_predict")


def side_file(out_json: str) -> str:
    """`results/x.json` -> `results/x.per_shape.json`."""
    stem = out_json[:-5] if out_json.endswith(".json") else out_json
    return stem + ".per_shape.json"


def _seed_config(c, seed: int, first: bool):
    s = copy.deepcopy(c)
    s.eval_seed = int(seed)
    s.out_json = ""
    if not first:
        s.check_caches = False
        if "plot_png" in s:
            s.plot_png = ""
    return s


def _passes(c, seeds: list[int], loaded, keep: int, run_single: Callable) -> list[dict[str, Any]]:
    runs = []
    for i, seed in enumerate(seeds):
        runs.append(run_single(_seed_config(c, seed, i == 0), loaded=loaded,
                                   keep=keep if i == 0 else 0))
        loaded = runs[-1]["_loaded"]
    return runs


def _per_shape(runs: list[dict[str, Any]], name: str) -> list[dict[str, np.ndarray]] | None:
    rows = [r["_per_shape"].get(name) for r in runs]
    return None if any(r is None for r in rows) else rows


def _metrics_block(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: summary[k]["mean"] for k in METRICS}


def run(config, run_single: Callable) -> dict[str, Any]:
    """`run_single` (`udf.run_single`, passed in: it imports this module) once per seed."""
    c = config
    t0 = time.perf_counter()
    seeds = stats.parse_seeds(c.get("seeds", ""), int(c.eval_seed))
    mesh_on = bool(int(mesh_eval.option(c, "mesh_eval")))
    render_png = str(c.get("render_png", "") or "")
    n_render = max(1, int(c.get("render_shapes", 4))) if render_png else 0
    keep = 0
    if mesh_on:
        keep = int(mesh_eval.option(c, "mesh_eval_max_shapes")) or 1 << 30
    elif render_png:
        keep = n_render
    runs = _passes(c, seeds, None, keep, run_single)
    pre, qa, rep_fn = runs[0]["_loaded"]
    random_runs: list[dict[str, Any]] = []
    want_random = bool(int(c.get("random_init_baseline", 1)))
    rand_seed = None
    if want_random and rep_fn is not None and pre is not None and hasattr(pre, "model"):
        rand_seed = baselines.init_seed(pre)
        rand = baselines.random_init(pre, rand_seed)
        random_runs = _passes(c, seeds, (rand, qa, rep_fn.with_params(rand.params)), keep,
                              run_single)

    out = {k: v for k, v in runs[0].items() if k not in PRIVATE}
    out["seeds"] = seeds
    groups = {"pretrained": _per_shape(runs, "probe"), "nn_copy": _per_shape(runs, "nn_copy"),
              "random_init": _per_shape(random_runs, "probe") if random_runs else None}
    summary = {name: stats.cpac_summary(rows) for name, rows in groups.items() if rows}
    out["summary"] = summary
    several = len(seeds) > 1  # one seed: the top level stays the original's numbers exactly
    if "pretrained" in summary and several:
        out.update(_metrics_block(summary["pretrained"]))
    out["baselines"] = {}
    if "nn_copy" in summary:
        out["baselines"]["nn_copy"] = {"name": "nn_copy", **(
            _metrics_block(summary["nn_copy"]) if several else
            {k: out["baseline"][k] for k in METRICS})}
        out["baseline"] = {**(out.get("baseline") or {}), **out["baselines"]["nn_copy"]}
    if "random_init" in summary:
        out["baselines"]["random_init"] = {"name": "random_init", "init_seed": rand_seed, **(
            _metrics_block(summary["random_init"]) if several else
            {k: random_runs[0][k] for k in METRICS})}
    elif want_random:
        out["baselines"]["random_init"] = {"name": "random_init", "skipped": (
            "baseline_only run" if rep_fn is None else "checkpoint has no model to re-init")}
    out["significance"] = _significance(groups)
    if mesh_on or render_png:
        sheet: list[dict[str, Any]] = []
        block = _mesh(c, runs[0], random_runs[0] if random_runs else None, sheet, n_render)
        if mesh_on:
            out["mesh_eval"] = block
        if render_png:
            from nepa3d_jax.eval import render

            out["render_png"] = render.cpac_sheet(render_png, sheet,
                                                  float(mesh_eval.option(c, "mesh_mc_level")))
    # `timing` is the first seed's pass (the original's figure); this adds every pass.
    out["timing"] = {**out.get("timing", {}), "all_seeds_and_baselines_s":
                     time.perf_counter() - t0}
    if str(c.out_json):
        path = side_file(str(c.out_json))
        report.write_json_atomic(path, _side(groups, runs[0]["_per_shape"]["paths"], seeds))
        out["per_shape_json"] = path
        report.write_json_atomic(str(c.out_json), out)
        log.info("CPAC-UDF written to %s (per shape: %s)", c.out_json, path)
    return out


def _significance(groups: dict[str, Any]) -> dict[str, Any]:
    ref = groups.get("pretrained")
    if not ref:
        return {}
    a = np.mean([s["abs_err"] for s in ref], axis=0)
    out = {}
    for name in ("random_init", "nn_copy"):
        if groups.get(name):
            b = np.mean([s["abs_err"] for s in groups[name]], axis=0)
            out[f"pretrained_vs_{name}"] = {"metric": "per-shape mae (mean over seeds)",
                                            **stats.paired_test(a, b, "wilcoxon")}
    return out


def _mesh(c, first: dict[str, Any], random_first: dict[str, Any] | None,
          sheet: list[dict[str, Any]], n_sheet: int) -> dict[str, Any]:
    """The mesh_eval block of the pretrained probe, nn_dist and the random-init probe; the
    first `n_sheet` shapes' grids go to `sheet` (labels pretrained / random-init / nn_dist)."""
    samples = first["_samples"]
    _, _, rep_fn = first["_loaded"]
    grids: list[dict[str, Any]] = []
    block = mesh_eval.run(c, samples, first["_layout_for"], rep_fn, first["_predict"],
                          grids_out=grids, n_grids=n_sheet)
    rnd_grids: list[dict[str, Any]] = []
    if random_first is not None and random_first["_predict"] is not None:
        rnd = mesh_eval.run(c, samples, random_first["_layout_for"],
                            random_first["_loaded"][2], random_first["_predict"],
                            names=("probe",), grids_out=rnd_grids, n_grids=n_sheet)
        block["random_init"] = rnd.get("probe")
    for i, row in enumerate(grids):
        labelled = {}
        if "probe" in row["grids"]:
            labelled["pretrained"] = row["grids"]["probe"]
        if i < len(rnd_grids):
            labelled["random-init"] = rnd_grids[i]["grids"]["probe"]
        labelled["nn_dist"] = row["grids"]["nn_dist"]
        sheet.append({"name": row["name"], "gt": row["gt"], "grids": labelled})
    return block


def _side(groups: dict[str, Any], paths: list[str], seeds: list[int]) -> dict[str, Any]:
    return {"paths": [os.path.abspath(p) for p in paths], "seeds": seeds,
            "stats": {name: {k: [row[k].tolist() for row in rows] for k in rows[0]}
                      for name, rows in groups.items() if rows}}
