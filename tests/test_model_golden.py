"""Golden parity: the original's tiny_qa checkpoint through load_pretrained reproduces the
reference forward (`golden/forward_tiny_qa.npz`) with every attention path available on CPU."""

import numpy as np
import pytest

pytest.importorskip("torch")

ATOL = 1e-4       # float32 forward outputs (reference README)
LOSS_ATOL = 1e-5


@pytest.fixture(scope="module")
def golden(reference_dir):
    return dict(np.load(reference_dir / "golden" / "forward_tiny_qa.npz"))


@pytest.fixture(scope="module", params=["xla", "blockwise"])
def pretrained(request, reference_dir):
    from nepa3d_jax.checkpoint import load_pretrained
    return load_pretrained(reference_dir / "ckpt" / "tiny_qa" / "last.pt",
                           attention=request.param)


def test_config_and_sizes(pretrained):
    c = pretrained.config
    assert (c.model.d_model, c.model.layers, c.model.heads) == (64, 2, 4)
    assert (c.data.n_point, c.data.n_ray, c.data.qa_tokens, c.data.max_len) == (32, 32, 1, 130)
    assert c.data.qa_layout == "interleave" and c.data.point_order_mode == "fps"
    assert pretrained.max_len == 130
    assert pretrained.params["pos_emb"].shape == (1, 130, 64)
    assert pretrained.params["type_emb"]["embedding"].shape == (9, 64)


def test_causal_forward_matches_original(pretrained, golden):
    from nepa3d_jax.model import losses

    z, z_hat, h = pretrained.forward(golden["feat"], golden["type_id"])
    np.testing.assert_allclose(np.asarray(z), golden["z"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(np.asarray(z_hat), golden["z_hat"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(np.asarray(h), golden["h"], rtol=0, atol=ATOL)
    loss = float(losses.nepa_loss(z, z_hat, golden["type_id"]))
    assert abs(loss - float(golden["nepa_loss"])) < LOSS_ATOL


def test_bidirectional_forward_matches_original(pretrained, golden):
    _, z_hat, h = pretrained.forward(golden["feat"], golden["type_id"], is_causal=False)
    np.testing.assert_allclose(np.asarray(h), golden["h_bidirectional"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(np.asarray(z_hat), golden["z_hat_bidirectional"], rtol=0,
                               atol=ATOL)


def test_unbatched_forward_is_the_batched_row(pretrained, golden):
    _, _, h = pretrained.forward(golden["feat"][1], golden["type_id"][1])
    assert h.shape == (130, 64)
    np.testing.assert_allclose(np.asarray(h), golden["h"][1], rtol=0, atol=ATOL)


def test_too_long_sequence_is_rejected_before_compiling(pretrained):
    feat = np.zeros((1, 131, 15), np.float32)
    with pytest.raises(ValueError, match="max_len=130"):
        pretrained.forward(feat, np.zeros((1, 131), np.int32))
