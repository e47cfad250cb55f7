"""Properties of QueryNepa, its attention paths and losses (tiny sizes, CPU).

Causality is checked with gradients (nanodo's test): d output[i] / d feat[j] must be exactly
zero for every j > i under causal attention, for every implementation that runs on CPU, and
under the training-time dual mask; bidirectional attention must see the future. Also: jit ==
eager, vmap == loop, the positional-table resize against hand-computed values and torch, and
invariances that truly hold (loss masking, token-permutation equivariance without positions).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nepa3d_jax.model import QueryNepa, blockwise_attention, losses, resize_pos_emb
from nepa3d_jax.tokenizer.types import FEAT_DIM, TYPE_MISSING_RAY, TYPE_Q_POINT, TYPE_Q_RAY
from nepa3d_jax.train import masks

T, D, HEADS, MAX_LEN = 12, 16, 2, 16
CPU_IMPLS = ("xla", "blockwise")
# BOS, (Q_POINT, A_POINT) x 3, (Q_RAY, A_RAY) x 2, MISSING_RAY, EOS -> 12 tokens
TYPE_ROW = [0, 5, 6, 5, 6, 5, 6, 7, 8, 7, 8, 4]


def _model(attention="xla", layers=2):
    return QueryNepa(d_model=D, layers=layers, heads=HEADS, max_len=MAX_LEN, attention=attention)


def _perturb(params, key):
    """Move LayerNorm scales/biases and zero-initialised biases off their trivial values."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(tree, [x + 0.1 * jax.random.normal(k, x.shape)
                                     for x, k in zip(leaves, keys)])


@pytest.fixture(scope="module")
def tokens():
    rng = np.random.RandomState(0)
    feat = rng.normal(size=(2, T, FEAT_DIM)).astype(np.float32)
    type_id = np.array([TYPE_ROW, TYPE_ROW[:9] + [3, 3, 4]], np.int32)
    return jnp.asarray(feat), jnp.asarray(type_id)


@pytest.fixture(scope="module")
def params2(tokens):
    """Params of the 2-layer model (identical for every attention implementation)."""
    feat, type_id = tokens
    p = _model().init(jax.random.key(0), feat, type_id)["params"]
    return _perturb(p, jax.random.key(1))


@pytest.fixture(scope="module")
def params1(tokens):
    feat, type_id = tokens
    p = _model(layers=1).init(jax.random.key(2), feat, type_id)["params"]
    return _perturb(p, jax.random.key(3))


def _token_jacobian(model, params, feat, type_id, **kw):
    """|d out[i] / d feat[j]| maxed over channels, (T_out, T_in), for out in (h, z_hat) of
    sample 0 (sample 1 rides along in the batch)."""
    def f(x):
        _, z_hat, h = model.apply({"params": params}, x, type_id, **kw)
        return h[0], z_hat[0]

    jac_h, jac_zh = jax.jit(jax.jacrev(f))(feat)  # (T, D, B, T, F) each
    return [np.abs(np.asarray(j[:, :, 0])).max(axis=(1, 3)) for j in (jac_h, jac_zh)]


# -- causality by gradients ---------------------------------------------------------------
@pytest.mark.parametrize("impl", CPU_IMPLS)
def test_causal_outputs_never_depend_on_future_tokens(tokens, params2, impl):
    feat, type_id = tokens
    lower = np.tril(np.ones((T, T), bool))
    for jac in _token_jacobian(_model(impl), params2, feat, type_id, is_causal=True):
        assert np.all(jac[~lower] == 0.0), np.argwhere(jac * ~lower)  # exactly zero
        assert np.all(jac[lower] > 1e-6)  # every past token and the token itself matter


@pytest.mark.parametrize("impl", CPU_IMPLS)
def test_bidirectional_outputs_see_the_future(tokens, params2, impl):
    feat, type_id = tokens
    for jac in _token_jacobian(_model(impl), params2, feat, type_id, is_causal=False):
        assert np.all(jac > 1e-6)


