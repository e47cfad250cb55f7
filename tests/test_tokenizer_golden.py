"""Golden parity of the tokenizer with the original's build_sequence and primitives.

The reference cases are deterministic by construction (FPS sampling, ray pools of exactly
n_ray rays so the choice is a permutation undone by the direction sort), so whatever key
we pass must reproduce them: integers exactly, features within 1e-6.
"""

import functools
import json

import jax
import numpy as np
import pytest

from nepa3d_jax import tokenizer

CASE_NAMES = ("qa_interleave_fps_fps", "qa_interleave_fps_morton", "qa_split_fps_morton",
              "legacy_fps_morton", "qa_missing_ray", "qa_fixed_grid_morton",
              "legacy_noeos_fps")
SCAN_OPTIONS = dict(qa_tokens=False, pt_sample_mode="fps", point_order_mode="morton",
                    n_point=128, n_ray=0)


@pytest.fixture(scope="module")
def golden(reference_dir):
    with np.load(reference_dir / "golden" / "tokenizer_cases.npz") as z:
        arrays = {k: z[k] for k in z.files}
    cases = json.loads((reference_dir / "golden" / "tokenizer_cases.json").read_text())
    return arrays, cases


def test_case_list_is_complete(golden):
    arrays, cases = golden
    assert sorted(cases) == sorted(CASE_NAMES)
    stored = {k[len("case_"):-len("_feat")] for k in arrays if k.endswith("_feat")}
    assert stored == set(CASE_NAMES) | {"scan_legacy_pcfps_morton"}


def test_fps_order_primitive(golden):
    arrays, _ = golden
    want = arrays["prim_fps_order_256"]
    got = jax.jit(tokenizer.fps_order, static_argnums=1)(arrays["prim_points"], 256)
    np.testing.assert_array_equal(np.asarray(got), want)


def test_morton_primitive(golden):
    arrays, _ = golden
    want = arrays["prim_morton3d"]
    got = jax.jit(tokenizer.morton_codes)(arrays["prim_points"])
    assert got.dtype == np.uint32
    np.testing.assert_array_equal(np.asarray(got), want)
    np.testing.assert_array_equal(tokenizer.morton_codes_np(arrays["prim_points"]), want)


def test_ray_direction_primitive(golden):
    arrays, _ = golden
    got = jax.jit(tokenizer.ray_direction_order)(arrays["prim_ray_d"])
    np.testing.assert_array_equal(np.asarray(got), arrays["prim_ray_dir_order"])


def _assert_case(arrays, name, feat, type_id):
    want_feat = arrays[f"case_{name}_feat"]
    want_type = arrays[f"case_{name}_type_id"]
    assert feat.shape == want_feat.shape and feat.dtype == np.float32
    assert type_id.dtype == np.int32
    np.testing.assert_array_equal(np.asarray(type_id), want_type)
    np.testing.assert_allclose(np.asarray(feat), want_feat, rtol=0, atol=1e-6)


@pytest.mark.parametrize("use_jit", [True, False], ids=["jit", "eager"])
@pytest.mark.parametrize("name", CASE_NAMES)
def test_mesh_case(golden, name, use_jit):
    arrays, cases = golden
    pools = [arrays[f"mesh_{k}"] for k in ("pt_xyz", "pt_dist", "ray_o", "ray_d", "ray_hit",
                                           "ray_t", "ray_n")]
    fn = functools.partial(tokenizer.build_sequence, **cases[name])
    if use_jit:
        fn = jax.jit(fn)
    feat, type_id = fn(*pools, key=jax.random.key(7))
    _assert_case(arrays, name, feat, type_id)


@pytest.mark.parametrize("use_jit", [True, False], ids=["jit", "eager"])
def test_scan_case_with_cached_fps_order(golden, use_jit):
    arrays, _ = golden
    xyz = arrays["scan_pc_xyz"]
    fn = functools.partial(tokenizer.build_sequence, **SCAN_OPTIONS)
    if use_jit:
        fn = jax.jit(fn)
    feat, type_id = fn(xyz, np.zeros((xyz.shape[0], 1), np.float32), None, None, None, None,
                       None, pt_fps_order=arrays["scan_pc_fps_order"], key=jax.random.key(3))
    _assert_case(arrays, "scan_legacy_pcfps_morton", feat, type_id)


def test_scan_case_padded_pool(golden):
    """The same case through the padded-pool path: garbage beyond the counts changes nothing."""
    arrays, _ = golden
    xyz, order = arrays["scan_pc_xyz"], arrays["scan_pc_fps_order"]
    n = xyz.shape[0]
    xyz_pad = np.concatenate([xyz, np.full((500, 3), 5.0, np.float32)])
    order_pad = np.concatenate([order[:1000], np.full((300,), 7, np.int32)])
    fn = jax.jit(functools.partial(tokenizer.build_sequence, **SCAN_OPTIONS))
    feat, type_id = fn(xyz_pad, np.zeros((n + 500,), np.float32), None, None, None, None, None,
                       pt_fps_order=order_pad, key=jax.random.key(3), pt_count=np.int32(n),
                       fps_count=np.int32(1000))
    _assert_case(arrays, "scan_legacy_pcfps_morton", feat, type_id)
