"""The study corpus's 16 classes: confusable primitives and composite objects, with
intra-class variation (part proportions, anisotropic scale, bend / taper / twist, surface
noise) and a pose of random yaw plus a limited tilt.

Confusable groups: box / rounded_box / superellipsoid / ellipsoid (one superquadric family,
exponent ~0 / 0.15-0.3 / 0.45-0.7 / 1); cylinder / capsule / frustum; torus / thin_ring /
open_tube; table / chair (a back), lamp / dumbbell / mug / bracket. Deformations are mild
enough that a class keeps its defining trait (sharp edges, rounded ends, a hole, a back).
The frame is z up; every shape is generated from its own seeded generator.
"""

from __future__ import annotations

import numpy as np
import trimesh

from data_prep import study_parts as P

# Sorted by name: label i is the i-th name, as the classification reader numbers class folders.
STUDY_CLASSES = ("box", "bracket", "capsule", "chair", "cylinder", "dumbbell", "ellipsoid",
                 "frustum", "lamp", "mug", "open_tube", "rounded_box", "superellipsoid",
                 "table", "thin_ring", "torus")
CONFUSABLE_GROUPS = (("box", "rounded_box", "superellipsoid", "ellipsoid"),
                     ("cylinder", "capsule", "frustum"), ("torus", "thin_ring", "open_tube"),
                     ("table", "chair"), ("lamp", "dumbbell", "mug", "bracket"))
COMPOSITES = ("table", "chair", "lamp", "mug", "dumbbell", "bracket")
MAX_TILT_DEG = 15.0


def _radii(rng, lo: float = 0.25, hi: float = 0.55) -> np.ndarray:
    return rng.uniform(lo, hi, size=3)


def _box(rng):
    return P.box(2 * _radii(rng))


def _rounded_box(rng):
    return P.superquadric(_radii(rng), rng.uniform(0.15, 0.3), rng.uniform(0.15, 0.3))


def _superellipsoid(rng):
    return P.superquadric(_radii(rng), rng.uniform(0.45, 0.7), rng.uniform(0.45, 0.7))


def _ellipsoid(rng):
    return P.superquadric(_radii(rng), 1.0, 1.0)


def _cylinder(rng):
    return P.cylinder(rng.uniform(0.15, 0.45), rng.uniform(0.4, 1.4))


def _capsule(rng):
    r = rng.uniform(0.15, 0.4)
    return P.capsule(r, rng.uniform(0.3, 1.2))


def _frustum(rng):
    r = rng.uniform(0.25, 0.5)
    return P.frustum(r, r * rng.uniform(0.3, 0.65), rng.uniform(0.4, 1.3))


def _torus(rng):
    major = rng.uniform(0.4, 0.6)
    return P.torus(major, major * rng.uniform(0.25, 0.45))


def _thin_ring(rng):
    major = rng.uniform(0.4, 0.6)
    return P.torus(major, major * rng.uniform(0.05, 0.11))


def _open_tube(rng):
    ro = rng.uniform(0.3, 0.5)
    return P.tube(ro, ro * rng.uniform(0.72, 0.9), rng.uniform(0.3, 1.4))


def _legs(rng, w: float, d: float, height: float, thick: float, round_legs: bool, z0: float):
    """Four legs under a w x d top, inset from its corners, from z0 - height to z0."""
    inset = rng.uniform(0.05, 0.15)
    xs, ys = w / 2 - thick / 2 - inset * w / 2, d / 2 - thick / 2 - inset * d / 2
    legs = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            c = (sx * xs, sy * ys, z0 - height / 2)
            if round_legs:
                leg = P.cylinder(thick / 2, height)
                leg.apply_translation(c)
            else:
                leg = P.box((thick, thick, height), c)
            legs.append(leg)
    return legs


def _table(rng):
    w, d = rng.uniform(0.9, 1.4), rng.uniform(0.5, 1.0)
    t, h = rng.uniform(0.04, 0.1), rng.uniform(0.45, 0.8)
    if rng.random() < 0.25:                        # round top on a pedestal
        top = P.cylinder(w / 2, t)
        top.apply_translation((0, 0, h + t / 2))
        col = P.cylinder(rng.uniform(0.04, 0.08), h)
        col.apply_translation((0, 0, h / 2))
        foot = P.cylinder(rng.uniform(0.2, 0.35), 0.04)
        foot.apply_translation((0, 0, 0.02))
        return P.concat([top, col, foot])
    top = P.box((w, d, t), (0, 0, h + t / 2))
    return P.concat([top] + _legs(rng, w, d, h, rng.uniform(0.05, 0.1), rng.random() < 0.4, h))


