"""Mesh parts of the study corpus, in a canonical frame (z up, about unit size).

Every part is closed (watertight up to the seams of a surface of revolution) and finely
tessellated along its height, so that the bend / taper / twist / noise of
`data_prep.study_shapes` deform it smoothly instead of moving a few corners. Composite
objects are unions of parts, concatenated (not booleaned), as the demo's `union` family.
"""

from __future__ import annotations

import numpy as np
import trimesh

MAX_EDGE = 0.08          # target edge length of refined flat parts (shapes are ~1 across)
SECTIONS = 32            # segments around a surface of revolution


def refine(mesh: trimesh.Trimesh, max_edge: float = MAX_EDGE) -> trimesh.Trimesh:
    """Split triangles until no edge is longer than `max_edge`; duplicate vertices merged."""
    v, f = trimesh.remesh.subdivide_to_size(mesh.vertices, mesh.faces, max_edge=max_edge,
                                            max_iter=12)
    out = trimesh.Trimesh(v, f, process=False)
    out.merge_vertices()
    return out


def box(extents, center=(0.0, 0.0, 0.0)) -> trimesh.Trimesh:
    m = refine(trimesh.creation.box(extents=np.asarray(extents, float)),
               max(MAX_EDGE, float(np.max(extents)) / 12))
    m.apply_translation(center)
    return m


def superquadric(radii, e1: float, e2: float, subdivisions: int = 3) -> trimesh.Trimesh:
    """Superellipsoid |x/a|^(2/e2) + |y/b|^(2/e2))^(e2/e1) + |z/c|^(2/e1) = 1.

    Each icosphere direction u is pushed to the surface point r*u, r = F(u)^(-e1/2) (F is
    homogeneous of degree 2/e1), so e1 = e2 = 1 is an ellipsoid and e -> 0 a box.
    """
    m = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
    u = np.asarray(m.vertices, np.float64)
    a = np.asarray(radii, np.float64)
    q = np.abs(u / a) + 1e-12
    f = (q[:, 0] ** (2 / e2) + q[:, 1] ** (2 / e2)) ** (e2 / e1) + q[:, 2] ** (2 / e1)
    return trimesh.Trimesh(u * (f ** (-e1 / 2))[:, None], m.faces, process=False)


def _line(p0, p1, step: float = 0.06) -> np.ndarray:
    """Points from p0 to p1 (p1 excluded) every ~`step`."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    n = max(1, int(np.ceil(np.linalg.norm(p1 - p0) / step)))
    t = np.arange(n)[:, None] / n
    return p0 + t * (p1 - p0)


def _polyline(points, closed: bool = False, step: float = 0.06) -> np.ndarray:
    pts = [np.asarray(p, float) for p in points]
    segs = [_line(a, b, step) for a, b in zip(pts[:-1], pts[1:])]
    out = np.concatenate(segs + ([pts[:1]] if closed else [pts[-1:]]))
    return out


def revolve(profile: np.ndarray, sections: int = SECTIONS) -> trimesh.Trimesh:
    """Surface of revolution about z of a (radius, z) profile (ends on the axis, or closed)."""
    m = trimesh.creation.revolve(np.asarray(profile, float), sections=sections)
    m.merge_vertices()
    return m


def cylinder(radius: float, height: float) -> trimesh.Trimesh:
    h = height / 2
    return revolve(_polyline([(0, -h), (radius, -h), (radius, h), (0, h)]))


def frustum(r_bottom: float, r_top: float, height: float) -> trimesh.Trimesh:
    h = height / 2
    return revolve(_polyline([(0, -h), (r_bottom, -h), (r_top, h), (0, h)]))


def capsule(radius: float, height: float, arc: int = 10) -> trimesh.Trimesh:
    """Cylinder of `height` between two hemispheres of `radius` (total height + 2 radius)."""
    h = height / 2
    t = np.linspace(0.0, np.pi / 2, arc + 1)
    low = np.stack([radius * np.sin(t), -h - radius * np.cos(t)], 1)
    side = _line((radius, -h), (radius, h))[1:]
    high = np.stack([radius * np.cos(t), h + radius * np.sin(t)], 1)
    return revolve(np.concatenate([low, side, high]))


def tube(r_outer: float, r_inner: float, height: float) -> trimesh.Trimesh:
    """Thick-walled pipe, open at both ends (an annulus swept up)."""
    h = height / 2
    return revolve(_polyline([(r_outer, -h), (r_outer, h), (r_inner, h), (r_inner, -h)],
                             closed=True))


def cup(r_outer: float, height: float, wall: float, bottom: float) -> trimesh.Trimesh:
    """Open-topped cup standing on z = 0: outer wall, rim, inner wall, floor."""
    ri = r_outer - wall
    return revolve(_polyline([(0, 0), (r_outer, 0), (r_outer, height), (ri, height),
                              (ri, bottom), (0, bottom)]))


def torus(major: float, minor: float) -> trimesh.Trimesh:
    return trimesh.creation.torus(major, minor, major_sections=SECTIONS, minor_sections=12)


def sweep_tube(path: np.ndarray, radius: float, sections: int = 12) -> trimesh.Trimesh:
    """Closed tube of circular section along a 3D polyline (capped ends, rotation-minimising
    frames), for handles and bent poles."""
    path = np.asarray(path, float)
    tang = np.gradient(path, axis=0)
    tang /= np.linalg.norm(tang, axis=1, keepdims=True)
    ref = np.array([0.0, 0.0, 1.0]) if abs(tang[0, 2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    n = np.cross(tang[0], ref)
    n /= np.linalg.norm(n)
    ang = np.linspace(0, 2 * np.pi, sections, endpoint=False)
    rings = []
    for i, t in enumerate(tang):
        n = n - t * (n @ t)                       # carry the normal along (parallel transport)
        n /= np.linalg.norm(n)
        b = np.cross(t, n)
        rings.append(path[i] + radius * (np.cos(ang)[:, None] * n + np.sin(ang)[:, None] * b))
    v = np.concatenate(rings + [path[:1], path[-1:]])
    k, s = len(path), sections
    faces = []
    for i in range(k - 1):
        for j in range(s):
            a, b2 = i * s + j, i * s + (j + 1) % s
            c, d = a + s, b2 + s
            faces += [(a, b2, d), (a, d, c)]
    c0, c1 = k * s, k * s + 1
    for j in range(s):
        faces.append((c0, (j + 1) % s, j))
        faces.append((c1, (k - 1) * s + j, (k - 1) * s + (j + 1) % s))
    m = trimesh.Trimesh(v, np.asarray(faces), process=False)
    m.fix_normals()
    return m


def prism(points_2d: np.ndarray, depth: float) -> trimesh.Trimesh:
    """Convex prism: a convex polygon in the x-z plane extruded along y by `depth`."""
    p = np.asarray(points_2d, float)
    v = np.concatenate([np.stack([p[:, 0], np.full(len(p), -depth / 2), p[:, 1]], 1),
                        np.stack([p[:, 0], np.full(len(p), depth / 2), p[:, 1]], 1)])
    return refine(trimesh.convex.convex_hull(v))


def concat(parts) -> trimesh.Trimesh:
    return trimesh.util.concatenate(list(parts))
