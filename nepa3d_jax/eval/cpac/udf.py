"""CPAC-UDF, one evaluation seed of one network: the original protocol, number for number.

A ridge probe on a checkpoint's hidden states predicts unsigned distances. The job entry is
`eval/cpac/study.py`, which calls `run_single` once per evaluation seed and network
(pretrained, random-init). A pass reads top-down:
  `inputs`     config and split checks: which shapes train the head, which are scored;
  `fit_head`   the head-training pass and the float64 ridge solve (`ridge`);
  `test_pass`  the evaluated shapes through the network and the head, nn_copy beside them;
  `report`     the original's result keys (`udf_metrics`) and per-shape statistics.
Sampling (`shape_sampling`) and token sequences (`tokens`) are the original's; what differs is the
execution: shapes are read and sampled by host threads while batches of equal-length
sequences run through one jit-compiled, device-sharded forward (`extract`, `feed`), and the
head's normal equations are accumulated batch by batch instead of from one design matrix.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import os
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from nepa3d_jax.data.schema import CacheError
from nepa3d_jax.eval.cpac import feed, mesh_eval, metrics, shape_sampling
from nepa3d_jax.eval.cpac.extract import REP_SOURCES
from nepa3d_jax.eval.cpac.grid import GRID_MODES
from nepa3d_jax.eval.cpac.report import settings as original_settings
from nepa3d_jax.eval.cpac.network import Network
from nepa3d_jax.eval.cpac.ridge import RidgeAccumulator, ridge_fit, ridge_predict
from nepa3d_jax.eval.stats import parse_seeds, per_shape_stats

log = logging.getLogger(__name__)
BASELINES = ("none", "nn_copy")
POOL_KEY = "pt_dist_udf_pool"  # the query target; shapes without it fall back to pt_dist_pool


def _choice(c, name: str, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if str(c[name]) not in allowed:
        raise ValueError(f"config.{name}={c[name]!r}: choose from {', '.join(allowed)}")


def validate(c) -> None:
    """Config errors, each naming its field, before any file is read or anything compiles."""
    for name in ("n_context", "n_query", "max_shapes", "head_train_max_shapes", "head_train_n"):
        if int(c[name]) < 0:
            raise ValueError(f"config.{name}={c[name]} must be >= 0")
    if int(c.n_query) == 0:
        raise ValueError("config.n_query=0: CPAC needs query points")
    if int(c.batch_size) < 0:
        raise ValueError(f"config.batch_size={c.batch_size} must be >= 0 (0: automatic)")
    for name in ("context_mode_train", "context_mode_test"):
        _choice(c, name, shape_sampling.CONTEXT_MODES)
    _choice(c, "rep_source", REP_SOURCES)
    _choice(c, "target_transform", metrics.TARGET_TRANSFORMS)
    _choice(c, "baseline", BASELINES)
    _choice(c, "query_source", shape_sampling.QUERY_SOURCES)
    if str(c.query_source) != "pool":
        _choice(c, "grid_sample_mode", GRID_MODES)
    if float(c.ridge_lipschitz_lambda) > 0:
        raise ValueError("config.ridge_lipschitz_lambda > 0: the Lipschitz-refined ridge is not "
                         "implemented; use 0 (the original's default)")
    if int(c.baseline_only) and str(c.baseline) == "none":
        raise ValueError("config.baseline_only=1 requires config.baseline='nn_copy'")
    if not int(c.baseline_only) and not str(c.ckpt):
        raise ValueError("config.ckpt is required (our run directory or an original .pt)")
    if str(c.ckpt) and not os.path.exists(str(c.ckpt)):
        raise ValueError(f"config.ckpt={c.ckpt!r}: no such file or run directory")
    if str(c.ckpt) and os.path.isdir(str(c.ckpt)) and not os.path.isdir(
            os.path.join(str(c.ckpt), "checkpoints")):
        raise ValueError(f"config.ckpt={c.ckpt!r} is a directory but not a run directory "
                         "(no checkpoints/ inside); name a run directory or an original .pt")
    out = str(c.out_json)
    if out and os.path.isdir(out):
        raise ValueError(f"config.out_json={out!r} is a directory; name the result file")
    if out and os.path.exists(os.path.dirname(os.path.abspath(out))) and not os.access(
            os.path.dirname(os.path.abspath(out)), os.W_OK):
        raise ValueError(f"config.out_json={out!r}: its folder is not writable")
    if not os.path.isdir(str(c.cache_root)):
        raise ValueError(f"config.cache_root={c.cache_root!r} is not a directory")
    try:
        parse_seeds(c.seeds, int(c.eval_seed))
    except ValueError as err:
        raise ValueError(f"config.seeds: {err}") from None
    mesh_eval.validate(c)


def split_paths(c) -> tuple[list[str], list[str], list[str], str, bool]:
    """(all eval paths, head-train paths, head-test paths, head-train backend, transductive?)."""
    eval_paths = shape_sampling.list_shapes(str(c.cache_root), str(c.split))
    if int(c.max_shapes) > 0:
        eval_paths = eval_paths[:int(c.max_shapes)]
    if not eval_paths:
        raise ValueError(f"config.split={c.split!r}: no shapes under "
                         f"{os.path.join(str(c.cache_root), str(c.split), '*', '*.npz')}")
    head_split = str(c.head_train_split or "").strip()
    if head_split and head_split.lower() != "none":
        tr = shape_sampling.list_shapes(str(c.cache_root), head_split)
        if int(c.head_train_max_shapes) > 0:
            tr = tr[:int(c.head_train_max_shapes)]
        if not tr:
            raise ValueError(
                f"config.head_train_split={head_split!r}: no shapes under "
                f"{os.path.join(str(c.cache_root), head_split, '*', '*.npz')} (make the split "
                "view with data_prep.unpaired_split, or set head_train_split='none' for the "
                "legacy transductive head)")
        return eval_paths, tr, eval_paths, str(c.head_train_backend), False
    if len(eval_paths) < 2:
        raise ValueError("config.head_train_split='none' (transductive) needs >= 2 eval shapes")
    perm = np.arange(len(eval_paths))
    np.random.RandomState(int(c.eval_seed) & 0xFFFFFFFF).shuffle(perm)
    if int(c.head_train_n) > 0:
        n_train = min(int(c.head_train_n), len(eval_paths) - 1)
    else:
        n_train = max(1, min(int(round(float(c.head_train_ratio) * len(eval_paths))),
                             len(eval_paths) - 1))
    return (eval_paths, [eval_paths[i] for i in perm[:n_train]],
            [eval_paths[i] for i in perm[n_train:]], str(c.context_backend), True)


@dataclasses.dataclass(frozen=True)
class Inputs:
    """Which shapes a pass reads: all evaluated, head-training and head-test paths."""
    eval_paths: list[str]
    tr_paths: list[str]
    te_paths: list[str]
    head_backend: str            # the head-training pass's context backend
    legacy: bool                 # transductive split of the evaluated shapes (no train split)


def inputs(c) -> Inputs:
    """The checked config's shape lists (ValueError naming the field otherwise)."""
    validate(c)
    return Inputs(*split_paths(c))


