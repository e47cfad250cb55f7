"""Original-style `.pt` checkpoints we build ourselves (random weights, the original's args
format) import and reproduce an independent plain-torch forward; bad files give clear errors.

The reference model below is written here from torch building blocks
(`nn.TransformerEncoderLayer(norm_first=True, activation="gelu")`, as the original
configures them); when the original source is checked out beside us (`ref_src/`), its own
`QueryNepa` is compared too.
"""

import pathlib
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

REF_SRC = pathlib.Path(__file__).resolve().parents[1] / "ref_src"
ATOL = 1e-4


class TorchQueryNepa(nn.Module):
    """Plain-torch QueryNepa (causal arch) with the original's state-dict names."""

    def __init__(self, d_model, heads, layers, max_len, n_types):
        super().__init__()
        self.type_emb = nn.Embedding(n_types, d_model)
        self.token_mlp = nn.Sequential(nn.Linear(15, d_model), nn.GELU(),
                                       nn.Linear(d_model, d_model))
        self.pos_emb = nn.Parameter(torch.randn(1, max_len, d_model) * 0.02)
        self.backbone = nn.Module()
        layer = nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout=0.0,
                                           batch_first=True, norm_first=True,
                                           activation="gelu")
        self.backbone.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.pred_head = nn.Linear(d_model, d_model)

    def forward(self, feat, type_id, is_causal=True, allowed=None):
        t = feat.shape[1]
        z = self.token_mlp(feat) + self.type_emb(type_id) + self.pos_emb[:, :t]
        blocked = None
        if is_causal:
            blocked = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
        if allowed is not None:
            blocked = blocked | ~allowed
        h = self.backbone.enc(z, mask=blocked)
        return z, self.pred_head(h), h


def random_model(seed, d_model, heads, layers, max_len, n_types):
    torch.manual_seed(seed)
    model = TorchQueryNepa(d_model, heads, layers, max_len, n_types).eval()
    with torch.no_grad():  # LayerNorm / biases away from their trivial init
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return model


def original_args(**kw):
    args = dict(
        d_model=32, layers=2, heads=4, n_point=4, n_ray=4, qa_tokens=1, qa_layout="interleave",
        add_eos=1, max_len=-1, arch="causal", seed=0, batch=4, epochs=2, lr=3e-4,
        objective="nepa", mask_ratio=0.4, mix_config="", cache_root="data/x", backend="mesh",
        n_point_schedule="", n_ray_schedule="", include_pt_grad=0, include_ray_unc=0,
        aux_b2_weight=0.0, aux_b3_weight=0.0, aux_e_weight=0.0, dual_mask_near=0.0,
        dual_mask_far=0.0, dual_mask_window=32, dual_mask_warmup_frac=0.05,
        dual_mask_type_aware=0, pt_dist_key="pt_dist_pool", save_dir="runs/x")
    args.update(kw)
    return args


def save_pt(path, model, args, **extra):
    ckpt = {"model": model.state_dict(), "aux_heads": None, "opt": {}, "scaler": None,
            "args": args, "epoch": 0, "step": 1, **extra}
    torch.save(ckpt, path)
    return str(path)


