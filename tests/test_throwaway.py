"""THROWAWAY: a new evaluator and a new point order, each added in one module."""

import pathlib

import jax
import numpy as np

from nepa3d_jax.config import load_config, validate
from nepa3d_jax.tokenizer import build_sequence
from nepa3d_jax.train import evaluate

DEMO = str(pathlib.Path(__file__).resolve().parents[1] / "configs" / "demo.py")


def test_new_evaluator_runs_after_training(reference_dir, tmp_path):
    config = load_config(DEMO, ["train.eval_after=count_shapes", f"workdir={tmp_path}",
                                f"eval.cpac_udf.cache_root={reference_dir}"])
    validate(config)
    config.eval.count_shapes = dict(cache_root=str(reference_dir / "cache"))
    assert evaluate.run_after_training(config, "count_shapes") == {"n_shapes": 10,
                                                                     "ckpt": str(tmp_path)}


def test_new_point_order_is_valid_and_orders():
    validate(load_config(DEMO, ["data.point_order_mode=x_desc"]))
    xyz = np.random.RandomState(0).rand(8, 3).astype(np.float32)
    feat, _ = build_sequence(xyz, np.zeros(8, np.float32), None, None, None, None, None,
                             n_point=8, n_ray=0, qa_tokens=False, pt_sample_mode="fps",
                             point_order_mode="x_desc", key=jax.random.key(0))
    x = np.asarray(feat[1:9, 0])
    assert np.all(np.diff(x) <= 0) and sorted(x.tolist()) == sorted(xyz[:, 0].tolist())
