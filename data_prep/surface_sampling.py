"""Random parts of a cache: surface samples of a mesh and the point-query pool.

`rng` may be a `np.random.Generator` (our mesh pipeline) or a `np.random.RandomState`
(ScanObjectNN, where the original's draw order uniform -> choice -> normal is kept so a
seeded run reproduces the original's pools exactly).
"""

from __future__ import annotations

import numpy as np


def sample_surface(vertices: np.ndarray, faces: np.ndarray, count: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(points (count, 3) f32, face index (count,)) uniform by area over the triangles."""
    tri = np.asarray(vertices, np.float64)[np.asarray(faces)]
    a, ab, ac = tri[:, 0], tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    area = 0.5 * np.linalg.norm(np.cross(ab, ac), axis=1)
    cum = np.cumsum(area)
    face = np.minimum(np.searchsorted(cum, rng.random(count) * cum[-1]), len(cum) - 1)
    uv = rng.random((count, 2))
    flip = uv.sum(axis=1) > 1.0
    uv[flip] = 1.0 - uv[flip]                       # reflect into the triangle
    pts = a[face] + ab[face] * uv[:, :1] + ac[face] * uv[:, 1:]
    return pts.astype(np.float32), face


def query_pool(pc_xyz: np.ndarray, n: int, rng, surface_ratio: float = 0.5,
               surface_sigma: float = 0.02) -> np.ndarray:
    """(n, 3) f32 point queries: uniform in [-1, 1]^3 plus jittered point-cloud points, clipped."""
    n = int(n)
    n_uni = int(round(float(1.0 - surface_ratio) * n))
    n_surf = n - n_uni
    parts = []
    if n_uni > 0:
        parts.append(rng.uniform(-1.0, 1.0, size=(n_uni, 3)).astype(np.float32))
    if n_surf > 0:
        m = pc_xyz.shape[0]
        base = pc_xyz[rng.choice(m, size=n_surf, replace=m < n_surf)]
        jitter = rng.normal(scale=float(surface_sigma), size=(n_surf, 3)).astype(np.float32)
        parts.append((base + jitter).astype(np.float32))
    pool = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
    return np.clip(pool, -1.0, 1.0).astype(np.float32, copy=False)


def fill_nonfinite(x: np.ndarray) -> np.ndarray:
    """Replace NaN/+Inf by the largest finite value (1.0 if none), -Inf by 0, as float32."""
    x = np.asarray(x, np.float32)
    finite = np.isfinite(x)
    if finite.all():
        return x
    fill = float(x[finite].max()) if finite.any() else 1.0
    return np.nan_to_num(x, nan=fill, posinf=fill, neginf=0.0).astype(np.float32)
