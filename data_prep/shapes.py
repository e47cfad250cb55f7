"""Procedural shape families for the synthetic corpus: random size, proportions and pose.

Families: box, sphere (ellipsoid), cylinder, torus, cone, capsule, and union (two or three
of the others, offset and overlapping; their surfaces are concatenated, not booleaned).
"""

from __future__ import annotations

import numpy as np
import trimesh

FAMILIES = ("box", "sphere", "cylinder", "torus", "cone", "capsule", "union")


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """4x4 homogeneous rotation from a uniformly random unit quaternion."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    r = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    out = np.eye(4)
    out[:3, :3] = r
    return out


def _primitive(family: str, rng: np.random.Generator) -> trimesh.Trimesh:
    u = rng.uniform
    if family == "box":
        return trimesh.creation.box(extents=u(0.3, 1.0, size=3))
    if family == "sphere":
        m = trimesh.creation.icosphere(subdivisions=2, radius=0.5)
        m.apply_scale(u(0.6, 1.0, size=3))
        return m
    if family == "cylinder":
        return trimesh.creation.cylinder(radius=u(0.15, 0.5), height=u(0.4, 1.5), sections=24)
    if family == "torus":
        major = u(0.4, 0.8)
        return trimesh.creation.torus(major, u(0.08, 0.45) * major, major_sections=24,
                                      minor_sections=12)
    if family == "cone":
        return trimesh.creation.cone(radius=u(0.2, 0.6), height=u(0.5, 1.5), sections=24)
    if family == "capsule":
        return trimesh.creation.capsule(height=u(0.3, 1.2), radius=u(0.12, 0.4), count=[12, 12])
    raise ValueError(f"unknown shape family {family!r}; known: {', '.join(FAMILIES)}")


def make_shape(family: str, rng: np.random.Generator) -> trimesh.Trimesh:
    """One random mesh of `family` in a random pose."""
    if family == "union":
        parts = []
        for _ in range(int(rng.integers(2, 4))):
            m = _primitive(FAMILIES[int(rng.integers(0, len(FAMILIES) - 1))], rng)
            m.apply_transform(random_rotation(rng))
            m.apply_translation(rng.uniform(-0.35, 0.35, size=3))
            parts.append(m)
        mesh = trimesh.util.concatenate(parts)
    else:
        mesh = _primitive(family, rng)
    mesh.apply_transform(random_rotation(rng))
    return mesh


def partial_scan(mesh: trimesh.Trimesh, n_points: int, rng: np.random.Generator,
                 noise: float = 0.01, background: float = 0.05) -> np.ndarray:
    """(n_points, 3) f32 ScanObjectNN-like view: the side facing a random camera, jittered,
    with a few background points on a ground plane below the object."""
    from data_prep.surface_sampling import sample_surface
    pts, face = sample_surface(mesh.vertices, mesh.faces, 4 * n_points, rng)
    view = rng.normal(size=3)
    view /= np.linalg.norm(view)
    normals = np.asarray(mesh.face_normals)[face]
    seen = pts[(normals @ view) > -0.1]
    if len(seen) < n_points // 4:
        seen = pts
    n_bg = int(round(background * n_points))
    obj = seen[rng.choice(len(seen), n_points - n_bg, replace=len(seen) < n_points - n_bg)]
    lo, hi = mesh.bounds
    ground = np.stack([rng.uniform(lo[0] - 0.2, hi[0] + 0.2, n_bg),
                       rng.uniform(lo[1] - 0.2, hi[1] + 0.2, n_bg),
                       np.full(n_bg, lo[2])], axis=1)
    cloud = np.concatenate([obj, ground]) + rng.normal(scale=noise, size=(n_points, 3))
    return cloud[rng.permutation(n_points)].astype(np.float32)
