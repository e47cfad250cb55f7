"""Process topology from launcher variables, the mesh, sharding rules, host -> global batches."""

import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from nepa3d_jax.config import load_config
from nepa3d_jax.parallel import (TopologyError, batch_sharding, host_batch_to_global, make_mesh,
                                 param_shardings, process_info_from_env)
from nepa3d_jax.parallel.mesh import leaf_spec
from nepa3d_jax.parallel.selftest import global_batch_values, run_psum
from nepa3d_jax.parallel.topology import port_from_job_id


def _pbs_env(tmp_path, lines, **extra):
    node_file = tmp_path / "nodes"
    node_file.write_text("".join(f"{ln}\n" for ln in lines))
    return {"PBS_NODEFILE": str(node_file), "PBS_JOBID": "93506.pbs1", **extra}


def test_single_process_without_launcher():
    info = process_info_from_env({})
    assert (info.num_processes, info.process_id, info.coordinator, info.source) == (1, 0, None, "single")


def test_pbs_rank_from_nodenum_with_repeated_lines(tmp_path):
    lines = ["gpu1", "gpu1", "gpu2", "gpu2", "gpu3", "gpu3"]
    info = process_info_from_env(_pbs_env(tmp_path, lines, PBS_NODENUM="4", PBS_TASKNUM="1a"))
    assert (info.num_processes, info.process_id) == (3, 2)
    assert info.coordinator == f"gpu1:{port_from_job_id('93506.pbs1')}" == "gpu1:23506"
    assert info.local_device_ids is None and info.hosts == ("gpu1", "gpu2", "gpu3")


def test_pbs_procs_per_node_gives_device_ids(tmp_path):
    lines = ["a", "a", "b", "b"]
    env = _pbs_env(tmp_path, lines, PBS_NODENUM="3", NEPA3D_PROCS_PER_NODE="2",
                   NEPA3D_DEVICES_PER_NODE="4", NEPA3D_COORDINATOR_PORT="15000")
    info = process_info_from_env(env)
    assert (info.num_processes, info.process_id, info.local_device_ids) == (4, 3, (2, 3))
    assert info.coordinator == "a:15000"


def test_pbs_single_host_is_single_process(tmp_path):
    info = process_info_from_env(_pbs_env(tmp_path, ["gpu1"] * 4))
    assert info.num_processes == 1 and info.coordinator is None


@pytest.mark.parametrize("lines,extra,needle", [
    (None, {}, "does not exist"),
    ([], {}, "empty"),
    (["x1", "x2"], {}, "cannot determine this process's rank"),
    (["x1", "x2"], {"PBS_NODENUM": "7"}, "PBS_NODENUM='7'"),
    (["x1", "x1", "x2"], {"PBS_NODENUM": "1"}, "slot 1 of host x1"),
])
def test_pbs_errors(tmp_path, lines, extra, needle):
    env = _pbs_env(tmp_path, lines or [], **extra)
    if lines is None:
        env["PBS_NODEFILE"] = str(tmp_path / "missing")
    with pytest.raises(TopologyError, match=needle):
        process_info_from_env(env)


def test_explicit_env():
    env = {"NEPA3D_COORDINATOR": "10.0.0.1:1234", "NEPA3D_NUM_PROCESSES": "4",
           "NEPA3D_PROCESS_ID": "2", "NEPA3D_LOCAL_DEVICE_IDS": "0,1", "PBS_NODEFILE": "/x"}
    info = process_info_from_env(env)
    assert (info.source, info.process_id, info.local_device_ids) == ("env", 2, (0, 1))
    with pytest.raises(TopologyError, match="NEPA3D_PROCESS_ID"):
        process_info_from_env({"NEPA3D_COORDINATOR": "h:1", "NEPA3D_NUM_PROCESSES": "2"})
    with pytest.raises(TopologyError, match="outside"):
        process_info_from_env({**env, "NEPA3D_PROCESS_ID": "4"})


def test_mesh_axes_and_fsdp():
    mesh = make_mesh(load_config("configs/runA.py"))
    assert dict(mesh.shape) == {"data": 8, "fsdp": 1}
    mesh = make_mesh(load_config("configs/runA.py", ["parallel.fsdp=2"]))
    assert dict(mesh.shape) == {"data": 4, "fsdp": 2}
    with pytest.raises(ValueError, match="parallel.fsdp=3"):
        make_mesh(load_config("configs/runA.py", ["parallel.fsdp=3"]))


def test_sharding_rules():
    assert leaf_spec((384, 1536), 1) == P()
    assert leaf_spec((384, 1536), 4) == P(None, "fsdp")   # the largest divisible axis
    assert leaf_spec((4096, 6), 4) == P("fsdp", None)
    assert leaf_spec((384,), 4) == P()                   # small leaves replicate
    assert leaf_spec((4099, 7), 4) == P()                # nothing divisible
    mesh = make_mesh(load_config("configs/runA.py", ["parallel.fsdp=4"]))
    tree = {"w": np.zeros((128, 256), np.float32), "b": np.zeros((256,), np.float32)}
    shardings = param_shardings(tree, mesh)
    assert shardings["w"].spec == P(None, "fsdp") and shardings["b"].spec == P()
    placed = jax.device_put(tree["w"], shardings["w"])
    assert placed.addressable_shards[0].data.shape == (128, 64)


def test_host_batch_to_global_single_process():
    mesh = make_mesh()
    batch = {"x": np.arange(16 * 3, dtype=np.float32).reshape(16, 3), "n": np.arange(16)}
    out = host_batch_to_global(batch, mesh)
    assert out["x"].shape == (16, 3) and out["x"].sharding == batch_sharding(mesh)
    assert out["x"].addressable_shards[1].data.tolist() == batch["x"][2:4].tolist()
    np.testing.assert_array_equal(np.asarray(out["n"]), batch["n"])


def test_psum_single_process_reference():
    got = run_psum(make_mesh())
    np.testing.assert_array_equal(got, global_batch_values(8).sum(0))
    assert got.tolist() == [360.0, 376.0, 392.0]


def test_unreachable_coordinator_times_out_with_clear_error():
    env = {"NEPA3D_COORDINATOR": "127.0.0.1:29", "NEPA3D_NUM_PROCESSES": "2",
           "NEPA3D_PROCESS_ID": "1", "JAX_PLATFORMS": "cpu", "NEPA3D_INIT_TIMEOUT": "2"}
    code = "from nepa3d_jax.parallel import initialize; initialize()"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert "process 1 of 2 could not join the coordinator 127.0.0.1:29 within 2 s" in proc.stderr


def test_unresolvable_coordinator_host():
    from nepa3d_jax.parallel import initialize
    env = {"NEPA3D_COORDINATOR": "no-such-host.invalid:1234", "NEPA3D_NUM_PROCESSES": "2",
           "NEPA3D_PROCESS_ID": "1"}
    with pytest.raises(TopologyError, match="cannot be resolved"):
        initialize(env)
