"""Sampled shapes through the network, batch by batch: host threads read and sample the caches
while one batch runs on the devices (one batch stays in flight)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from nepa3d_jax.eval.cpac import metrics, report, shape_sampling, tokens
from nepa3d_jax.eval.cpac.extract import RepresentationFn

Item = tuple[shape_sampling.ShapeSample, "np.ndarray | None"]  # a shape and its nn_copy prediction


def samples(paths: list[str], *, seed: int, backend: str, mode: str, c, pool,
            with_baseline: bool) -> Iterator[Item]:
    """Each shape of `paths` sampled by the protocol (in order), sampled on `pool`'s threads."""
    partners = (shape_sampling.mismatch_partners(paths, int(c.mismatch_shift))
                if mode == "mismatch" else [None] * len(paths))
    opts = dict(voxel_grid=int(c.voxel_grid), voxel_dilate=int(c.voxel_dilate),
                voxel_max_steps=int(c.voxel_max_steps))
    grid = dict(mode=str(c.grid_sample_mode), near_tau=float(c.grid_near_tau),
                near_frac=float(c.grid_near_frac))

    def one(args):
        path, partner = args
        s = shape_sampling.sample_shape(
            path, seed=seed, context_backend=backend, n_context=int(c.n_context),
            n_query=int(c.n_query), context_mode=mode,
            disjoint_context_query=bool(int(c.disjoint_context_query)), mismatch_path=partner,
            backend_opts=opts, query_source=str(c.query_source),
            query_pool_frac=float(c.query_pool_frac), grid_opts=grid)
        nn = metrics.nn_copy_predict(s.ctx_xyz, s.ctx_dist, s.q_xyz) if with_baseline else None
        return s, nn

    return pool.map(one, zip(paths, partners))


def _batched(it: Iterable, n: int) -> Iterator[list]:
    it = iter(it)
    while batch := list(itertools.islice(it, n)):
        yield batch


def run_pass(items: Iterable[Item], n_items: int, layout: tokens.TokenLayout,
             rep_fn: RepresentationFn | None, on_batch: Callable, desc: str,
             progress: bool) -> None:
    """`on_batch(representations or None, batch)` for every batch, in order; `desc` labels the
    progress bar."""
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


def rows(out, batch) -> np.ndarray:
    """(sum of queries, D) float32 representations of a finished batch, padding dropped."""
    r = np.asarray(out)[:len(batch)]
    return r.reshape(-1, r.shape[-1])
