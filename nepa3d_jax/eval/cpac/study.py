"""CPAC-UDF, the job entry: evaluation seeds, intervals, baselines, mesh metrics.

`run(config)` runs the single-seed protocol (`udf.run_single`, the original's numbers) once
per seed of `config.seeds` (empty: `eval_seed` alone) for the pretrained network and, with
`random_init_baseline=1`, for the same architecture at a fresh initialisation; `nn_copy`
comes with each pass. The result keeps the original's keys (with several seeds the top-level
`mae`, `rmse`, `iou@tau` are means over seeds) and adds:
  summary       per model and metric: mean, std over seeds, per-seed values, 95% bootstrap
                interval over shapes (nepa3d_jax.eval.stats)
  baselines     {"nn_copy": ..., "random_init": ...} with the same metrics
  significance  pretrained vs each baseline, Wilcoxon signed-rank over shapes of the
                seed-averaged per-shape MAE
  mesh_eval     with `mesh_eval=1` (first seed): Chamfer / F-score per model
  point_order   the CPAC order (Morton, the protocol) and the checkpoint's pretraining order
  per_shape_json  the side file with every shape's statistics per seed, for paired
                comparisons between runs (`python -m nepa3d_jax.eval.compare`)
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import time
from typing import Any

import jax
import numpy as np

from nepa3d_jax.eval import baselines, stats
from nepa3d_jax.eval.cpac import mesh_eval, network, report, shape_sampling, udf

log = logging.getLogger(__name__)
METRICS = tuple(stats.CPAC_METRICS)


def side_file(out_json: str) -> str:
    """`results/x.json` -> `results/x.per_shape.json`."""
    stem = out_json[:-5] if out_json.endswith(".json") else out_json
    return stem + ".per_shape.json"


def _passes(c, seeds: list[int], net: network.Network, keep: int) -> list[udf.Pass]:
    """`net` once per evaluation seed; only the first seed keeps shapes for the mesh eval."""
    runs = []
    for i, seed in enumerate(seeds):
        s = copy.deepcopy(c)
        s.eval_seed = int(seed)
        runs.append(udf.run_single(s, net, keep=keep if i == 0 else 0))
    return runs


def _per_shape(runs: list[udf.Pass], name: str) -> list[dict[str, np.ndarray]] | None:
    rows = [r.per_shape.get(name) for r in runs]
    return None if any(r is None for r in rows) else rows


def _metrics_block(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: summary[k]["mean"] for k in METRICS}


def run(config) -> dict[str, Any]:
    """Scores `config.ckpt` over `seeds` with its baselines; returns (and writes to
    `out_json`, with the per-shape side file) the result."""
    c = config
    t0 = time.perf_counter()
    seeds = stats.parse_seeds(c.seeds, int(c.eval_seed))
    inp = udf.inputs(c)  # config and split errors before any file is read
    if bool(c.check_caches):
        udf.check_caches(c, inp)
    net = network.load(c, max(len(inp.tr_paths), len(inp.te_paths)))
    mesh_on = bool(int(c.mesh_eval))
    render_png = str(c.render_png)
    n_render = max(1, int(c.render_shapes)) if render_png else 0
    keep = 0
    if mesh_on:
        keep = int(c.mesh_eval_max_shapes) or 1 << 30
    elif render_png:
        keep = 1 << 30  # every shape's sample: the sheet picks across classes
    runs = _passes(c, seeds, net, keep)
    random_runs: list[udf.Pass] = []
    rand_net = None
    want_random = bool(int(c.random_init_baseline))
    rand_seed = None
    if want_random and net.rep_fn is not None and hasattr(net.pretrained, "model"):
        rand_seed = baselines.init_seed(net.pretrained)
        rand_net = net.random_init(rand_seed)
        random_runs = _passes(c, seeds, rand_net, keep)

    out = dict(runs[0].result)
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
            {k: random_runs[0].result[k] for k in METRICS})}
    elif want_random:
        out["baselines"]["random_init"] = {"name": "random_init", "skipped": (
            "baseline_only run" if net.rep_fn is None else "checkpoint has no model to re-init")}
    out["significance"] = _significance(groups)
    out["point_order"] = {"cpac": shape_sampling.POINT_ORDER,
                          "checkpoint": net.pretrain_point_order}
    if mesh_on or render_png:
        sheet: list[dict[str, Any]] = []
        n_ctx = 0 if str(c.context_mode_test) == "none" else int(c.n_context)
        block = _mesh(c, n_ctx, (net, runs[0]),
                      (rand_net, random_runs[0]) if random_runs else None, sheet, n_render)
        if mesh_on:
            out["mesh_eval"] = block
        if render_png:
            from nepa3d_jax.eval import render

            out["render_png"] = render.cpac_sheet(render_png, sheet, float(c.mesh_mc_level))
    if str(c.plot_png) and runs[0].pred is not None:
        from nepa3d_jax.eval.cpac import plot as cpac_plot

        cpac_plot.save(str(c.plot_png), runs[0].y_true, runs[0].pred, n_query=int(c.n_query),
                       tau=float(c.tau))
    # `timing` is the first seed's pass (the original's figure); this adds every pass.
    out["timing"] = {**out.get("timing", {}), "all_seeds_and_baselines_s":
                     time.perf_counter() - t0}
    if str(c.out_json) and jax.process_index() == 0:
        path = side_file(str(c.out_json))
        report.write_json_atomic(path, _side(groups, runs[0].per_shape["paths"], seeds))
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


def _mesh(c, n_ctx: int, first: tuple[network.Network, udf.Pass],
          random_first: tuple[network.Network, udf.Pass] | None,
          sheet: list[dict[str, Any]], n_sheet: int) -> dict[str, Any]:
    """The mesh_eval block of the pretrained probe, nn_dist and the random-init probe; the
    sheet's `n_sheet` shapes (one per class where it can) go to `sheet` (pretrained /
    random-init / nn_copy, each with its per-shape mae)."""
    from nepa3d_jax.eval.cpac import sheet as sheet_lib

    net, one = first
    samples = sheet_lib.sheet_samples(one.samples, n_sheet, keep_all=bool(int(c.mesh_eval)))
    grids: list[dict[str, Any]] = []
    block = mesh_eval.run(c, samples, functools.partial(net.layout, n_ctx), net.rep_fn,
                          one.head.predict if one.head else None, grids_out=grids,
                          n_grids=n_sheet)
    rnd_grids: list[dict[str, Any]] = []
    if random_first is not None and random_first[1].head is not None:
        rnd_net, rnd = random_first
        block["random_init"] = mesh_eval.run(
            c, samples, functools.partial(rnd_net.layout, n_ctx), rnd_net.rep_fn,
            rnd.head.predict, names=("probe",), grids_out=rnd_grids,
            n_grids=n_sheet).get("probe")
    sheet.extend(sheet_lib.sheet_rows(grids, rnd_grids, one,
                                      random_first[1] if random_first else None))
    return block


def _side(groups: dict[str, Any], paths: list[str], seeds: list[int]) -> dict[str, Any]:
    return {"paths": [os.path.abspath(p) for p in paths], "seeds": seeds,
            "stats": {name: {k: [row[k].tolist() for row in rows] for k in rows[0]}
                      for name, rows in groups.items() if rows}}