def tokens(seed, b, t, n_types, missing_ray=False):
    rng = np.random.RandomState(seed)
    feat = rng.normal(size=(b, t, 15)).astype(np.float32)
    type_id = rng.randint(0, n_types, size=(b, t)).astype(np.int64)
    type_id[:, 0] = 0
    if missing_ray:
        type_id[0, t // 2:] = 3
    return feat, type_id


def torch_forward(model, feat, type_id, is_causal=True, allowed=None):
    with torch.no_grad():
        out = model(torch.from_numpy(feat), torch.from_numpy(type_id), is_causal,
                    None if allowed is None else torch.from_numpy(np.array(allowed)))
    return [o.numpy() for o in out]


# name: (d_model, heads, layers, max_len in ckpt, n_types, T run, args overrides, load max_len)
CASES = {
    "legacy_tokens": (24, 3, 3, 11, 5, 11, dict(qa_tokens=0, n_point=6, n_ray=3), None),
    "qa_split": (32, 4, 1, 19, 9, 19, dict(qa_layout="split"), None),
    "wide_one_head": (40, 1, 2, 19, 9, 19, dict(), None),
    "resized_max_len": (32, 2, 2, 12, 9, 19, dict(max_len=12), 19),
}


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    out = {}
    for i, (name, (d, h, layers, max_len, n_types, t, kw, load_len)) in enumerate(CASES.items()):
        model = random_model(i, d, h, layers, max_len, n_types)
        args = original_args(d_model=d, heads=h, layers=layers, **kw)
        out[name] = (save_pt(root / f"{name}.pt", model, args), model)
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_imported_checkpoint_matches_torch_reference(ckpts, name):
    from nepa3d_jax.checkpoint import load_pretrained
    from nepa3d_jax.model.pos_emb import resize_pos_emb

    d, h, layers, max_len, n_types, t, _, load_len = CASES[name]
    path, model = ckpts[name]
    pre = load_pretrained(path, max_len=load_len, attention="xla")
    assert (pre.model.d_model, pre.model.heads, pre.model.layers) == (d, h, layers)
    assert pre.model.n_types == n_types and pre.max_len == (load_len or max_len)
    if load_len is not None:  # the original's F.interpolate(linear, align_corners=False)
        want = F.interpolate(model.pos_emb.detach().permute(0, 2, 1), size=load_len,
                             mode="linear", align_corners=False).permute(0, 2, 1).numpy()
        np.testing.assert_allclose(resize_pos_emb(model.pos_emb.detach().numpy(), load_len),
                                   want, rtol=0, atol=1e-6)
        with torch.no_grad():
            model.pos_emb = nn.Parameter(torch.from_numpy(want))
    feat, type_id = tokens(1, 2, t, n_types)
    for causal in (True, False):
        got = pre.forward(feat, type_id, is_causal=causal)
        for g, w in zip(got, torch_forward(model, feat, type_id, causal)):
            np.testing.assert_allclose(np.asarray(g), w, rtol=0, atol=ATOL)


def test_blockwise_attention_matches_torch_on_imported_model(ckpts):
    from nepa3d_jax.checkpoint import load_pretrained

    path, model = ckpts["qa_split"]
    pre = load_pretrained(path, attention="blockwise")
    feat, type_id = tokens(2, 2, 19, 9)
    for causal in (True, False):
        _, z_hat, h = pre.forward(feat, type_id, is_causal=causal)
        _, z_hat_t, h_t = torch_forward(model, feat, type_id, causal)
        np.testing.assert_allclose(np.asarray(h), h_t, rtol=0, atol=ATOL)
        np.testing.assert_allclose(np.asarray(z_hat), z_hat_t, rtol=0, atol=ATOL)


def test_dual_mask_forward_matches_torch(ckpts):
    """The training-time dual mask (allowed mask) gives the original's masked forward."""
    import jax

    from nepa3d_jax.checkpoint import load_pretrained
    from nepa3d_jax.train import masks

    path, model = ckpts["qa_split"]
    pre = load_pretrained(path, attention="auto")
    feat, type_id = tokens(3, 2, 19, 9)
    allowed = masks.dual_mask(jax.random.key(3), type_id, near=0.5, far=0.3, window=3)
    assert not bool(np.all(np.asarray(allowed)[0] == np.tril(np.ones((19, 19), bool))))
    z, z_hat, h = pre.model.apply({"params": pre.params}, feat, type_id, is_causal=True,
                                  attn_mask_BTT=allowed)
    _, z_hat_t, h_t = torch_forward(model, feat, type_id, True, np.asarray(allowed)[0])
    np.testing.assert_allclose(np.asarray(h), h_t, rtol=0, atol=ATOL)
    np.testing.assert_allclose(np.asarray(z_hat), z_hat_t, rtol=0, atol=ATOL)


def test_nepa_loss_matches_original_rule():
    from nepa3d_jax.model import losses

    rng = np.random.RandomState(0)
    z = rng.normal(size=(2, 9, 8)).astype(np.float32)
    z_hat = rng.normal(size=(2, 9, 8)).astype(np.float32)

    def torch_loss(type_id):  # the original's rule, written with torch
        pred, target = torch.from_numpy(z_hat)[:, :-1], torch.from_numpy(z)[:, 1:]
        loss = 1.0 - F.cosine_similarity(pred, target, dim=-1, eps=1e-8)
        tt = torch.from_numpy(type_id)[:, 1:]
        valid = tt != 3
        if bool(((tt == 6) | (tt == 8)).any()):
            valid = valid & ((tt == 6) | (tt == 8))
        return float(loss[valid].mean()) if bool(valid.any()) else 0.0

    legacy = np.array([[0, 1, 1, 2, 3, 3, 1, 2, 4]] * 2)
    mixed = np.array([[0, 5, 6, 7, 8, 7, 3, 3, 4], [0, 1, 1, 2, 3, 2, 1, 1, 4]])
    all_missing = np.array([[0, 3, 3, 3, 3, 3, 3, 3, 3]] * 2)
    for type_id in (legacy, mixed, all_missing):
        got = float(losses.nepa_loss(z, z_hat, type_id))
        assert abs(got - torch_loss(type_id)) < 1e-6, type_id
    # "has answers" is decided for the whole batch: the legacy row contributes nothing.
    mask = np.asarray(losses.nepa_token_mask(mixed))
    assert mask[1].sum() == 0 and mask[0].sum() == 2


def test_mae_loss_matches_torch():
    from nepa3d_jax.model import losses

    rng = np.random.RandomState(1)
    z_hat, z_t = rng.normal(size=(2, 2, 7, 5)).astype(np.float32)
    mask = rng.rand(2, 7) < 0.4
    want = float(F.mse_loss(torch.from_numpy(z_hat)[torch.from_numpy(mask)],
                            torch.from_numpy(z_t)[torch.from_numpy(mask)]))
    assert abs(float(losses.mae_loss(z_hat, z_t, mask)) - want) < 1e-6
    assert float(losses.mae_loss(z_hat, z_t, np.zeros_like(mask))) == 0.0


def test_original_querynepa_class_agrees(ckpts):
    if not (REF_SRC / "nepa3d" / "models" / "query_nepa.py").is_file():
        pytest.skip("original source not checked out at ref_src/ (development-only check)")
    sys.path.insert(0, str(REF_SRC))
    try:
        from nepa3d.models.query_nepa import QueryNepa as OriginalQueryNepa
    finally:
        sys.path.remove(str(REF_SRC))
    from nepa3d_jax.checkpoint import load_pretrained

    path, _ = ckpts["legacy_tokens"]
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    a = ckpt["args"]
    orig = OriginalQueryNepa(d_model=a["d_model"], n_types=5, nhead=a["heads"],
                             num_layers=a["layers"], max_len=11)
    orig.load_state_dict(ckpt["model"], strict=True)
    orig.eval()
    feat, type_id = tokens(4, 2, 11, 5, missing_ray=True)
    pre = load_pretrained(path)
    for causal in (True, False):
        with torch.no_grad():
            want = orig(torch.from_numpy(feat), torch.from_numpy(type_id), is_causal=causal)
        got = pre.forward(feat, type_id, is_causal=causal)
        for g, w in zip(got, want):
            np.testing.assert_allclose(np.asarray(g), w.numpy(), rtol=0, atol=ATOL)
    from nepa3d_jax.model import losses
    z, z_hat, _ = pre.forward(feat, type_id)
    with torch.no_grad():
        zt, zht, _ = orig(torch.from_numpy(feat), torch.from_numpy(type_id))
        want_loss = float(orig.nepa_loss(zt, zht, torch.from_numpy(type_id)))
    assert abs(float(losses.nepa_loss(z, z_hat, type_id)) - want_loss) < 1e-5


# -- bad input ----------------------------------------------------------------------------
def test_checkpoint_without_model_key(tmp_path):
    from nepa3d_jax.checkpoint import load_pretrained
    from nepa3d_jax.checkpoint.torch_import import CheckpointError

    path = tmp_path / "nomodel.pt"
    torch.save({"args": original_args(), "epoch": 0}, path)
    with pytest.raises(CheckpointError, match=r"nomodel\.pt.*no 'model' entry"):
        load_pretrained(path)


def test_mismatched_shape_names_key_and_shapes(tmp_path, ckpts):
    from nepa3d_jax.checkpoint import load_pretrained
    from nepa3d_jax.checkpoint.torch_import import CheckpointError

    ckpt = torch.load(ckpts["qa_split"][0], map_location="cpu", weights_only=True)
    ckpt["model"]["backbone.enc.layers.0.linear2.bias"] = torch.zeros(7)
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError,
                       match=r"backbone\.enc\.layers\.0\.linear2\.bias.*\(7,\).*\(32,\)"):
        load_pretrained(tmp_path / "bad.pt")