def _chair(rng):
    w, d = rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6)
    t, h = rng.uniform(0.04, 0.08), rng.uniform(0.35, 0.5)
    hb, tb = rng.uniform(0.35, 0.65), rng.uniform(0.03, 0.07)
    parts = [P.box((w, d, t), (0, 0, h + t / 2)),
             P.box((w, tb, hb), (0, -d / 2 + tb / 2, h + t + hb / 2))]
    parts += _legs(rng, w, d, h, rng.uniform(0.035, 0.06), rng.random() < 0.4, h)
    if rng.random() < 0.3:                         # armrests
        ha = rng.uniform(0.15, 0.25)
        for sx in (-1, 1):
            parts.append(P.box((0.04, d * 0.8, 0.04), (sx * (w / 2 - 0.02), 0, h + t + ha)))
            parts.append(P.box((0.03, 0.03, ha), (sx * (w / 2 - 0.02), d * 0.3, h + t + ha / 2)))
    return P.concat(parts)


def _lamp(rng):
    rb, tb = rng.uniform(0.15, 0.3), rng.uniform(0.03, 0.07)
    hp, rp = rng.uniform(0.6, 1.1), rng.uniform(0.015, 0.035)
    rs = rng.uniform(0.15, 0.3)
    shade = P.frustum(rs, rs * rng.uniform(0.4, 0.7), rng.uniform(0.2, 0.35))
    base = P.cylinder(rb, tb)
    base.apply_translation((0, 0, tb / 2))
    if rng.random() < 0.35:                        # arched arm: the shade hangs at its end
        reach = rng.uniform(0.25, 0.5)
        a = np.linspace(0, np.pi / 2, 16)
        arc = np.stack([reach * (1 - np.cos(a)), 0 * a, hp + reach * np.sin(a) * 0.6], 1)
        path = np.concatenate([P._line((0, 0, tb), (0, 0, hp)), arc])
        pole = P.sweep_tube(path, rp)
        shade.apply_translation((arc[-1, 0], 0, arc[-1, 2] - 0.15))
    else:
        pole = P.cylinder(rp, hp)
        pole.apply_translation((0, 0, tb + hp / 2))
        shade.apply_translation((0, 0, tb + hp))
    return P.concat([base, pole, shade])


def _mug(rng):
    r, h = rng.uniform(0.2, 0.35), rng.uniform(0.35, 0.75)
    wall = rng.uniform(0.025, 0.05)
    body = P.cup(r, h, wall, rng.uniform(0.03, 0.08))
    hr = rng.uniform(0.25, 0.4) * h                # handle: a C arc outside the wall
    a = np.linspace(-np.pi / 2, np.pi / 2, 20)
    path = np.stack([r - wall / 2 + hr * np.cos(a) * rng.uniform(0.7, 1.1), 0 * a,
                     h / 2 + hr * np.sin(a)], 1)
    return P.concat([body, P.sweep_tube(path, rng.uniform(0.02, 0.04))])


def _dumbbell(rng):
    length, rb = rng.uniform(0.7, 1.3), rng.uniform(0.03, 0.07)
    bar = P.cylinder(rb, length)
    parts = [bar]
    rw = rng.uniform(0.12, 0.3)
    discs = rng.random() < 0.5
    for s in (-1, 1):
        if discs:
            wgt = P.cylinder(rw, rng.uniform(0.1, 0.25))
            wgt.apply_translation((0, 0, s * length / 2))
        else:
            wgt = P.superquadric((rw, rw, rw), 1.0, 1.0, subdivisions=2)
            wgt.apply_translation((0, 0, s * (length / 2 + rw * 0.5)))
        parts.append(wgt)
    m = P.concat(parts)
    m.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (0, 1, 0)))
    return m