@pytest.mark.parametrize("block,group", [(4, 1), (5, 0)])
def test_blockwise_attention_gradients_are_causal_and_exact(block, group):
    """Several query blocks: values and q/k/v gradients (its custom VJP) equal XLA's; no
    gradient flows from a query row to a later key or value, or to another row's query."""
    q, k, v = jax.random.normal(jax.random.key(4), (3, 2, T, HEADS, 8))
    fn = functools.partial(blockwise_attention, is_causal=True, block=block, group=group)
    ref = functools.partial(jax.nn.dot_product_attention, is_causal=True, implementation="xla")
    np.testing.assert_allclose(fn(q, k, v), ref(q, k, v), rtol=0, atol=1e-5)

    def row_jacobian(f):  # d sum_c sin(out[:, i, c]) / d (q, k, v), rows i stacked first
        rows = lambda q, k, v: jnp.sum(jnp.sin(f(q, k, v)), axis=(0, 2, 3))
        return jax.jit(jax.jacrev(rows, argnums=(0, 1, 2)))(q, k, v)

    lower = np.tril(np.ones((T, T), bool))
    for g, w, name in zip(row_jacobian(fn), row_jacobian(ref), "qkv"):
        assert g.shape == (T, 2, T, HEADS, 8)
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-5, err_msg=name)
        seen = np.abs(np.asarray(g)).max(axis=(1, 3, 4)) > 0.0  # (row i, position j)
        want = np.eye(T, dtype=bool) if name == "q" else lower
        if name in "qk":  # row 0 sees one key only: its softmax is 1 whatever q0, k0 are
            seen[0, 0] = True
        np.testing.assert_array_equal(seen, want, err_msg=name)


def test_dual_mask_edges_are_exactly_what_a_one_layer_model_sees(tokens, params1):
    """One layer: h[i] depends on feat[j] iff the dual mask allows i -> j (never j > i)."""
    feat, type_id = tokens
    allowed = masks.dual_mask(jax.random.key(5), type_id, near=0.6, far=0.4, window=3)
    allowed_np = np.asarray(allowed[0])
    assert not np.all(allowed_np == np.tril(np.ones((T, T), bool)))  # some edges dropped
    assert not np.any(np.triu(allowed_np, 1))
    jac_h, jac_zh = _token_jacobian(_model("auto", layers=1), params1, feat, type_id,
                                    attn_mask_BTT=allowed)
    for jac in (jac_h, jac_zh):
        np.testing.assert_array_equal(jac > 0.0, allowed_np)


def test_dual_mask_training_path_never_sees_the_future(tokens, params2):
    """Two layers under the training objective's mask (type-aware, high drop rates)."""
    feat, type_id = tokens
    allowed = masks.dual_mask(jax.random.key(6), type_id, near=0.9, far=0.9, window=2,
                              type_aware=True)
    lower = np.tril(np.ones((T, T), bool))
    for jac in _token_jacobian(_model("auto"), params2, feat, type_id, attn_mask_BTT=allowed):
        assert np.all(jac[~lower] == 0.0)
        assert np.all(np.diag(jac) > 0.0)
    # Everything dropped but the diagonal: each position only sees itself, in every layer.
    eye = jnp.eye(T, dtype=bool)[None]
    for jac in _token_jacobian(_model("xla"), params2, feat, type_id, attn_mask_BTT=eye):
        np.testing.assert_array_equal(jac > 0.0, np.eye(T, dtype=bool))


# -- jit, eager, vmap -----------------------------------------------------------------------
@pytest.mark.parametrize("impl", CPU_IMPLS)
def test_jit_and_eager_forward_agree(tokens, params2, impl):
    feat, type_id = tokens
    model = _model(impl)
    for causal in (True, False):
        def fwd(p, f, t, causal=causal):
            return model.apply({"params": p}, f, t, is_causal=causal)
        eager = fwd(params2, feat, type_id)
        jitted = jax.jit(fwd)(params2, feat, type_id)
        for e, j in zip(eager, jitted):
            assert e.shape == (2, T, D)
            np.testing.assert_allclose(np.asarray(e), np.asarray(j), rtol=0, atol=1e-6)


def test_vmap_over_an_outer_axis_equals_the_loop(tokens, params2):
    feat, type_id = tokens
    model = _model()
    feats = jnp.stack([feat, feat[::-1], 2.0 * feat])    # (3, B, T, F)
    types = jnp.stack([type_id, type_id[::-1], type_id])
    fwd = jax.jit(lambda f, t: model.apply({"params": params2}, f, t))
    z, z_hat, h = jax.jit(jax.vmap(lambda f, t: model.apply({"params": params2}, f, t)))(
        feats, types)
    assert z.shape == z_hat.shape == h.shape == (3, 2, T, D)
    for n in range(3):
        for got, want in zip((z, z_hat, h), fwd(feats[n], types[n])):
            np.testing.assert_allclose(np.asarray(got[n]), np.asarray(want), rtol=0, atol=1e-6)


