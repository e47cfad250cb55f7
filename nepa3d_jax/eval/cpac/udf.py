"""CPAC-UDF job: a ridge probe on a checkpoint's hidden states predicts unsigned distances.

`run(config)` (config: `configs/cpac_udf.py`) reproduces the original
`nepa3d.analysis.completion_cpac_udf` protocol number for number: the same per-shape sampling
(`cpac_sampling`), the same token sequences (`cpac_tokens`), a float64 ridge head (`ridge`) and
the same metrics (`udf_metrics`). What differs is the execution: shapes are read and sampled by
host threads while batches of equal-length sequences run through one jit-compiled,
device-sharded forward (`cpac_extract`); the head's normal equations are accumulated batch by
batch instead of from one giant design matrix.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax
import numpy as np

from nepa3d_jax.data.schema import CacheError
from nepa3d_jax.eval.cpac import report
from nepa3d_jax.eval.cpac import sampling
from nepa3d_jax.eval.cpac import tokens
from nepa3d_jax.eval.cpac import metrics as um
from nepa3d_jax.eval.cpac.extract import REP_SOURCES, RepresentationFn, checkpoint_max_len
from nepa3d_jax.eval.cpac.grid import GRID_MODES
from nepa3d_jax.eval.cpac import mesh_eval
from nepa3d_jax.eval.cpac.ridge import RidgeAccumulator, ridge_fit, ridge_predict
from nepa3d_jax.eval.stats import parse_seeds, per_shape_stats

log = logging.getLogger(__name__)
BASELINES = ("none", "nn_copy")


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
        _choice(c, name, sampling.CONTEXT_MODES)
    _choice(c, "rep_source", REP_SOURCES)
    _choice(c, "target_transform", um.TARGET_TRANSFORMS)
    _choice(c, "baseline", BASELINES)
    _choice(c, "query_source", sampling.QUERY_SOURCES)
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
    out = str(c.get("out_json", "") or "")
    if out and os.path.isdir(out):
        raise ValueError(f"config.out_json={out!r} is a directory; name the result file")
    if out and os.path.exists(os.path.dirname(os.path.abspath(out))) and not os.access(
            os.path.dirname(os.path.abspath(out)), os.W_OK):
        raise ValueError(f"config.out_json={out!r}: its folder is not writable")
    if not os.path.isdir(str(c.cache_root)):
        raise ValueError(f"config.cache_root={c.cache_root!r} is not a directory")
    try:
        parse_seeds(c.get("seeds", ""), int(c.eval_seed))
    except ValueError as err:
        raise ValueError(f"config.seeds: {err}") from None
    mesh_eval.validate(c)


def default_batch_size() -> int:
    """Shapes per call for `batch_size=0`: one per device on CPU, where a single Run-A sequence
    keeps its activations in cache and larger batches are slower per shape; 8 per device on
    accelerators."""
    per_device = 1 if jax.default_backend() == "cpu" else 8
    return per_device * jax.local_device_count()


def split_paths(c) -> tuple[list[str], list[str], list[str], str, bool]:
    """(all eval paths, head-train paths, head-test paths, head-train backend, transductive?)."""
    eval_paths = sampling.list_shapes(str(c.cache_root), str(c.split))
    if int(c.max_shapes) > 0:
        eval_paths = eval_paths[:int(c.max_shapes)]
    if not eval_paths:
        raise ValueError(f"config.split={c.split!r}: no shapes under "
                         f"{os.path.join(str(c.cache_root), str(c.split), '*', '*.npz')}")
    head_split = str(c.head_train_split or "").strip()
    if head_split and head_split.lower() != "none":
        tr = sampling.list_shapes(str(c.cache_root), head_split)
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


def _infer(c, pre, name: str, default: Any) -> Any:
    if int(c[name]) >= 0:
        return bool(int(c[name]))
    try:
        return bool(int(pre.config.data[name]))
    except (AttributeError, KeyError, TypeError):
        return default


def load_checkpoint(c, n_contexts: Iterable[int]):
    """(pretrained, qa_tokens, qa_layout, add_eos); the positional table checked against CPAC."""
    from nepa3d_jax.checkpoint import load_pretrained

    want = int(c.max_len)
    pre = load_pretrained(str(c.ckpt), max_len=want if want > 0 else None,
                          attention=str(c.get("attention", "")) or None)
    qa_tokens = _infer(c, pre, "qa_tokens", True)
    add_eos = _infer(c, pre, "add_eos", True)
    try:
        qa_layout = str(pre.config.data.qa_layout or "interleave").lower()
    except (AttributeError, KeyError):
        qa_layout = "interleave"
    note = sampling.order_note(getattr(getattr(pre, "config", None), "data", {}).get(
        "point_order_mode"))
    if note:
        log.warning(note)
    need = max(tokens.sequence_length(n, int(c.n_query), qa_tokens, add_eos) for n in n_contexts)
    have = checkpoint_max_len(pre)
    if have is not None and need > have:
        raise ValueError(
            f"{c.ckpt}: positional table holds {have} tokens but CPAC with n_context="
            f"{c.n_context}, n_query={c.n_query} needs {need}; set config.max_len={need} to "
            "resize it by linear interpolation (the original's --max_len)")
    return pre, qa_tokens, qa_layout, add_eos


def _samples(paths: list[str], *, seed: int, backend: str, mode: str, c, pool,
             with_baseline: bool) -> Iterator[tuple[sampling.ShapeSample, np.ndarray | None]]:
    partners = (sampling.mismatch_partners(paths, int(c.mismatch_shift)) if mode == "mismatch"
                else [None] * len(paths))
    opts = dict(voxel_grid=int(c.voxel_grid), voxel_dilate=int(c.voxel_dilate),
                voxel_max_steps=int(c.voxel_max_steps))
    grid = dict(mode=str(c.grid_sample_mode), near_tau=float(c.grid_near_tau),
                near_frac=float(c.grid_near_frac))

    def one(args):
        path, partner = args
        s = sampling.sample_shape(path, seed=seed, context_backend=backend,
                                  n_context=int(c.n_context), n_query=int(c.n_query),
                                  context_mode=mode,
                                  disjoint_context_query=bool(int(c.disjoint_context_query)),
                                  mismatch_path=partner, backend_opts=opts,
                                  query_source=str(c.query_source),
                                  query_pool_frac=float(c.query_pool_frac), grid_opts=grid)
        nn = um.nn_copy_predict(s.ctx_xyz, s.ctx_dist, s.q_xyz) if with_baseline else None
        return s, nn

    return pool.map(one, zip(paths, partners))


def _batched(it: Iterable, n: int) -> Iterator[list]:
    it = iter(it)
    while batch := list(itertools.islice(it, n)):
        yield batch


def _run_pass(items, n_items: int, layout: tokens.TokenLayout, rep_fn: RepresentationFn | None,
              on_batch: Callable, desc: str, progress: bool) -> None:
    """Feed sampled shapes through the model batch by batch; one batch stays in flight."""
    bar = report.progress(n_items, desc, progress)
    pending = None
    bs = rep_fn.batch_size if rep_fn is not None else 64
    for batch in _batched(items, bs):
        shapes = [s for s, _ in batch]
        for s in shapes:
            if s.ctx_xyz.shape[0] != layout.ctx_xyz_pos.shape[0] or \
                    s.q_xyz.shape[0] != layout.q_pos.shape[0]:
                raise ValueError(f"{s.path}: sampled {s.ctx_xyz.shape[0]} context / "
                                 f"{s.q_xyz.shape[0]} queries, expected the pass's layout")
        out = None
        if rep_fn is not None:
            feat = tokens.build_features(layout, np.stack([s.ctx_xyz for s in shapes]),
                                         np.stack([s.ctx_dist for s in shapes]),
                                         np.stack([s.q_xyz for s in shapes]))
            out = rep_fn(feat, layout.type_id, layout.q_pos)
        if pending is not None:
            on_batch(*pending)
        pending = (out, batch)
        bar.update(len(batch))
    if pending is not None:
        on_batch(*pending)
    bar.close()


def _reps(out, batch) -> np.ndarray:
    """(sum of queries, D) float32 rows of a finished batch, padding dropped."""
    r = np.asarray(out)[:len(batch)]
    return r.reshape(-1, r.shape[-1])


def run(config) -> dict[str, Any]:
    """Score one checkpoint with CPAC-UDF over `seeds`, with its baselines (random-init,
    nn_copy) and the optional mesh evaluation; returns (and writes to `out_json`) the result."""
    from nepa3d_jax.eval.cpac import study

    return study.run(config, run_single)


def load(c) -> tuple[Any, tuple, RepresentationFn | None]:
    """(pretrained or None, (qa_tokens, qa_layout, add_eos) or Nones, representation fn)."""
    n_ctx = [0 if str(c[m]) == "none" else int(c.n_context)
             for m in ("context_mode_train", "context_mode_test")]
    pre, rep_fn, qa = None, None, (None, None, None)
    if str(c.ckpt):
        pre, *qa = load_checkpoint(c, n_ctx)
        qa = tuple(qa)
    if not bool(int(c.baseline_only)):
        _, tr_paths, te_paths, _, _ = split_paths(c)
        # no bigger than the larger pass: small runs would otherwise mostly compute padding
        bs = int(c.batch_size) or default_batch_size()
        bs = min(bs, max(len(tr_paths), len(te_paths)))
        rep_fn = RepresentationFn(pre, rep_source=str(c.rep_source), batch_size=bs)
    return pre, qa, rep_fn


def run_single(config, loaded: tuple | None = None, keep: int = 0) -> dict[str, Any]:
    """One evaluation seed (`eval_seed`) of the original protocol, number for number.

    `loaded` = `load(config)` (reused across seeds and models); `keep`: how many evaluated
    shapes' samples to return (for the mesh evaluation). Private keys (`_per_shape`, ...)
    carry per-shape statistics and the head to `study`."""
    c = config
    t_start = time.perf_counter()
    validate(c)
    eval_paths, tr_paths, te_paths, head_backend, legacy = split_paths(c)
    mode_tr, mode_te = str(c.context_mode_train), str(c.context_mode_test)
    baseline_only = bool(int(c.baseline_only))
    with_baseline = str(c.baseline) == "nn_copy"
    n_ctx = {m: 0 if m == "none" else int(c.n_context) for m in (mode_tr, mode_te)}
    if bool(c.get("check_caches", True)):
        def backend(mode, name):
            return None if mode == "none" else name

        qs = str(c.query_source)
        problems = [] if baseline_only else sampling.check_shapes(
            tr_paths, backend(mode_tr, head_backend), qs)
        problems += sampling.check_shapes(te_paths, backend(mode_te, str(c.context_backend)), qs)
        if problems:
            more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
            raise CacheError("CPAC inputs unusable: " + "; ".join(problems[:10]) + more)

    pre, qa, rep_fn = loaded if loaded is not None else load(c)
    t_loaded = time.perf_counter()
    qa_tokens, qa_layout, add_eos = (qa if qa[0] is not None else (True, "interleave", True))

    def layout_for(mode):
        return tokens.token_layout(n_ctx[mode], int(c.n_query), qa_tokens=qa_tokens,
                                   qa_layout=qa_layout, add_eos=add_eos, causal_prefix=True)

    lay_tr, lay_te = layout_for(mode_tr), layout_for(mode_te)
    if rep_fn is not None:  # compile up front, timed apart from the passes
        for lay in {(lay_tr.length, lay_tr.q_pos.shape[0]), (lay_te.length, lay_te.q_pos.shape[0])}:
            rep_fn.compile(*lay)
    t_compiled = time.perf_counter()

    fallback: set[str] = set()
    tt = dict(mode=str(c.target_transform), trunc_max=float(c.target_trunc_max),
              log_scale=float(c.target_log_scale))
    w = None
    pool = concurrent.futures.ThreadPoolExecutor(max(1, int(c.workers)))
    try:
        if not baseline_only:
            acc = None
            rows: list[tuple[np.ndarray, np.ndarray]] = []

            def train_batch(out, batch):
                nonlocal acc
                x = _reps(out, batch)
                y = np.concatenate([s.q_dist for s, _ in batch])
                fallback.update(s.path for s, _ in batch if s.target_key != "pt_dist_udf_pool")
                if int(c.head_train_n) > 0:
                    rows.append((x, y))
                    return
                acc = acc or RidgeAccumulator(x.shape[1])
                acc.add(x, um.transform_target(y, **tt))

            items = _samples(tr_paths, seed=int(c.eval_seed), backend=head_backend, mode=mode_tr,
                             c=c, pool=pool, with_baseline=False)
            _run_pass(items, len(tr_paths), lay_tr, rep_fn, train_batch, "collect train",
                      bool(c.progress))
            if rows:  # the original's cap: a random subset of all head-training rows
                x = np.concatenate([r[0] for r in rows])
                y = np.concatenate([r[1] for r in rows])
                if x.shape[0] > int(c.head_train_n):
                    sel = np.random.RandomState(int(c.eval_seed) & 0xFFFFFFFF).permutation(
                        x.shape[0])[:int(c.head_train_n)]
                    x, y = x[sel], y[sel]
                w = ridge_fit(x, um.transform_target(y, **tt), float(c.ridge_lambda))
            else:
                w = acc.solve(float(c.ridge_lambda))
        t_train = time.perf_counter()

        ys, yhat_t, nn, kept = [], [], [], []

        def test_batch(out, batch):
            ys.extend(s.q_dist for s, _ in batch)
            kept.extend(s for s, _ in batch[:max(0, keep - len(kept))])
            fallback.update(s.path for s, _ in batch if s.target_key != "pt_dist_udf_pool")
            if with_baseline:
                nn.extend(p for _, p in batch)
            if out is not None:
                yhat_t.append(ridge_predict(_reps(out, batch), w))

        items = _samples(te_paths, seed=int(c.eval_seed) + 999, backend=str(c.context_backend),
                         mode=mode_te, c=c, pool=pool, with_baseline=with_baseline)
        _run_pass(items, len(te_paths), lay_te, rep_fn, test_batch, "collect test",
                  bool(c.progress))
    finally:  # on an error, queued shapes are dropped instead of sampled
        pool.shutdown(wait=True, cancel_futures=True)
    t_test = time.perf_counter()

    y_true = np.concatenate(ys).astype(np.float32)
    n_te = len(ys)
    per_shape = {"paths": list(te_paths)}
    baseline = None
    if with_baseline:
        baseline = um.udf_metrics(y_true, np.concatenate(nn), float(c.tau))
        baseline["name"] = "nn_copy"
        per_shape["nn_copy"] = per_shape_stats(y_true.reshape(n_te, -1),
                                               np.concatenate(nn).reshape(n_te, -1), float(c.tau))
    settings = report.settings(c, eval_paths=eval_paths, tr_paths=tr_paths, te_paths=te_paths,
                         head_backend=head_backend, legacy=legacy,
                         qa=(qa_tokens, qa_layout, add_eos))
    if baseline_only:
        out = dict(baseline)
        out.update(settings)
        out.update(baseline=baseline, baseline_only=True)
    else:
        pred_t = np.concatenate(yhat_t)
        pred = um.inverse_transform_target(pred_t, **tt)
        out = um.udf_metrics(y_true, pred, float(c.tau))
        per_shape["probe"] = per_shape_stats(y_true.reshape(n_te, -1), pred.reshape(n_te, -1),
                                             float(c.tau))
        out["near@tau_report"] = um.udf_metrics_near(y_true, pred, float(c.tau),
                                                     float(c.report_near_tau))
        out["metrics_transformed"] = um.udf_metrics(
            um.transform_target(y_true, **tt), pred_t, um.transform_tau(float(c.tau), **tt))
        out.update(settings)
        out["baseline"] = baseline
    if fallback:
        log.warning("%d shapes lack pt_dist_udf_pool; their query targets are pt_dist_pool "
                    "(the original's fallback), e.g. %s", len(fallback), sorted(fallback)[0])
    out["target_fallback"] = {"key": "pt_dist_pool", "n_shapes": len(fallback),
                              "examples": sorted(fallback)[:5]}
    t_end = time.perf_counter()
    n_shapes = (0 if baseline_only else len(tr_paths)) + len(te_paths)
    out["timing"] = {
        "total_s": t_end - t_start, "load_s": t_loaded - t_start,
        "compile_s": rep_fn.compile_seconds if rep_fn else 0.0,
        "head_train_pass_s": t_train - t_compiled, "test_pass_s": t_test - t_train,
        "shapes": n_shapes, "shapes_per_s": n_shapes / max(t_test - t_compiled, 1e-9),
        "batch_size": rep_fn.batch_size if rep_fn else 0,
    }
    if str(c.out_json) and jax.process_index() == 0:
        report.write_json_atomic(str(c.out_json), out)
        log.info("CPAC-UDF written to %s", c.out_json)
    if str(c.get("plot_png", "")) and not baseline_only:
        from nepa3d_jax.eval.cpac import plot as cpac_plot
        cpac_plot.save(str(c.plot_png), y_true, pred, n_query=int(c.n_query), tau=float(c.tau))
    out.update(_per_shape=per_shape, _samples=kept, _loaded=(pre, qa, rep_fn), _layout_for=lambda m: tokens.token_layout(
        n_ctx[mode_te], m, qa_tokens=qa_tokens, qa_layout=qa_layout, add_eos=add_eos,
        causal_prefix=True), _predict=None if w is None else (
            lambda x: um.inverse_transform_target(ridge_predict(x, w), **tt)))
    return out
