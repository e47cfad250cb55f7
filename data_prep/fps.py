"""Farthest-point sampling order for caches (`pc_fps_order`, `pt_fps_order`), in numpy.

Integer orders must equal the original's exactly, so the float32 arithmetic and the tie
rule are the format's: start at the point farthest from the centroid (first on ties),
then repeatedly take the first point with the largest squared float32 distance to the
chosen set.
"""

from __future__ import annotations

import numpy as np


def _as_xyz(points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3); got {pts.shape}")
    return pts.astype(np.float32, copy=False)


def farthest_from_centroid(points: np.ndarray) -> int:
    pts = _as_xyz(points)
    c = pts.mean(axis=0, keepdims=True)
    return int(((pts - c) ** 2).sum(axis=1).argmax())


def fps_order(points: np.ndarray, k: int, start: int | None = None) -> np.ndarray:
    """(min(k, N),) int32 indices in farthest-point order."""
    pts = _as_xyz(points)
    n = pts.shape[0]
    kk = int(min(max(int(k), 0), n))
    out = np.empty((kk,), dtype=np.int32)
    if kk == 0:
        return out
    start = farthest_from_centroid(pts) if start is None else int(start)
    if not 0 <= start < n:
        raise ValueError(f"start index {start} out of range for {n} points")
    cols = [np.ascontiguousarray(pts[:, j]) for j in range(3)]
    tmp = np.empty((n,), np.float32)
    acc = np.empty((n,), np.float32)

    def sq_dist_to(i: int) -> np.ndarray:
        # ((dx*dx + dy*dy) + dz*dz) in float32: the summation order of a 3-wide row sum.
        np.subtract(cols[0], cols[0][i], out=acc)
        np.multiply(acc, acc, out=acc)
        for c in cols[1:]:
            np.subtract(c, c[i], out=tmp)
            np.multiply(tmp, tmp, out=tmp)
            np.add(acc, tmp, out=acc)
        return acc

    best = sq_dist_to(start).copy()
    out[0] = start
    for j in range(1, kk):
        far = int(best.argmax())
        out[j] = far
        np.minimum(best, sq_dist_to(far), out=best)
    return out