# -- bad input ------------------------------------------------------------------------------
def test_model_errors_name_the_field(tokens, params2):
    feat, type_id = tokens
    long_feat = jnp.zeros((1, MAX_LEN + 1, FEAT_DIM))
    with pytest.raises(ValueError, match=f"max_len={MAX_LEN}"):
        jax.jit(lambda f, t: _model().apply({"params": params2}, f, t))(
            long_feat, jnp.zeros((1, MAX_LEN + 1), jnp.int32))
    with pytest.raises(ValueError, match="model.attention='flash'"):
        _model("flash").apply({"params": params2}, feat, type_id)
    with pytest.raises(ValueError, match="takes no explicit mask"):
        _model("blockwise").apply({"params": params2}, feat, type_id,
                                  attn_mask_BTT=jnp.ones((1, T, T), bool))
    with pytest.raises(ValueError, match="model.heads=3"):
        QueryNepa(d_model=D, layers=1, heads=3, max_len=MAX_LEN).init(
            jax.random.key(0), feat, type_id)


# -- positional table resize ----------------------------------------------------------------
def _table(rows):
    col = np.asarray(rows, np.float32)
    return np.stack([col, -2.0 * col], axis=-1)[None]  # (1, L, 2): channels independent


@pytest.mark.parametrize("rows,new_len,want", [
    # up 4 -> 6: x_j = (j + 0.5) * 4/6 - 0.5 = [-1/6 -> 0, 0.5, 7/6, 11/6, 2.5, 19/6 -> last]
    ([0, 1, 4, 9], 6, [0.0, 0.5, 1.5, 3.5, 6.5, 9.0]),
    # down 6 -> 4: x_j = (j + 0.5) * 1.5 - 0.5 = [0.25, 1.75, 3.25, 4.75]
    ([0, 1, 4, 9, 16, 25], 4, [0.25, 3.25, 10.75, 22.75]),
    ([0, 1, 4, 9], 4, [0, 1, 4, 9]),          # same length: unchanged
    ([3], 3, [3, 3, 3]),                      # one row repeats
])
def test_pos_emb_resize_hand_computed(rows, new_len, want):
    got = resize_pos_emb(_table(rows), new_len)
    assert got.shape == (1, new_len, 2) and got.dtype == np.float32
    np.testing.assert_allclose(got, _table(want), rtol=0, atol=1e-6)


def test_pos_emb_resize_matches_torch_interpolate():
    """The original resizes with F.interpolate(mode='linear', align_corners=False) along L."""
    torch = pytest.importorskip("torch")
    rng = np.random.RandomState(7)
    for old, new in ((4, 6), (6, 4), (130, 4098), (4500, 4098), (2500, 1026), (7, 7)):
        pos = rng.normal(scale=0.02, size=(1, old, 5)).astype(np.float32)
        want = torch.nn.functional.interpolate(
            torch.from_numpy(pos).permute(0, 2, 1), size=new, mode="linear",
            align_corners=False).permute(0, 2, 1).numpy()
        np.testing.assert_allclose(resize_pos_emb(pos, new), want, rtol=0, atol=1e-7,
                                   err_msg=f"{old}->{new}")


def test_pos_emb_resize_errors():
    with pytest.raises(ValueError, match=r"\(1, L, D\)"):
        resize_pos_emb(np.zeros((4, 3), np.float32), 5)
    with pytest.raises(ValueError, match="max_len must be > 0"):
        resize_pos_emb(np.zeros((1, 4, 3), np.float32), 0)


# -- invariances ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def loss_inputs():
    rng = np.random.RandomState(8)
    z = rng.normal(size=(3, 10, 6)).astype(np.float32)
    z_hat = rng.normal(size=(3, 10, 6)).astype(np.float32)
    qa = np.array([[0, 5, 6, 5, 6, 7, 8, 3, 3, 4]] * 3)
    qa[1, 5:9] = 3
    legacy = np.array([[0, 1, 1, 1, 2, 2, 3, 3, 2, 4]] * 3)
    return z, z_hat, qa, legacy


