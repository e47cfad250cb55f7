"""config_from_torch_args: the original's argparse names -> our config fields (torch-free)."""

import pytest

from nepa3d_jax.config.torch_args import (UnsupportedTorchArgs, config_from_torch_args,
                                          resolved_max_len)


def args(**kw):
    a = dict(d_model=384, layers=8, heads=6, n_point=1024, n_ray=1024, qa_tokens=1,
             qa_layout="split", add_eos=1, max_len=-1, arch="causal", seed=3, batch=16,
             epochs=100, lr=1.875e-05, objective="nepa", mask_ratio=0.4,
             mix_config="nepa3d/configs/mix.yaml", mix_num_samples=0, mix_seed=0,
             n_point_schedule="", n_ray_schedule="", pt_dist_key=None, point_order_mode="fps",
             pt_sample_mode_train="fps", dual_mask_near=0.5, dual_mask_far=0.1,
             dual_mask_window=32, dual_mask_warmup_frac=0.05, dual_mask_type_aware=1,
             include_pt_grad=0, include_ray_unc=0, aux_b2_weight=0.0, aux_b3_weight=0.0,
             aux_e_weight=0.0, force_missing_ray=False, save_dir="runs/a")
    a.update(kw)
    return a


def test_fields_are_filled_from_the_original_names():
    c = config_from_torch_args(args())
    assert c.job == "pretrain" and c.seed == 3 and c.workdir == "runs/a"
    assert (c.model.arch, c.model.d_model, c.model.layers, c.model.heads) == (
        "causal", 384, 8, 6)
    assert c.model.mlp_ratio == 4.0
    assert (c.data.n_point, c.data.n_ray, c.data.qa_tokens, c.data.qa_layout) == (
        1024, 1024, 1, "split")
    assert c.data.max_len == 1 + 2 * 2048 + 1
    assert c.data.pt_dist_key == "" and c.data.mix_config == "nepa3d/configs/mix.yaml"
    assert c.train.batch_per_device == 16 and c.train.epochs == 100
    # The original trains at the lr it is given: no scaling rule on top.
    assert c.train.base_lr == pytest.approx(1.875e-05) and c.train.lr_scale is False
    assert c.train.weight_decay == 0.05
    assert (c.train.dual_mask_near, c.train.dual_mask_far, c.train.dual_mask_window,
            c.train.dual_mask_type_aware) == (0.5, 0.1, 32, 1)
    assert isinstance(c.data.force_missing_ray, bool)


def test_single_corpus_run_becomes_one_mix_component():
    c = config_from_torch_args(args(mix_config="", cache_root="data/mn40", backend="udfgrid"))
    assert list(c.data.mix.keys()) == ["train"]
    comp = c.data.mix.train
    assert (comp.cache_root, comp.backend, comp.weight, comp.split) == (
        "data/mn40", "udfgrid", 1.0, "train")


def test_max_len_auto_covers_the_schedule():
    a = args(qa_tokens=0, n_point=256, n_ray=0, n_point_schedule="0:256,10:512,20:1024",
             n_ray_schedule="5:128")
    assert resolved_max_len(a) == 1 + 1024 + 128 + 1
    assert resolved_max_len(args(max_len=5000)) == 5000
    assert resolved_max_len(args(qa_tokens=1, n_point=32, n_ray=32, add_eos=0)) == 129


@pytest.mark.parametrize("name,value", [
    ("arch", "encdec"), ("include_pt_grad", 1), ("include_ray_unc", 1), ("aux_b2_weight", 0.1),
    ("aux_e_weight", 1.0), ("cycle_weight", 0.2)])
def test_unsupported_args_raise_naming_the_arg(name, value):
    with pytest.raises(UnsupportedTorchArgs, match=rf"{name}={value!r}"):
        config_from_torch_args(args(**{name: value}))


def test_non_strict_lists_the_unsupported_args():
    c = config_from_torch_args(args(arch="encdec"), strict=False)
    assert c.model.arch == "encdec"
    assert any("arch='encdec'" in p for p in c.torch_unsupported)


def test_window_scaling_modes_we_cannot_run_are_rejected():
    a = args(n_point_schedule="0:256,10:1024", dual_mask_window_scale="sqrt")
    with pytest.raises(UnsupportedTorchArgs, match="dual_mask_window_scale='sqrt'"):
        config_from_torch_args(a)
    config_from_torch_args(args(dual_mask_window_scale="sqrt"))  # no schedule: no effect


def test_missing_sizes_and_non_dict_are_errors():
    a = args()
    del a["heads"]
    with pytest.raises(ValueError, match="heads"):
        config_from_torch_args(a)
    with pytest.raises(TypeError, match="dict"):
        config_from_torch_args(["d_model"])
