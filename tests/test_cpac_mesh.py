"""CPAC mesh metrics on analytic sphere UDFs: marching-cubes vertex placement, Chamfer and
F-score against closed forms (identical spheres, and spheres shifted by a known distance)."""

import math

import numpy as np
import pytest

from nepa3d_jax.eval.cpac import mesh

G, R, LEVEL, N = 64, 0.5, 0.05, 40000


def sphere_udf(offset_x: float = 0.0, grid_res: int = G) -> np.ndarray:
    c = mesh.grid_centers(grid_res)
    return np.abs(np.linalg.norm(c - np.array([offset_x, 0, 0], np.float32), axis=-1) - R)


def test_grid_centres_and_marching_cubes_vertices_sit_on_the_two_shells():
    c = mesh.grid_centers(4)
    np.testing.assert_allclose(c[:, 0, 0, 0], [-0.75, -0.25, 0.25, 0.75])
    np.testing.assert_allclose(c[0, :, 0, 1], [-0.75, -0.25, 0.25, 0.75])
    verts, faces = mesh.marching_cubes(sphere_udf(), LEVEL)
    r = np.linalg.norm(verts, axis=1)
    inner, outer = r[r < R], r[r >= R]
    # A UDF level set is two sheets at R -+ level; linear interpolation on a 2/64 grid.
    assert inner.size > 1000 and outer.size > 1000 and faces.shape[1] == 3
    assert np.abs(inner - (R - LEVEL)).max() < 0.004
    assert np.abs(outer - (R + LEVEL)).max() < 0.004


def test_identical_spheres_chamfer_at_the_sampling_floor_and_fscore_one():
    m, meshes = mesh.mesh_metrics(sphere_udf(), sphere_udf(), level=LEVEL, num_samples=N,
                                  fscore_tau=0.03)
    assert m["ok"] and meshes is not None
    # Two independent uniform samplings of the same area A (a planar Poisson process of
    # density N / A): nearest distance has mean 0.5 sqrt(A / N) and mean square A / (pi N)
    # per direction; nothing else separates identical meshes.
    area = 4 * math.pi * ((R - LEVEL) ** 2 + (R + LEVEL) ** 2)
    assert m["chamfer_l1"] == pytest.approx(math.sqrt(area / N), rel=0.05)
    assert m["chamfer_l2"] == pytest.approx(2 * area / (math.pi * N), rel=0.05)
    assert m["chamfer_l1"] < 0.015
    assert m["fscore"] > 0.99 and m["precision"] > 0.99 and m["recall"] > 0.99


@pytest.mark.parametrize("shift", [0.02, 0.04])
def test_shifted_sphere_chamfer_matches_the_closed_form(shift):
    """Spheres offset by s < level: a point at polar angle t is |s cos t| from the other
    sphere, so each direction's mean distance is s/2 and mean squared distance s^2/3."""
    same, _ = mesh.mesh_metrics(sphere_udf(), sphere_udf(), level=LEVEL, num_samples=N,
                                fscore_tau=0.01)
    m, _ = mesh.mesh_metrics(sphere_udf(shift), sphere_udf(), level=LEVEL, num_samples=N,
                             fscore_tau=0.01)
    # Squared distances add: the offset's 2 s^2 / 3 plus the sampling floor measured above.
    assert m["chamfer_l2"] == pytest.approx(2 * shift ** 2 / 3 + same["chamfer_l2"], rel=0.1)
    # L1: at least the offset's s, at most s plus the floor (triangle inequality).
    assert shift * 0.97 < m["chamfer_l1"] < shift + same["chamfer_l1"]
    assert m["fscore"] < same["fscore"]


def test_grid_without_a_surface_is_reported_not_raised():
    m, meshes = mesh.mesh_metrics(np.full((8, 8, 8), 0.5, np.float32), sphere_udf(grid_res=8),
                                  level=LEVEL, num_samples=100, fscore_tau=0.01)
    assert m == {"ok": False, "error": m["error"]} and "no surface" in m["error"]
    assert meshes is None
    summary = mesh.summarize([m, {"ok": True, "chamfer_l1": 0.1, "chamfer_l2": 0.01,
                                  "fscore": 0.5, "precision": 0.4, "recall": 0.6}])
    assert summary["chamfer_l1_mean"] == pytest.approx(0.1) and summary["fscore_n"] == 1
    assert mesh.summarize([m])["fscore_mean"] is None  # None, never NaN


def test_resampled_cache_grid_and_point_distance_grid_agree_with_the_analytic_udf():
    fine = sphere_udf(grid_res=48)
    coarse = mesh.resample_grid(fine, 24)
    np.testing.assert_allclose(coarse, sphere_udf(grid_res=24), atol=2.5 / 48)
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(20000, 3))
    pts = R * pts / np.linalg.norm(pts, axis=1, keepdims=True)
    np.testing.assert_allclose(mesh.distance_grid(pts, 16), sphere_udf(grid_res=16), atol=0.02)