def test_missing_and_unexpected_keys_are_named(tmp_path, ckpts):
    from nepa3d_jax.checkpoint import load_pretrained
    from nepa3d_jax.checkpoint.torch_import import CheckpointError

    ckpt = torch.load(ckpts["qa_split"][0], map_location="cpu", weights_only=True)
    del ckpt["model"]["pred_head.bias"]
    ckpt["model"]["extra.weight"] = torch.zeros(2)
    torch.save(ckpt, tmp_path / "keys.pt")
    with pytest.raises(CheckpointError, match=r"missing keys \['pred_head\.bias'\].*"
                                              r"unexpected keys \['extra\.weight'\]"):
        load_pretrained(tmp_path / "keys.pt")


@pytest.mark.parametrize("arg,value", [("arch", "encdec"), ("include_pt_grad", 1),
                                       ("aux_b3_weight", 0.5)])
def test_unsupported_args_are_named(tmp_path, ckpts, arg, value):
    from nepa3d_jax.checkpoint import load_pretrained
    from nepa3d_jax.checkpoint.torch_import import CheckpointError

    ckpt = torch.load(ckpts["qa_split"][0], map_location="cpu", weights_only=True)
    ckpt["args"][arg] = value
    torch.save(ckpt, tmp_path / "unsup.pt")
    with pytest.raises(CheckpointError, match=rf"unsup\.pt.*{arg}={value!r}"):
        load_pretrained(tmp_path / "unsup.pt")


