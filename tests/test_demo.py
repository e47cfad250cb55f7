"""configs/demo.py: the embedded default is a valid, small Run-A style pretraining + CPAC job."""

import pathlib

from nepa3d_jax.config import derive, guard_warnings, load_config, validate

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_demo_config_is_valid_and_small():
    config = load_config(str(REPO / "configs" / "demo.py"))
    validate(config)
    derived = derive(config, num_devices=1)
    assert config.job == "pretrain" and config.workdir == "runs/demo"
    assert derived.seq_len == derived.max_len == 1 + 2 * 64 + 2 * 64 + 1
    assert derived.total_steps == 300 and derived.global_batch == 8 and derived.lr == 1e-3
    backends = sorted(c.backend for c in config.data.mix.values())
    assert backends == ["mesh", "pointcloud_noray", "udfgrid"]  # the Run-A style mixture
    assert config.data.synthetic.out_dir == "data/demo"
    assert config.train.eval_after == "cpac_udf" and "cpac_udf" in config.eval
    assert guard_warnings(config, derived) == []


def test_make_demo_runs_the_demo_config():
    makefile = (REPO / "Makefile").read_text()
    assert "-m nepa3d_jax.main --config configs/demo.py" in makefile