def check_caches(c, inp: Inputs) -> None:
    """Every cache a pass will read has the keys it needs: one CacheError listing the first
    ten problems, before anything is loaded or compiled."""
    def backend(mode: str, name: str) -> str | None:
        return None if mode == "none" else name

    qs = str(c.query_source)
    problems = [] if int(c.baseline_only) else shape_sampling.check_shapes(
        inp.tr_paths, backend(str(c.context_mode_train), inp.head_backend), qs)
    problems += shape_sampling.check_shapes(
        inp.te_paths, backend(str(c.context_mode_test), str(c.context_backend)), qs)
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise CacheError("CPAC inputs unusable: " + "; ".join(problems[:10]) + more)


def _target_transform(c) -> dict[str, Any]:
    return dict(mode=str(c.target_transform), trunc_max=float(c.target_trunc_max),
                log_scale=float(c.target_log_scale))


@dataclasses.dataclass(frozen=True)
class Head:
    """The fitted ridge probe; it predicts in the transformed target space."""
    w: np.ndarray
    transform: dict[str, Any]

    def predict_transformed(self, x: np.ndarray) -> np.ndarray:
        return ridge_predict(x, self.w)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Distances (the target transform undone) for representation rows `x`."""
        return metrics.inverse_transform_target(ridge_predict(x, self.w), **self.transform)


@dataclasses.dataclass
class TestPass:
    """What the evaluated shapes gave: truths, the probe's and nn_copy's predictions."""
    y_true: np.ndarray           # (shapes * queries,) float32
    pred_t: np.ndarray | None    # probe, transformed space (None: baseline-only)
    nn: np.ndarray | None        # nn_copy (None: no baseline)
    kept: list[shape_sampling.ShapeSample]
    seconds: float


@dataclasses.dataclass
class Pass:
    """One seed of one network: the original's result keys and what the study builds on."""
    result: dict[str, Any]       # the original's result JSON (metrics, settings, timing)
    per_shape: dict[str, Any]    # {"paths", "probe", "nn_copy"}: per-shape statistics
    samples: list[shape_sampling.ShapeSample]  # the first `keep` evaluated shapes (mesh eval)
    head: Head | None
    y_true: np.ndarray
    pred: np.ndarray | None      # probe distances (None: baseline-only)


