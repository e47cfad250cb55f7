"""The jitted train step on a tiny synthetic cache: device-count invariance, jit == eager,
masks, and the errors raised before anything is compiled."""

import functools

import jax
import numpy as np
import pytest

from nepa3d_jax.config import ConfigError
from nepa3d_jax.data.schema import CacheError
from nepa3d_jax.train import loop, masks
from nepa3d_jax.train.schedule import EpochSchedule, Sizes, scaled_window
from nepa3d_jax.train.step import StepSpec, device_batch, objective, tokenize
from nepa3d_jax.tokenizer.types import TYPE_A_POINT, TYPE_BOS, TYPE_EOS, TYPE_POINT, TYPE_Q_POINT
from helpers import tiny_config, write_tiny_cache


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_cache")
    write_tiny_cache(root)
    return root


def test_one_and_eight_devices_give_the_same_loss_trajectory(tiny_cache, tmp_path):
    losses = {}
    for n in (8, 1):
        config = tiny_config(tiny_cache, tmp_path / f"d{n}", batch_per_device=8 // n)
        # Random sampling + Morton order here (FPS is covered on the reference caches).
        config.data.pt_sample_mode_train, config.data.point_order_mode = "random", "morton"
        result = loop.run(config, devices=jax.devices()[:n])
        assert result["derived"]["global_batch"] == 8 and result["step"] == 3
        losses[n] = np.array([loss for _, loss in result["losses"]])
    assert losses[8].shape == (3,) and np.all(np.isfinite(losses[8]))
    assert not np.allclose(losses[8][0], losses[8][-1])  # it trains
    np.testing.assert_allclose(losses[1], losses[8], atol=1e-5, rtol=0)


def test_jit_and_eager_objective_gradients_agree(tiny_cache, tmp_path):
    """Tokens from the jitted tokenizer; the step's loss and gradient jitted vs op by op.

    (The AdamW update itself is checked against torch in test_train_optimizer.py.)
    """
    config = tiny_config(tiny_cache, tmp_path / "eager")
    config.data.n_ray = 0  # keeps the tokenizer's compile short; rays do not change the model
    trainer = loop.Trainer(config, devices=jax.devices()[:1])
    try:
        state, _ = trainer.initial_state()
        batch = jax.tree.map(np.asarray, device_batch(trainer.pipeline.batch_at(0, 0)))
    finally:
        trainer.close()
    spec = StepSpec.from_config(trainer.config, trainer.schedule.at(0), 1)
    key = jax.random.fold_in(jax.random.key(spec.seed), 0)
    feat, type_id = jax.jit(lambda b: tokenize(spec, b, key))(batch)

    def loss_and_grads(params):
        fn = functools.partial(objective, trainer.model, spec, feat=feat, type_id=type_id,
                               step=state.step, step_key=key, sample_id=batch["sample_id"])
        return jax.value_and_grad(lambda p: fn(params=p)[0])(params)

    jit_loss, jit_grads = jax.jit(loss_and_grads)(state.params)
    with jax.disable_jit():
        eager_loss, eager_grads = loss_and_grads(state.params)
    assert 0.0 < float(jit_loss) < 2.0
    np.testing.assert_allclose(float(jit_loss), float(eager_loss), rtol=1e-6)
    for a, b in zip(jax.tree.leaves(jit_grads), jax.tree.leaves(eager_grads)):
        scale = float(np.abs(np.asarray(b)).max()) or 1.0
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5 * scale, rtol=0)


def test_corrupt_cache_fails_before_compilation_naming_file_and_key(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    write_tiny_cache(root, per_class=1)
    bad = root / "train" / "ball" / "ball_0.npz"
    arrays = dict(np.load(bad))
    arrays["pt_dist_pool"] = arrays["pt_dist_pool"][:5]  # wrong length for the pool
    np.savez(bad, **arrays)
    monkeypatch.setattr(loop, "build_model", lambda *a, **k: pytest.fail("model was built"))
    with pytest.raises(CacheError) as err:
        loop.run(tiny_config(root, tmp_path / "run"))
    assert "ball_0.npz" in str(err.value) and "pt_dist_pool" in str(err.value)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_truncated_cache_file_is_named(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    write_tiny_cache(root, per_class=1)
    bad = root / "train" / "box" / "box_0.npz"
    bad.write_bytes(bad.read_bytes()[:100])
    monkeypatch.setattr(loop, "build_model", lambda *a, **k: pytest.fail("model was built"))
    with pytest.raises(CacheError, match="box_0.npz"):
        loop.run(tiny_config(root, tmp_path / "run"))


def test_max_len_too_small_names_the_fields(tmp_path):
    config = tiny_config(tmp_path, tmp_path / "run")
    config.data.max_len = 20  # Q/A needs 1 + 2*8 + 2*8 + 1 = 34
    with pytest.raises(ConfigError) as err:
        loop.run(config)
    for field in ("data.max_len=20", "34", "data.n_point", "data.n_ray", "data.qa_tokens"):
        assert field in str(err.value)


def test_dual_mask_is_causal_and_drops_past_edges_with_the_ramp():
    type_id = np.tile(np.array([TYPE_BOS] + [TYPE_Q_POINT, TYPE_A_POINT] * 20
                               + [TYPE_EOS], np.int32), (2, 1))
    key = jax.random.key(0)
    off = np.asarray(masks.dual_mask(key, type_id, near=0.0, far=0.0, window=4))[0]
    np.testing.assert_array_equal(off, np.tril(np.ones((42, 42), bool)))
    full = np.asarray(masks.dual_mask(key, type_id, near=1.0, far=0.0, window=4))[0]
    rel = np.arange(42)[:, None] - np.arange(42)[None, :]
    np.testing.assert_array_equal(full, (rel == 0) | (rel > 4))  # near past all dropped
    half = np.asarray(masks.dual_mask(key, type_id, near=0.5, far=0.5, window=4))[0]
    past = rel > 0
    assert 0.4 < 1 - half[past].mean() < 0.6 and np.all(np.diag(half)) and not half[~(rel >= 0)].any()
    aware = np.asarray(masks.dual_mask(key, type_id, near=1.0, far=1.0, window=4,
                                       type_aware=True))[0]
    is_q = type_id[0] == TYPE_Q_POINT
    assert np.all(aware[np.ix_(~is_q, np.arange(42))] == (rel[~is_q] >= 0))  # answers see all
    assert not aware[np.ix_(is_q, is_q)][np.tril(np.ones((20, 20), bool), -1)].any()


def test_mae_mask_picks_int_n_ratio_tokens_never_bos_eos():
    type_id = np.array([TYPE_BOS] + [TYPE_POINT] * 30 + [TYPE_EOS], np.int32)
    mask = np.asarray(masks.mae_token_mask(jax.random.key(3), type_id, 0.4))
    assert mask.sum() == int(30 * 0.4) and not mask[0] and not mask[-1]


def test_epoch_schedule_sizes_and_window_scaling(tmp_path):
    config = tiny_config(tmp_path, tmp_path / "run")
    config.data.n_point_schedule = "0:4,2:8"
    config.data.n_ray_schedule = "1:8"
    config.data.n_ray = 4
    config.train.dual_mask_window = 16
    schedule = EpochSchedule(config)
    assert schedule.at(0) == Sizes(4, 4, 16)
    assert schedule.at(1) == Sizes(4, 8, 24)
    assert schedule.at(5) == Sizes(8, 8, 32)
    assert scaled_window(0, 10, 5) == 0