def test_nepa_loss_invariances(loss_inputs):
    z, z_hat, qa, legacy = loss_inputs
    rng = np.random.RandomState(9)
    for type_id in (qa, legacy):
        base = float(losses.nepa_loss(z, z_hat, type_id))
        assert base > 0.1
        b = rng.permutation(3)
        d = rng.permutation(6)
        scale = rng.uniform(0.1, 10.0, size=(3, 10, 1)).astype(np.float32)
        variants = {
            "batch order": (z[b], z_hat[b], type_id[b]),
            "channel order": (z[..., d], z_hat[..., d], type_id),
            "positive scale per token": (z * scale, z_hat * scale[:, ::-1], type_id),
        }
        for name, (zz, zh, tid) in variants.items():
            assert abs(float(losses.nepa_loss(zz, zh, tid)) - base) < 1e-6, name
        # What is never a target or a prediction does not matter: z at BOS, z_hat at the
        # last position, and (Q/A) z at query and MISSING_RAY positions.
        ignored = np.zeros(type_id.shape, bool)
        ignored[:, 0] = True
        if type_id is qa:
            ignored |= np.isin(type_id, (TYPE_Q_POINT, TYPE_Q_RAY, TYPE_MISSING_RAY))
        else:
            ignored |= type_id == TYPE_MISSING_RAY
        noise = rng.normal(size=z.shape).astype(np.float32)
        z2 = np.where(ignored[..., None], noise, z)
        z_hat2 = z_hat.copy()
        z_hat2[:, -1] = noise[:, -1]
        assert abs(float(losses.nepa_loss(z2, z_hat2, type_id)) - base) < 1e-6
        # ... while a target that counts does.
        z3 = z.copy()
        z3[:, 2] = noise[:, 2]
        assert abs(float(losses.nepa_loss(z3, z_hat, type_id)) - base) > 1e-4


def test_nepa_loss_gradient_only_reaches_predictions(loss_inputs):
    """stop_grad on the targets: no gradient w.r.t. z; z_hat gets it only where the next
    token is a counted target (answers in Q/A batches)."""
    z, z_hat, qa, _ = loss_inputs
    gz, gzh = jax.grad(losses.nepa_loss, argnums=(0, 1))(jnp.asarray(z), jnp.asarray(z_hat), qa)
    assert not np.any(np.asarray(gz))
    counted = np.zeros(qa.shape, bool)
    counted[:, :-1] = np.asarray(losses.nepa_token_mask(qa))
    per_pos = np.abs(np.asarray(gzh)).max(axis=-1) > 0
    np.testing.assert_array_equal(per_pos, counted)
    assert counted[0].tolist() == [False, True, False, True, False, True, False, False, False,
                                   False]


def test_nepa_loss_jit_equals_eager(loss_inputs):
    z, z_hat, qa, legacy = loss_inputs
    for type_id in (qa, legacy, None):
        eager = float(losses.nepa_loss(z, z_hat, type_id))
        assert abs(float(jax.jit(losses.nepa_loss)(z, z_hat, type_id)) - eager) < 1e-7


def test_bidirectional_model_without_positions_is_permutation_equivariant(tokens, params2):
    feat, type_id = tokens
    params = dict(params2)
    params["pos_emb"] = jnp.zeros_like(params2["pos_emb"])
    perm = np.random.RandomState(10).permutation(T)
    fwd = jax.jit(lambda f, t: _model().apply({"params": params}, f, t, is_causal=False))
    out = fwd(feat, type_id)
    out_p = fwd(feat[:, perm], type_id[:, perm])
    for a, b in zip(out, out_p):
        np.testing.assert_allclose(np.asarray(a)[:, perm], np.asarray(b), rtol=0, atol=2e-5)


@pytest.mark.parametrize("is_causal", [True, False])
@pytest.mark.parametrize("impl", CPU_IMPLS)
def test_represent_equals_the_rows_of_the_full_forward(tokens, params2, impl, is_causal):
    """`represent` computes the last layer for a few rows only; values must not change."""
    feat, type_id = tokens
    rows = jnp.asarray([0, 3, 4, 7, 11, 5])  # any order, repeats of positions allowed
    _, z_hat, h = _model(impl).apply({"params": params2}, feat, type_id, is_causal=is_causal)
    got = jax.jit(lambda p, f, t, r: _model(impl).apply(
        {"params": p}, f, t, r, is_causal=is_causal, method=QueryNepa.represent))(
            params2, feat, type_id, rows)
    np.testing.assert_allclose(got[0], z_hat[:, rows], atol=1e-5, rtol=0)
    np.testing.assert_allclose(got[1], h[:, rows], atol=1e-5, rtol=0)
    assert got[1].shape == (feat.shape[0], rows.shape[0], D)
