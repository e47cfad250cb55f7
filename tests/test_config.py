"""Config loading, derived values, validation and start-up guards (no JAX needed)."""

import pathlib
import sys

import pytest

from nepa3d_jax.config import (ConfigError, derive, guard_warnings, load_config, sequence_length,
                               validate)

REPO = pathlib.Path(__file__).resolve().parents[1]
RUNS = {r: str(REPO / "configs" / f"run{r}.py") for r in "ABCD"}


@pytest.fixture(scope="module")
def configs():
    return {r: load_config(p) for r, p in RUNS.items()}


@pytest.mark.parametrize("run,seq_len,max_len", [("A", 4098, 4500), ("B", 1026, 2500),
                                                 ("C", 4098, 4500), ("D", 2050, 2500)])
def test_derived_values_at_8_devices(configs, run, seq_len, max_len):
    config = configs[run]
    validate(config)
    d = derive(config, num_devices=8, num_processes=2)
    assert (d.seq_len, d.max_len, d.global_batch, d.num_devices) == (seq_len, max_len, 128, 8)
    assert d.lr == pytest.approx(3e-4, rel=1e-12)  # 3e-4 * 128 / 128
    assert d.steps_per_epoch == 200000 // 128 == 1562
    assert d.total_steps == 100 * 1562


def test_lr_rule_and_num_steps():
    c = load_config(RUNS["A"], ["train.num_steps=7", "data.max_len=-1"])
    d = derive(c, num_devices=32)
    assert d.global_batch == 512 and d.lr == pytest.approx(3e-4 * 512 / 128)
    assert d.total_steps == 7 and d.max_len == 4098
    c = load_config(RUNS["A"], ["train.lr_scale=False"])
    assert derive(c, 32).lr == pytest.approx(3e-4)


def test_sequence_length_formula():
    assert sequence_length(1024, 1024, 1) == 4098
    assert sequence_length(1024, 0, 0) == 1026
    assert sequence_length(32, 32, 1, add_eos=False) == 129


def test_load_config_overrides_all_spellings():
    c = load_config(RUNS["C"], ["data.n_ray=0", "--config.train.base_lr=1e-3",
                                "config.data.qa_layout=split"])
    assert (c.data.n_ray, c.train.base_lr, c.data.qa_layout) == (0, 1e-3, "split")
    assert c.data.point_order_mode == "morton" and c.seed == 102  # C inherits A, then differs


@pytest.mark.parametrize("override,needle", [
    ("data.nray=0", "nray"),
    ("data.n_ray=abc", "data.n_ray"),
])
def test_load_config_bad_override_names_field(override, needle):
    with pytest.raises(ValueError, match=needle):
        load_config(RUNS["A"], [override])


def test_load_config_missing_file():
    with pytest.raises(ValueError, match="not found"):
        load_config("configs/nope.py")


def test_config_file_outside_repo_imports_package_defaults(tmp_path):
    """A user's config anywhere starts from the package's defaults; loading edits no sys.path."""
    path = tmp_path / "mine.py"
    path.write_text("from nepa3d_jax.train import pretrain_defaults\n\ndef get_config():\n"
                    "  c = pretrain_defaults.get_config()\n  c.data.n_point = 64\n  return c\n")
    before = list(sys.path)
    config = load_config(str(path))
    assert config.data.n_point == 64 and config.data.n_ray == 1024
    assert sys.path == before


def _errors(config):
    with pytest.raises(ConfigError) as info:
        validate(config)
    return str(info.value)


def test_max_len_too_small_names_fields():
    msg = _errors(load_config(RUNS["D"], ["data.n_ray=1024"]))  # needs 4098 > 2500
    for field in ("data.max_len=2500", "data.n_point", "data.n_ray", "data.qa_tokens", "4098"):
        assert field in msg


def test_max_len_covers_schedule():
    msg = _errors(load_config(RUNS["B"], ["data.n_point_schedule=0:1024,50:4096"]))
    assert "data.max_len=2500" in msg and "4098" in msg


@pytest.mark.parametrize("override,field", [
    ("data.point_order_mode=zorder", "data.point_order_mode"),
    ("data.pt_sample_mode_train=grid", "data.pt_sample_mode_train"),
    ("data.qa_layout=stacked", "data.qa_layout"),
    ("model.arch=encdec", "model.arch"),
    ("train.objective=mse", "train.objective"),
    ("job=train", "job"),
    ("train.batch_per_device=0", "train.batch_per_device"),
    ("train.base_lr=-1.0", "train.base_lr"),
    ("data.mix.shapenet_mesh.weight=0.0", "data.mix.shapenet_mesh.weight"),
    ("data.mix.shapenet_udf.backend=udf", "data.mix.shapenet_udf.backend"),
    ("model.heads=5", "model.heads"),
    ("data.mix_num_samples=0", "data.mix_num_samples"),
    ("parallel.fsdp=0", "parallel.fsdp"),
])
def test_invalid_fields_are_named(override, field):
    assert field in _errors(load_config(RUNS["A"], [override]))


def test_empty_mixture_and_several_problems_at_once():
    c = load_config(RUNS["A"], ["model.heads=5", "train.batch_per_device=-2"])
    c.data.mix = {}
    msg = _errors(c)
    assert "data.mix is empty" in msg and "model.heads" in msg and "train.batch_per_device" in msg


def test_qa_layout_with_qa_tokens_zero_is_valid(configs):
    validate(load_config(RUNS["B"], ["data.qa_layout=split"]))


def test_derive_rejects_epoch_smaller_than_batch():
    with pytest.raises(ConfigError, match="data.mix_num_samples"):
        derive(load_config(RUNS["A"], ["data.mix_num_samples=100"]), num_devices=8)


def test_guards_quiet_for_the_plan(configs):
    for config in configs.values():
        assert guard_warnings(config, derive(config, 8)) == []


def test_guard_lr_far_from_nominal():
    # The plan's post-mortem: ref batch 2048 at global batch 128 -> 1/16 of the nominal LR.
    c = load_config(RUNS["A"], ["train.lr_ref_batch=2048"])
    warnings = guard_warnings(c, derive(c, 8))
    assert len(warnings) == 1 and "0.0625x" in warnings[0] and "train.base_lr" in warnings[0]
    c = load_config(RUNS["A"], ["train.lr_ref_batch=512"])  # exactly 1/4: allowed
    assert guard_warnings(c, derive(c, 8)) == []


def test_guard_unused_fields():
    c = load_config(RUNS["B"], ["data.qa_layout=split", "train.mask_ratio=0.5",
                                "data.pt_rfps_m=1024", "data.drop_ray_prob=0.2"])
    warnings = guard_warnings(c, derive(c, 8))
    assert len(warnings) == 4
    for field in ("data.qa_layout", "train.mask_ratio", "data.pt_rfps_m", "data.drop_ray_prob"):
        assert any(w.startswith(field) for w in warnings)


def test_guard_pretrain_only_fields_for_eval_job():
    c = load_config(RUNS["A"], ["job=cpac_udf", "train.dual_mask_near=0.5"])
    (warning,) = guard_warnings(c)
    assert "train.dual_mask_near" in warning and "cpac_udf" in warning
