"""Run directory: Orbax round trip of a sharded state, retention, params-only save/load."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from nepa3d_jax.checkpoint import run_dir as run_dir_lib


@pytest.fixture(scope="module")
def mesh():
    return jax.make_mesh((4, 2), ("data", "fsdp"))


def _state(mesh, scale=1.0):
    params = {"dense": {"kernel": jnp.arange(64.0).reshape(8, 8) * scale, "bias": jnp.ones(8)},
              "pos_emb": jnp.full((1, 6, 8), 0.5 * scale)}
    shard = {"dense": {"kernel": NamedSharding(mesh, P("fsdp", None)),
                       "bias": NamedSharding(mesh, P())},
             "pos_emb": NamedSharding(mesh, P())}
    params = jax.device_put(params, shard)
    opt_state = optax.adamw(1e-3).init(params)
    step = jax.device_put(jnp.int32(7), NamedSharding(mesh, P()))
    return {"params": params, "opt_state": opt_state, "step": step}


def _abstract(tree):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


def test_save_restore_roundtrip_keeps_layout_iterator_and_config(tmp_path, mesh):
    state = _state(mesh)
    with run_dir_lib.RunDir(tmp_path / "run", keep=2) as run_dir:
        for step in (3, 6, 9):
            run_dir.save(step, state, {"epoch": 1, "step": step}, {"seed": 0, "step": step})
        run_dir.wait()
        assert run_dir.all_steps() == [6, 9]  # keep=2: the newest two
        assert run_dir.latest_step() == 9
        restored, data_iter, config = run_dir.restore(_abstract(state))
    assert data_iter == {"epoch": 1, "step": 9}
    assert config == {"seed": 0, "step": 9}
    assert type(restored["opt_state"][0]) is type(state["opt_state"][0])  # NamedTuple kept
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert a.sharding == b.sharding


def test_restore_of_missing_run_names_folder(tmp_path, mesh):
    with run_dir_lib.RunDir(tmp_path / "empty") as run_dir:
        with pytest.raises(FileNotFoundError, match="no checkpoint"):
            run_dir.restore(_abstract(_state(mesh)))
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        run_dir_lib.load_params(tmp_path / "nothing_here")


def test_params_only_save_and_load_on_one_device(tmp_path, mesh):
    params = _state(mesh, scale=2.0)["params"]
    config = {"model": {"d_model": 8}, "derived": {"max_len": 6}}
    run_dir_lib.save_params_only(tmp_path / "imported", params, config)
    loaded_config, loaded = run_dir_lib.load_params(tmp_path / "imported")
    assert loaded_config.model.d_model == 8 and loaded_config.derived.max_len == 6
    assert json.loads((tmp_path / "imported" / "config.json").read_text())["model"] == {"d_model": 8}
    device = jax.local_devices()[0]
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert a.sharding.device_set == {device}


def test_load_params_reads_params_of_a_full_train_state(tmp_path, mesh):
    state = _state(mesh, scale=3.0)
    with run_dir_lib.RunDir(tmp_path / "run", async_save=False) as run_dir:
        run_dir.save(5, state, {"epoch": 0, "step": 5}, {"workdir": "x", "config_source": {}})
    config, params = run_dir_lib.load_params(tmp_path / "run")
    assert "config_source" not in config and config.workdir == "x"
    assert set(params) == {"dense", "pos_emb"}
    np.testing.assert_array_equal(np.asarray(params["dense"]["kernel"]),
                                  np.arange(64.0).reshape(8, 8) * 3.0)


def test_provenance_names_versions_devices_and_warnings():
    record = run_dir_lib.provenance(["lr looks wrong"], extra_field=1)
    assert record["packages"]["jax"] == jax.__version__
    assert record["devices"]["num_devices"] == jax.device_count()
    assert record["devices"]["platform"] == "cpu"
    assert record["warnings"] == ["lr looks wrong"] and record["extra_field"] == 1
    assert "git_commit" in record


def test_git_commit_names_head_and_marks_edits(tmp_path):
    import subprocess

    def git(*args):
        return subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t",
                               "-c", "user.email=t@example.com", *args],
                              check=True, capture_output=True, text=True).stdout.strip()

    assert run_dir_lib.git_commit(tmp_path) is None  # not a checkout
    git("init", "-q")
    (tmp_path / "f.txt").write_text("a")
    git("add", "f.txt")
    git("commit", "-qm", "one")
    head = git("rev-parse", "HEAD")
    assert len(head) == 40 and run_dir_lib.git_commit(tmp_path) == head
    (tmp_path / "untracked.txt").write_text("ignored by -uno")
    assert run_dir_lib.git_commit(tmp_path) == head
    (tmp_path / "f.txt").write_text("b")
    assert run_dir_lib.git_commit(tmp_path) == head + "+dirty"
