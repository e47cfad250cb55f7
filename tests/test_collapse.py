"""Collapse and shortcut diagnostics (closed forms on constructed embeddings), the
`model.nepa_target` switch, and their path through a short pretraining run."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nepa3d_jax.config import ConfigError, validate
from nepa3d_jax.model import QueryNepa
from nepa3d_jax.model.losses import nepa_loss
from nepa3d_jax.train import collapse, loop
from nepa3d_jax.train.augment import Augment
from nepa3d_jax.tokenizer.types import TYPE_A_POINT, TYPE_BOS, TYPE_Q_POINT

from helpers import tiny_config, write_tiny_cache


def test_channel_std_is_one_over_sqrt_d_when_isotropic_and_zero_when_collapsed():
    d = 16
    rng = np.random.default_rng(0)
    iso = rng.normal(size=(20000, d)).astype(np.float32)
    ones = np.ones(20000, np.float32)
    # Unit vectors uniform on the sphere: every coordinate has variance exactly 1/D.
    assert float(collapse.channel_std(iso, ones)) == pytest.approx(1 / math.sqrt(d), rel=0.02)
    same = np.tile(rng.normal(size=(1, d)), (500, 1)).astype(np.float32) * rng.uniform(
        0.5, 2.0, (500, 1)).astype(np.float32)  # one direction, any length
    assert float(collapse.channel_std(same, np.ones(500, np.float32))) < 1e-4
    # Masked rows do not count: the collapsed rows plus masked-out random ones.
    mixed = np.concatenate([same, iso[:500]])
    w = np.concatenate([np.ones(500), np.zeros(500)]).astype(np.float32)
    assert float(collapse.channel_std(mixed, w)) < 1e-4


def test_effective_rank_counts_equally_used_orthogonal_directions():
    d = 12
    basis = np.eye(d, dtype=np.float32)
    for k in (1, 3, 7):
        rows = np.repeat(basis[:k], 5, axis=0) * 3.0
        got = float(collapse.effective_rank(rows, np.ones(len(rows), np.float32)))
        assert got == pytest.approx(k, rel=1e-4)
    # Singular values (2, 1): p = (2/3, 1/3), erank = exp(H(p)).
    rows = np.concatenate([np.repeat(basis[:1], 4, 0), np.repeat(basis[1:2], 1, 0)])
    p = np.array([2 / 3, 1 / 3])
    expected = math.exp(-(p * np.log(p)).sum())
    assert float(collapse.effective_rank(rows, np.ones(5, np.float32))) == pytest.approx(
        expected, rel=1e-4)


def test_shortcut_metrics_on_constructed_parts():
    b, t, d = 2, 6, 8
    rng = np.random.default_rng(1)
    type_id = np.tile(np.array([TYPE_BOS, TYPE_Q_POINT, TYPE_A_POINT] * 2), (b, 1))
    tp = rng.normal(size=(b, t, d)).astype(np.float32)
    content = np.zeros_like(tp)
    out = collapse.shortcut_metrics(tp + content, content, tp, type_id)
    assert float(out["target_typepos_share"]) == pytest.approx(1.0)
    assert float(out["typepos_only_loss"]) == pytest.approx(0.0, abs=1e-6)
    # Content orthogonal to type_pos with 3x its norm: share 1/10, cos = 1/sqrt(10).
    tp = np.zeros((b, t, d), np.float32)
    tp[..., 0] = 1.0
    content = np.zeros_like(tp)
    content[..., 1] = 3.0
    out = collapse.shortcut_metrics(tp + content, content, tp, type_id)
    assert float(out["target_typepos_share"]) == pytest.approx(0.1, rel=1e-5)
    assert float(out["typepos_only_loss"]) == pytest.approx(1 - 1 / math.sqrt(10), rel=1e-5)


def test_collapse_report_names_the_failing_metric():
    ok = collapse.collapse_report({"z_std": 0.12, "z_erank": 30.0}, 64)
    assert ok["collapsed"] is False and "warning" not in ok and ok["basis"] == "z"
    assert ok["std_isotropic"] == pytest.approx(0.125)
    # The hidden states decide when they were logged (the representation the probes read).
    ok = collapse.collapse_report({"z_std": 0.001, "z_erank": 1.1, "h_std": 0.1,
                                   "h_erank": 20.0}, 64)
    assert ok["collapsed"] is False and ok["basis"] == "h" and ok["z_std"] == 0.001
    bad = collapse.collapse_report({"z_std": 0.1, "z_erank": 20.0, "h_std": 0.0,
                                    "h_erank": float("nan")}, 64)
    assert bad["collapsed"] and "normalised h" in bad["warning"]
    assert bad["h_erank"] is None  # never NaN in a report
    bad = collapse.collapse_report({"z_std": 0.001, "z_erank": 30.0}, 64)
    assert bad["collapsed"] and "per-channel std" in bad["warning"]
    bad = collapse.collapse_report({"z_std": 0.1, "z_erank": 1.2}, 64)
    assert bad["collapsed"] and "effective rank" in bad["warning"]
    assert collapse.collapse_report({"loss": 0.1}, 64) is None


def test_nepa_target_content_predicts_token_mlp_only():
    model = QueryNepa(d_model=16, layers=1, heads=2, max_len=8)
    rng = np.random.default_rng(2)
    feat = jnp.asarray(rng.normal(size=(2, 7, 15)).astype(np.float32))
    type_id = jnp.asarray(np.tile([0, 5, 6, 5, 6, 5, 6], (2, 1)))
    params = model.init(jax.random.key(0), feat, type_id)["params"]
    z, content, type_pos, z_hat, h = model.apply({"params": params}, feat, type_id,
                                                 method="forward_parts")
    z_ref, z_hat_ref, h_ref = model.apply({"params": params}, feat, type_id)
    np.testing.assert_allclose(np.asarray(h), np.asarray(h_ref), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(z), np.asarray(z_ref))
    np.testing.assert_allclose(np.asarray(z_hat), np.asarray(z_hat_ref), atol=1e-6)
    np.testing.assert_allclose(np.asarray(content + type_pos), np.asarray(z), atol=1e-5)
    full, only = nepa_loss(z, z_hat, type_id), nepa_loss(content, z_hat, type_id)
    assert abs(float(full) - float(only)) > 1e-3


def test_unknown_nepa_target_is_refused_naming_the_field(tmp_path):
    config = tiny_config(tmp_path / "c", tmp_path / "w")
    config.model.nepa_target = "layout"
    with pytest.raises(ConfigError, match="model.nepa_target"):
        validate(config)


def test_short_run_logs_diagnostics_and_records_the_verdict(tmp_path):
    write_tiny_cache(tmp_path / "cache", per_class=2)
    results = {}
    for target in ("full", "content"):
        config = tiny_config(tmp_path / "cache", tmp_path / target, batch_per_device=2)
        config.data.n_ray = 0
        config.model.nepa_target = target
        results[target] = loop.run(config, devices=jax.devices()[:1])
        rows = [json.loads(line) for line in
                (tmp_path / target / "metrics" / "loss.jsonl").read_text().splitlines()]
        assert len(rows) == 3
        for row in rows:
            for name in ("z", "h"):
                assert 0.0 < row[f"{name}_std"] <= 1.0 and 1.0 <= row[f"{name}_erank"] <= 32.0
            assert 0.0 < row["target_typepos_share"] < 1.0
            assert 0.0 <= row["typepos_only_loss"] <= 2.0
        verdict = results[target]["collapse"]
        assert verdict["collapsed"] is False and verdict["basis"] == "h"
        assert verdict["h_std"] == rows[-1]["h_std"]
        saved = json.loads((tmp_path / target / "results.json").read_text())
        assert saved["collapse"]["z_erank"] == pytest.approx(rows[-1]["z_erank"])
    # Same data and init: only the target differs, so the first losses differ.
    assert results["full"]["losses"][0][1] != pytest.approx(results["content"]["losses"][0][1])


def test_diagnostics_are_computed_on_logged_steps_only():
    """`step.when_logged`: the eigen-decompositions run where the loop logs (state.step + 1 a
    multiple of `diagnostics_every`); elsewhere zeros with `diagnostics` 0, under jit."""
    from nepa3d_jax.train import step as step_lib

    z = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, 8)).astype(np.float32))
    present = jnp.ones((2, 5), bool)
    fixed = dict(sizes=None, tokens=None, objective="nepa", nepa_target="full", mask_ratio=0.4,
                 dual_mask_near=0.0, dual_mask_far=0.0, dual_mask_type_aware=False,
                 dual_mask_warmup_steps=1, answer_loss_weight=0.0,
                 augment=Augment(scale=0.0, shift=0.0, yaw=False), seed=0)
    spec = step_lib.StepSpec(**fixed, diagnostics_every=3)
    fn = jax.jit(lambda s: step_lib.when_logged(
        spec, s, lambda: collapse.collapse_metrics(z, present, "z")))
    want = collapse.collapse_metrics(z, present, "z")
    for s in range(6):
        out = fn(jnp.int32(s))
        logged = (s + 1) % 3 == 0
        assert float(out["diagnostics"]) == float(logged)
        for k in ("z_std", "z_erank"):
            assert float(out[k]) == (pytest.approx(float(want[k]), rel=1e-5) if logged else 0.0)
    every_step = step_lib.StepSpec(**fixed, diagnostics_every=1)
    assert float(step_lib.when_logged(every_step, jnp.int32(0), lambda: dict(want))
                 ["diagnostics"]) == 1.0
    assert collapse.DIAGNOSTIC_KEYS >= {"z_std", "z_erank", "h_std", "h_erank"}