def _bracket(rng):
    a, b, w = rng.uniform(0.5, 1.0), rng.uniform(0.4, 0.9), rng.uniform(0.25, 0.6)
    t = rng.uniform(0.04, 0.1)
    parts = [P.box((a, w, t), (a / 2, 0, t / 2)), P.box((t, w, b), (t / 2, 0, b / 2))]
    if rng.random() < 0.5:                         # triangular gusset in the corner
        g = rng.uniform(0.3, 0.6) * min(a, b)
        gus = P.prism([(t, t), (t + g, t), (t, t + g)], rng.uniform(0.03, 0.06))
        parts.append(gus)
    return P.concat(parts)


_MAKERS = {"box": _box, "rounded_box": _rounded_box, "superellipsoid": _superellipsoid,
           "ellipsoid": _ellipsoid, "cylinder": _cylinder, "capsule": _capsule,
           "frustum": _frustum, "torus": _torus, "thin_ring": _thin_ring,
           "open_tube": _open_tube, "table": _table, "chair": _chair, "lamp": _lamp,
           "mug": _mug, "dumbbell": _dumbbell, "bracket": _bracket}
assert sorted(_MAKERS) == list(STUDY_CLASSES)


def deform(mesh: trimesh.Trimesh, rng: np.random.Generator, strength: float = 1.0):
    """Anisotropic scale, then (each with probability 1/2) taper, twist and bend along z,
    then smooth surface noise along the vertex normals; in place, returns the mesh."""
    v = np.asarray(mesh.vertices, np.float64).copy()
    v *= rng.uniform(1 - 0.2 * strength, 1 + 0.25 * strength, size=3)
    lo, hi = v[:, 2].min(), v[:, 2].max()
    half = max((hi - lo) / 2, 1e-6)
    zn = (v[:, 2] - (lo + hi) / 2) / half          # -1 .. 1 along the height
    if rng.random() < 0.5:                          # taper
        v[:, :2] *= (1 + rng.uniform(-0.25, 0.25) * strength * zn)[:, None]
    if rng.random() < 0.5:                          # twist about z
        phi = rng.uniform(-0.4, 0.4) * strength * zn
        c, s = np.cos(phi), np.sin(phi)
        v[:, 0], v[:, 1] = c * v[:, 0] - s * v[:, 1], s * v[:, 0] + c * v[:, 1]
    if rng.random() < 0.5:                          # bend: a parabola in a random vertical plane
        k = rng.uniform(-0.15, 0.15) * strength * half
        ang = rng.uniform(0, 2 * np.pi)
        v[:, :2] += (k * zn ** 2)[:, None] * np.array([np.cos(ang), np.sin(ang)])
    mesh.vertices = v
    if rng.random() < 0.7:                          # smooth noise: three random plane waves
        size = float(np.linalg.norm(v.max(0) - v.min(0)))
        amp = rng.uniform(0.003, 0.012) * size * strength
        k = rng.normal(size=(3, 3)) * rng.uniform(4, 10, size=(3, 1)) / size
        ph = rng.uniform(0, 2 * np.pi, size=3)
        disp = amp * np.sin(v @ k.T + ph).sum(1) / np.sqrt(3)
        mesh.vertices = v + disp[:, None] * np.asarray(mesh.vertex_normals)
    return mesh


def pose(rng: np.random.Generator, max_tilt_deg: float = MAX_TILT_DEG) -> np.ndarray:
    """4x4: a tilt of up to `max_tilt_deg` about a random horizontal axis after a uniform yaw."""
    yaw = trimesh.transformations.rotation_matrix(rng.uniform(0, 2 * np.pi), (0, 0, 1))
    a = rng.uniform(0, 2 * np.pi)
    tilt = trimesh.transformations.rotation_matrix(
        np.deg2rad(rng.uniform(0, max_tilt_deg)), (np.cos(a), np.sin(a), 0))
    return tilt @ yaw


def make_study_shape(cls: str, rng: np.random.Generator) -> trimesh.Trimesh:
    """One random mesh of class `cls`: its parts, deformed, centred and posed."""
    if cls not in _MAKERS:
        raise ValueError(f"unknown study class {cls!r}; known: {', '.join(STUDY_CLASSES)}")
    mesh = _MAKERS[cls](rng)
    deform(mesh, rng, 0.5 if cls in COMPOSITES else 1.0)
    lo, hi = mesh.bounds
    mesh.apply_translation(-(lo + hi) / 2)
    mesh.apply_transform(pose(rng))
    return mesh