def phase(net: Network, seed: int, name: str, n_shapes: int) -> str:
    """Announces a pass in the log; returns its progress-bar label."""
    desc = f"CPAC {net.label} seed {seed}: {name}"
    log.info("%s over %d shapes", desc, n_shapes)
    return desc


def fit_head(c, inp: Inputs, net: Network, pool, fallback: set[str]) -> Head:
    """The head-training pass and the ridge solve (the original's, in float64)."""
    transform = _target_transform(c)
    layout = net.layout(0 if str(c.context_mode_train) == "none" else int(c.n_context),
                        int(c.n_query))
    acc = None
    rows: list[tuple[np.ndarray, np.ndarray]] = []

    def train_batch(out, batch):
        nonlocal acc
        x = feed.rows(out, batch)
        y = np.concatenate([s.q_dist for s, _ in batch])
        fallback.update(s.path for s, _ in batch if s.target_key != POOL_KEY)
        if int(c.head_train_n) > 0:
            rows.append((x, y))
            return
        acc = acc or RidgeAccumulator(x.shape[1])
        acc.add(x, metrics.transform_target(y, **transform))

    items = feed.samples(inp.tr_paths, seed=int(c.eval_seed), backend=inp.head_backend,
                         mode=str(c.context_mode_train), c=c, pool=pool, with_baseline=False)
    desc = phase(net, int(c.eval_seed), "head-train pass", len(inp.tr_paths))
    feed.run_pass(items, len(inp.tr_paths), layout, net.rep_fn, train_batch, desc,
                  bool(c.progress))
    if not rows:
        return Head(acc.solve(float(c.ridge_lambda)), transform)
    # the original's cap: a random subset of all head-training rows
    x = np.concatenate([r[0] for r in rows])
    y = np.concatenate([r[1] for r in rows])
    if x.shape[0] > int(c.head_train_n):
        sel = np.random.RandomState(int(c.eval_seed) & 0xFFFFFFFF).permutation(
            x.shape[0])[:int(c.head_train_n)]
        x, y = x[sel], y[sel]
    y_t = metrics.transform_target(y, **transform)
    return Head(ridge_fit(x, y_t, float(c.ridge_lambda)), transform)


def test_pass(c, inp: Inputs, net: Network, head: Head | None, pool, keep: int,
              fallback: set[str]) -> TestPass:
    """The evaluated shapes (sampled with `eval_seed + 999`) through the network and head."""
    t0 = time.perf_counter()
    with_baseline = str(c.baseline) == "nn_copy"
    layout = net.layout(0 if str(c.context_mode_test) == "none" else int(c.n_context),
                        int(c.n_query))
    ys, yhat_t, nn, kept = [], [], [], []

    def test_batch(out, batch):
        ys.extend(s.q_dist for s, _ in batch)
        kept.extend(s for s, _ in batch[:max(0, keep - len(kept))])
        fallback.update(s.path for s, _ in batch if s.target_key != POOL_KEY)
        if with_baseline:
            nn.extend(p for _, p in batch)
        if out is not None:
            yhat_t.append(head.predict_transformed(feed.rows(out, batch)))

    items = feed.samples(inp.te_paths, seed=int(c.eval_seed) + 999,
                         backend=str(c.context_backend), mode=str(c.context_mode_test), c=c,
                         pool=pool, with_baseline=with_baseline)
    desc = phase(net, int(c.eval_seed), "test pass", len(inp.te_paths))
    feed.run_pass(items, len(inp.te_paths), layout, net.rep_fn, test_batch, desc,
                  bool(c.progress))
    return TestPass(np.concatenate(ys).astype(np.float32),
                    np.concatenate(yhat_t) if yhat_t else None,
                    np.concatenate(nn) if with_baseline else None, kept,
                    time.perf_counter() - t0)


