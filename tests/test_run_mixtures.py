"""Runs A-D draw the original's sample stream: their inline mixtures keep the YAML order.

The original's `pretrain_mixed_shapenet_mesh_udf_scan_mainsplit.yaml` (Runs A, C, D) lists
shapenet_mesh, shapenet_udf, scan_noray_mainsplit; `..._scan_pointcloud_mainsplit.yaml` (Run B)
lists shapenet_pc, scan_noray_mainsplit. Component order fixes the global sample indices, so the
inline mixtures must follow it; the index stream is checked against the original MixtureSampler's
stream on the reference corpus (the same golden as test_data_pipeline's YAML test).
"""

import pathlib

import pytest

from nepa3d_jax.config import load_config
from nepa3d_jax.data import mixture as mixture_lib

REPO = pathlib.Path(__file__).resolve().parents[1]
YAML_ORDER = {
    "A": ["shapenet_mesh", "shapenet_udf", "scan_noray_mainsplit"],
    "B": ["shapenet_pc", "scan_noray_mainsplit"],
    "C": ["shapenet_mesh", "shapenet_udf", "scan_noray_mainsplit"],
    "D": ["shapenet_mesh", "shapenet_udf", "scan_noray_mainsplit"],
}


@pytest.mark.parametrize("run", "ABCD")
def test_run_mixture_components_follow_the_yaml_order(run):
    spec = mixture_lib.mix_spec_from_config(load_config(str(REPO / f"configs/run{run}.py")).data)
    assert [c.name for c in spec.components] == YAML_ORDER[run]
    assert (spec.num_samples, spec.seed, spec.replacement) == (200000, 0, True)


def test_run_a_mixture_draws_the_original_stream(reference_dir, monkeypatch):
    """Run A's inline mixture on the reference corpus == the original sampler on mixA.yaml."""
    monkeypatch.chdir(reference_dir)
    data = load_config(str(REPO / "configs/runA.py"),
                       ["data.mix.shapenet_mesh.cache_root=cache",
                        "data.mix.shapenet_udf.cache_root=cache",
                        "data.mix.scan_noray_mainsplit.cache_root=scan_cache",
                        "data.mix_num_samples=40"]).data
    spec = mixture_lib.mix_spec_from_config(data)
    inline = mixture_lib.Mixture(spec)
    assert inline.epoch_indices(0)[:12].tolist() == [15, 23, 23, 14, 8, 21, 27, 11, 28, 3, 15, 20]
    assert inline.epoch_indices(1)[:12].tolist() == [18, 7, 1, 26, 18, 14, 15, 12, 9, 9, 10, 28]
    data.mix_config = "mixA.yaml"
    yaml_spec = mixture_lib.mix_spec_from_config(data)
    from_yaml = mixture_lib.Mixture(yaml_spec)

    def stream(mix, spec):  # (file, backend) of every sample of epoch 0
        return [(mix.path(i), spec.components[mix.locate(i)[0]].backend)
                for i in mix.epoch_indices(0)]

    assert stream(inline, spec) == stream(from_yaml, yaml_spec)


def test_components_without_order_keep_the_name_order():
    data = load_config(str(REPO / "configs/runA.py"), ["data.mix.shapenet_udf.order=-1"]).data
    names = [c.name for c in mixture_lib.mix_spec_from_config(data).components]
    assert names == ["shapenet_mesh", "scan_noray_mainsplit", "shapenet_udf"]
    for comp in data.mix.values():
        comp.order = -1
    names = [c.name for c in mixture_lib.mix_spec_from_config(data).components]
    assert names == sorted(names)
