"""The package's [-1, 1]^3 voxel grid (nepa3d_jax.data.grids): ray entry/exit, cell indices,
centres, trilinear sampling and its border clamp, checked against closed forms and against
scipy's order-1 interpolation (the caches' bit-for-bit checks are in test_data_prep_golden)."""

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from nepa3d_jax.data.grids import (grid_centers, occupancy_grid, ray_box_interval,
                                   trilinear_sample, voxel_index)


def test_slab_test_entry_and_exit_of_the_cube():
    o = np.array([[0.0, 0.0, -3.0], [0.2, 0.1, 0.0], [0.0, 2.0, -3.0], [0.5, 0.5, 0.5]],
                 np.float32)
    d = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [-1.0, -1.0, 0.0]],
                 np.float32) / np.array([[1], [1], [1], [np.sqrt(2)]], np.float32)
    hits, t_in, t_out = ray_box_interval(o, d)
    np.testing.assert_array_equal(hits, [True, True, False, True])
    np.testing.assert_allclose(t_in[[0, 1, 3]], [2.0, 0.0, 0.0], atol=1e-6)  # inside: 0
    np.testing.assert_allclose(t_out[[0, 1, 3]], [4.0, 0.8, 1.5 * np.sqrt(2)], rtol=1e-6)


def test_cells_are_floored_and_clipped_and_occupancy_dilates_with_the_cross():
    pts = np.array([[-1.0, 0.0, 0.999], [-1.5, 0.2499, 0.25], [1.0, 2.0, -0.26]], np.float32)
    np.testing.assert_array_equal(voxel_index(pts, 4), [[0, 2, 3], [0, 2, 2], [3, 3, 1]])
    occ = occupancy_grid(np.zeros((1, 3), np.float32), grid=5, dilate=1)
    assert occ.sum() == 7 and occ[2, 2, 2] and occ[1, 2, 2] and not occ[1, 1, 2]
    assert occupancy_grid(np.zeros((1, 3), np.float32), grid=5, dilate=0).sum() == 1


def test_centres_sit_at_minus_one_plus_half_voxel_steps():
    c = grid_centers(4)
    assert c.shape == (4, 4, 4, 3) and c.dtype == np.float32
    np.testing.assert_array_equal(c[:, 1, 2, 0], [-0.75, -0.25, 0.25, 0.75])
    np.testing.assert_array_equal(c[3, 1, 2], [0.75, -0.25, 0.25])
    with pytest.raises(ValueError, match="grid_res=0"):
        grid_centers(0)


def test_sampling_returns_the_grid_at_its_centres_and_is_exact_for_linear_fields():
    rng = np.random.default_rng(0)
    grid = rng.random((6, 6, 6), dtype=np.float32)
    # A centre's float32 position lands within an ulp of its index, not always on it.
    np.testing.assert_allclose(trilinear_sample(grid, grid_centers(6).reshape(-1, 3)),
                               grid.reshape(-1), rtol=0, atol=1e-6)
    c = grid_centers(8)
    lin = (0.5 * c[..., 0] - 2.0 * c[..., 1] + c[..., 2] + 3.0).astype(np.float32)
    inner = rng.uniform(-1 + 1 / 8, 1 - 1 / 8, size=(500, 3)).astype(np.float32)
    want = 0.5 * inner[:, 0] - 2.0 * inner[:, 1] + inner[:, 2] + 3.0
    np.testing.assert_allclose(trilinear_sample(lin, inner), want, atol=2e-6)


def test_points_beyond_the_outer_centres_take_the_edge_value():
    grid = np.arange(27, dtype=np.float32).reshape(3, 3, 3)
    # Corner region outside the outermost centres (|x| > 2/3), and a face region.
    pts = np.array([[-1.0, -1.0, -1.0], [0.99, 0.99, 0.99], [-0.9, 0.0, 0.0]], np.float32)
    np.testing.assert_array_equal(trilinear_sample(grid, pts),
                                  [grid[0, 0, 0], grid[2, 2, 2], grid[0, 1, 1]])


def test_agrees_with_scipy_order_one_nearest_mode_to_float32_rounding():
    rng = np.random.default_rng(1)
    grid = rng.random((10, 10, 10), dtype=np.float32) * 2.0
    pts = rng.uniform(-1.05, 1.05, size=(4000, 3)).astype(np.float32)
    # Same float32 voxel coordinates as the sampler; what is compared is the interpolation.
    idx = ((pts - np.float32(-1.0)) / np.float32(0.2) - np.float32(0.5)).astype(np.float64)
    want = map_coordinates(grid.astype(np.float64), idx.T, order=1, mode="nearest")
    np.testing.assert_allclose(trilinear_sample(grid, pts), want, rtol=0, atol=1e-6)