def report(c, inp: Inputs, net: Network, test: TestPass, fallback: set[str]
           ) -> tuple[dict[str, Any], dict[str, Any], np.ndarray | None]:
    """(the original's result keys, per-shape statistics, probe distances or None)."""
    tau, transform = float(c.tau), _target_transform(c)
    y_true, n_te = test.y_true, len(inp.te_paths)
    per_shape: dict[str, Any] = {"paths": list(inp.te_paths)}
    baseline = None
    if test.nn is not None:
        baseline = metrics.udf_metrics(y_true, test.nn, tau)
        baseline["name"] = "nn_copy"
        per_shape["nn_copy"] = per_shape_stats(y_true.reshape(n_te, -1),
                                               test.nn.reshape(n_te, -1), tau)
    settings = report_settings(c, inp, net)
    pred = None
    if test.pred_t is None:  # baseline_only
        out = dict(baseline)
        out.update(settings)
        out.update(baseline=baseline, baseline_only=True)
    else:
        pred = metrics.inverse_transform_target(test.pred_t, **transform)
        out = metrics.udf_metrics(y_true, pred, tau)
        per_shape["probe"] = per_shape_stats(y_true.reshape(n_te, -1), pred.reshape(n_te, -1),
                                             tau)
        out["near@tau_report"] = metrics.udf_metrics_near(y_true, pred, tau,
                                                          float(c.report_near_tau))
        out["metrics_transformed"] = metrics.udf_metrics(
            metrics.transform_target(y_true, **transform), test.pred_t,
            metrics.transform_tau(tau, **transform))
        out.update(settings)
        out["baseline"] = baseline
    if fallback:
        log.warning("%d shapes lack %s; their query targets are pt_dist_pool "
                    "(the original's fallback), e.g. %s", len(fallback), POOL_KEY,
                    sorted(fallback)[0])
    out["target_fallback"] = {"key": "pt_dist_pool", "n_shapes": len(fallback),
                              "examples": sorted(fallback)[:5]}
    return out, per_shape, pred


def report_settings(c, inp: Inputs, net: Network) -> dict[str, Any]:
    return original_settings(c, eval_paths=inp.eval_paths, tr_paths=inp.tr_paths,
                             te_paths=inp.te_paths, head_backend=inp.head_backend,
                             legacy=inp.legacy, qa=(net.qa_tokens, net.qa_layout, net.add_eos))


def _compile(c, net: Network) -> None:
    """Compiles both passes' forwards up front, timed apart from the passes."""
    if net.rep_fn is None:
        return
    shapes = set()
    for mode in (str(c.context_mode_train), str(c.context_mode_test)):
        lay = net.layout(0 if mode == "none" else int(c.n_context), int(c.n_query))
        shapes.add((lay.length, lay.q_pos.shape[0]))
    for shape in shapes:
        net.rep_fn.compile(*shape)


def run_single(c, net: Network, keep: int = 0) -> Pass:
    """One evaluation seed (`c.eval_seed`) of `net`; `keep`: how many evaluated shapes'
    samples to return (for the mesh evaluation and the picture). Caches are checked once by
    the study (`check_caches`) before the network is loaded."""
    t_start = time.perf_counter()
    inp = inputs(c)
    _compile(c, net)
    t_compiled = time.perf_counter()
    baseline_only = bool(int(c.baseline_only))
    fallback: set[str] = set()
    pool = concurrent.futures.ThreadPoolExecutor(max(1, int(c.workers)))
    try:
        head = None if baseline_only else fit_head(c, inp, net, pool, fallback)
        t_train = time.perf_counter()
        test = test_pass(c, inp, net, head, pool, keep, fallback)
    finally:  # on an error, queued shapes are dropped instead of sampled
        pool.shutdown(wait=True, cancel_futures=True)
    result, per_shape, pred = report(c, inp, net, test, fallback)
    n_shapes = (0 if baseline_only else len(inp.tr_paths)) + len(inp.te_paths)
    rep_fn = net.rep_fn
    result["timing"] = {
        "total_s": time.perf_counter() - t_start, "load_s": net.load_seconds,
        "compile_s": rep_fn.compile_seconds if rep_fn else 0.0,
        "head_train_pass_s": t_train - t_compiled, "test_pass_s": test.seconds,
        "shapes": n_shapes,
        "shapes_per_s": n_shapes / max(t_train - t_compiled + test.seconds, 1e-9),
        "batch_size": rep_fn.batch_size if rep_fn else 0,
    }
    return Pass(result, per_shape, test.kept, head, test.y_true, pred)
