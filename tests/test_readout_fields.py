"""The opt-in readout fields of QueryNepa (`model.final_norm`, `model.type_emb_std`): off by
default (the original's parameters and outputs), and when on they do what they say and survive
a save / load round trip through a run directory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nepa3d_jax.checkpoint import torch_import
from nepa3d_jax.model import QueryNepa
from nepa3d_jax.train import pretrain_defaults


def _init(**kw):
    model = QueryNepa(d_model=32, layers=2, heads=4, max_len=12, **kw)
    feat = jax.random.normal(jax.random.key(1), (2, 12, 15))
    tid = jnp.tile(jnp.asarray([0] + [5, 6] * 5 + [4]), (2, 1))
    params = model.init(jax.random.key(0), feat, tid)["params"]
    return model, params, feat, tid


def test_defaults_are_the_original():
    c = pretrain_defaults.get_config()
    assert c.model.final_norm is False and c.model.type_emb_std == 1.0
    _, params, _, _ = _init()
    assert "final_ln" not in params
    # torch's nn.Embedding default: N(0, 1)
    assert abs(float(np.std(params["type_emb"]["embedding"])) - 1.0) < 0.2


def test_type_emb_std_scales_the_init_only():
    _, p1, _, _ = _init()
    _, p2, _, _ = _init(type_emb_std=0.02)
    np.testing.assert_allclose(np.asarray(p2["type_emb"]["embedding"]),
                               0.02 * np.asarray(p1["type_emb"]["embedding"]), rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(p1["pos_emb"]), np.asarray(p2["pos_emb"]))


def test_final_norm_normalises_h_and_feeds_the_head():
    model, params, feat, tid = _init(final_norm=True)
    z, z_hat, h = model.apply({"params": params}, feat, tid)
    h = np.asarray(h)
    np.testing.assert_allclose(h.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(h.std(-1), 1.0, atol=1e-3)
    head = params["pred_head"]
    np.testing.assert_allclose(np.asarray(z_hat), h @ np.asarray(head["kernel"]) +
                               np.asarray(head["bias"]), rtol=1e-4, atol=1e-5)
    # `represent` (CPAC's last-layer rows) agrees with the full forward
    rows = jnp.asarray([3, 7])
    zr, hr = model.apply({"params": params}, feat, tid, rows, method=QueryNepa.represent)
    np.testing.assert_allclose(np.asarray(hr), h[:, [3, 7]], rtol=1e-5, atol=1e-5)


def test_final_norm_round_trips_through_the_torch_mapping():
    model, params, _, _ = _init(final_norm=True)
    state = torch_import.params_to_state_dict(params)
    assert {"final_norm.weight", "final_norm.bias"} <= set(state)
    spec = torch_import.infer_spec(state, heads=4)
    assert spec.final_norm and QueryNepa(**spec.model_kwargs()).final_norm
    back = torch_import.state_dict_to_params(state, spec)
    np.testing.assert_array_equal(back["final_ln"]["scale"], np.asarray(params["final_ln"]["scale"]))
    plain = torch_import.params_to_state_dict(_init()[1])
    assert not torch_import.infer_spec(plain, heads=4).final_norm


def test_type_emb_std_is_validated():
    from nepa3d_jax.config import validate
    from nepa3d_jax.config.errors import ConfigError
    c = pretrain_defaults.get_config()
    c.model.type_emb_std = 0.0
    with pytest.raises(ConfigError, match="model.type_emb_std"):
        validate(c)


def test_content_std_target_and_answer_regression():
    from nepa3d_jax.model import losses
    from nepa3d_jax.tokenizer.types import SLOT_DIST, TYPE_A_POINT, TYPE_BOS, TYPE_EOS, TYPE_Q_POINT
    rng = np.random.default_rng(0)
    tid = jnp.asarray([[TYPE_BOS] + [TYPE_Q_POINT, TYPE_A_POINT] * 4 + [TYPE_EOS]] * 3)
    z = jnp.asarray(rng.normal(size=(3, 10, 8)) + 5.0, jnp.float32)  # a shared offset
    mask = losses.nepa_token_mask(tid)
    std = np.asarray(losses.standardize_targets(z[:, 1:], mask))
    m = np.asarray(mask)
    np.testing.assert_allclose(std[m].mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(std[m].std(0), 1.0, atol=1e-3)
    # predicting the shared offset scores well on the plain target, badly on the standardised
    offset = jnp.full_like(z, 5.0)
    assert float(losses.nepa_loss(z, offset, tid)) < 0.05
    assert float(losses.nepa_loss(z, offset, tid, standardize=True)) > 0.5
    # answer regression: exact standardised answers -> 0; constant slots do not count
    feat = np.zeros((3, 10, 15), np.float32)
    feat[:, 2::2, SLOT_DIST] = rng.uniform(0, 0.3, size=(3, 4))
    f = jnp.asarray(feat)
    target = np.asarray(losses.standardize_targets(f[:, 1:], mask, eps=1e-12))
    pred = np.zeros((3, 10, 15), np.float32)
    pred[:, :-1] = target
    assert float(losses.answer_regression_loss(jnp.asarray(pred), f, tid)) < 1e-8
    assert abs(float(losses.answer_regression_loss(jnp.zeros_like(f), f, tid)) - 1.0) < 1e-4
