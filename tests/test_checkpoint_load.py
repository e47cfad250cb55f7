"""load_pretrained on what users actually have: a run directory written by our training code
(full train state, fsdp-sharded), and original `.pt` files whose `args` is an
argparse.Namespace rather than `vars(args)`."""

import argparse
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nepa3d_jax.checkpoint import load_pretrained, run_dir, torch_import
from nepa3d_jax.config import derive, load_config
from nepa3d_jax.config.record import to_run_json
from nepa3d_jax.parallel import make_mesh
from nepa3d_jax.train import state as state_lib

T = 10
BASE = str(pathlib.Path(__file__).resolve().parents[1] / "configs" / "base.py")


def _tokens(n_types, seed=0):
    rng = np.random.RandomState(seed)
    feat = rng.normal(size=(2, T, 15)).astype(np.float32)
    type_id = rng.randint(0, n_types, size=(2, T)).astype(np.int32)
    return feat, type_id


def _training_run_dir(path, overrides):
    """What `nepa3d_jax.train.loop` writes: the state item {params, opt_state, step} laid out
    on the mesh, the data-iterator position and the run record."""
    config = load_config(BASE, overrides)
    derived = derive(config, num_devices=jax.device_count())
    model = state_lib.build_model(config, derived.max_len)
    init = state_lib.init_fn(model, optax.adamw(1e-3), seed=3)
    state, shardings = state_lib.create_state(init, make_mesh(config))
    sharded = any("fsdp" in tuple(s.spec) for s in jax.tree.leaves(shardings.params))
    record = to_run_json(config, derived, BASE, overrides)
    with run_dir.RunDir(path, async_save=False) as rd:
        rd.write_config(record)
        rd.save(5, state.as_dict(), {"epoch": 0, "position": 40}, record)
    return model, jax.device_get(state.params), sharded


FSDP_RUN = ["model.d_model=64", "model.layers=2", "model.heads=4", "data.n_point=60",
            "data.n_ray=0", "data.max_len=256", "parallel.fsdp=2", "train.batch_per_device=1"]


def test_run_dir_from_training_loads(tmp_path):
    model, params, sharded = _training_run_dir(tmp_path / "run", FSDP_RUN)
    assert sharded  # the fsdp run saved sharded leaves; loading gathers them
    pre = load_pretrained(tmp_path / "run")
    assert pre.config.model.d_model == 64 and pre.config.data.n_point == 60
    assert pre.model.n_types == 9 and pre.max_len == 256 and pre.model.heads == 4
    feat, type_id = _tokens(9)
    for causal in (True, False):
        want = model.apply({"params": params}, feat, type_id, is_causal=causal)
        for got, w in zip(pre.forward(feat, type_id, is_causal=causal), want):
            np.testing.assert_allclose(np.asarray(got), np.asarray(w), rtol=0, atol=1e-6)


def test_not_a_run_dir_names_the_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty.*not a run directory"):
        load_pretrained(tmp_path / "empty")


# -- original .pt with argparse.Namespace args ----------------------------------------------
@pytest.fixture(scope="module")
def tiny_params():
    from nepa3d_jax.model import QueryNepa

    model = QueryNepa(d_model=16, layers=1, heads=2, max_len=T, attention="xla")
    feat, type_id = _tokens(9)
    params = model.init(jax.random.key(4), jnp.asarray(feat), jnp.asarray(type_id))["params"]
    return model, jax.device_get(params)


def _save_pt(path, params, args):
    torch = pytest.importorskip("torch")
    state = {k: torch.from_numpy(v.copy())
             for k, v in torch_import.params_to_state_dict(params).items()}
    torch.save({"model": state, "aux_heads": None, "opt": {}, "args": args, "epoch": 1,
                "step": 10}, path)
    return path


def _args(**kw):
    a = dict(d_model=16, layers=1, heads=2, n_point=2, n_ray=2, qa_tokens=1,
             qa_layout="interleave", add_eos=1, max_len=-1, arch="causal", seed=7,
             mix_config="", cache_root="data/x", backend="mesh")
    a.update(kw)
    return a


def test_namespace_args_load(tmp_path, tiny_params):
    model, params = tiny_params
    path = _save_pt(tmp_path / "ns.pt", params, argparse.Namespace(**_args()))
    pre = load_pretrained(path)
    assert pre.config.seed == 7 and pre.config.data.max_len == T
    assert pre.config.model.heads == 2
    feat, type_id = _tokens(9, seed=1)
    want = model.apply({"params": params}, feat, type_id)
    for got, w in zip(pre.forward(feat, type_id), want):
        np.testing.assert_allclose(np.asarray(got), np.asarray(w), rtol=0, atol=1e-6)


def test_namespace_args_go_through_the_cli(tmp_path, tiny_params):
    from nepa3d_jax.checkpoint import import_torch

    _, params = tiny_params
    path = _save_pt(tmp_path / "ns.pt", params, argparse.Namespace(**_args()))
    assert import_torch.main([str(path), str(tmp_path / "out")]) == 0
    assert load_pretrained(tmp_path / "out").config.data.qa_layout == "interleave"
    # A second import into the same directory is refused unless asked.
    assert import_torch.main([str(path), str(tmp_path / "out")]) == 2


def test_args_of_another_type_and_unsupported_namespace_args(tmp_path, tiny_params):
    _, params = tiny_params
    path = _save_pt(tmp_path / "list.pt", params, ["d_model", 16])
    with pytest.raises(torch_import.CheckpointError, match=r"list\.pt: 'args' is list"):
        load_pretrained(path)
    path = _save_pt(tmp_path / "encdec.pt", params, argparse.Namespace(**_args(arch="encdec")))
    with pytest.raises(torch_import.CheckpointError, match=r"encdec\.pt.*arch='encdec'"):
        load_pretrained(path)