def test_not_a_checkpoint(tmp_path):
    from nepa3d_jax.checkpoint import load_pretrained
    from nepa3d_jax.checkpoint.torch_import import CheckpointError

    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match=r"junk\.pt"):
        load_pretrained(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_pretrained(tmp_path / "nowhere.pt")


# -- round trip and CLI -------------------------------------------------------------------
def test_params_round_trip_to_torch_names(ckpts):
    from nepa3d_jax.checkpoint import torch_import

    path, model = ckpts["legacy_tokens"]
    _, params, _ = torch_import.import_torch_checkpoint(path)
    back = torch_import.params_to_state_dict(params)
    want = {k: v.numpy() for k, v in model.state_dict().items()}
    assert back.keys() == want.keys()
    for k in want:
        np.testing.assert_array_equal(back[k], want[k], err_msg=k)


def test_import_cli_writes_a_run_dir_that_loads_back(tmp_path, ckpts):
    from nepa3d_jax.checkpoint import import_torch, load_pretrained

    path, model = ckpts["qa_split"]
    out = tmp_path / "run"
    assert import_torch.main([path, str(out)]) == 0
    pre = load_pretrained(out)
    assert pre.config.model.heads == 4 and pre.config.data.qa_layout == "split"
    feat, type_id = tokens(5, 1, 19, 9)
    got = pre.forward(feat, type_id)
    for g, w in zip(got, torch_forward(model, feat, type_id)):
        np.testing.assert_allclose(np.asarray(g), w, rtol=0, atol=ATOL)
    resized = load_pretrained(out, max_len=25)
    assert resized.params["pos_emb"].shape == (1, 25, 32)


def test_import_cli_as_a_module(tmp_path, ckpts):
    """`python -m ...import_torch`: a run directory (config + Orbax params), or exit 2 with
    the file and the offending arg named for an unsupported checkpoint; nothing left behind."""
    repo = pathlib.Path(__file__).resolve().parents[1]
    cli = [sys.executable, "-m", "nepa3d_jax.checkpoint.import_torch"]
    path, _ = ckpts["legacy_tokens"]
    out = tmp_path / "run"
    proc = subprocess.run([*cli, path, str(out)], capture_output=True, text=True, cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert (out / "config.json").is_file()
    assert any((out / "checkpoints").iterdir())
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    ckpt["args"]["arch"] = "encdec"
    torch.save(ckpt, tmp_path / "encdec.pt")
    proc = subprocess.run([*cli, str(tmp_path / "encdec.pt"), str(tmp_path / "bad")],
                          capture_output=True, text=True, cwd=repo)
    assert proc.returncode == 2
    assert "encdec.pt" in proc.stderr and "arch='encdec'" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "bad").exists()


def test_torch_args_module_is_torch_and_flax_free():
    code = ("import sys; import nepa3d_jax.config.torch_args as m; import nepa3d_jax.checkpoint; "
            "bad = [n for n in ('torch', 'flax', 'jax') if n in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True,
                   cwd=pathlib.Path(__file__).resolve().parents[1])
