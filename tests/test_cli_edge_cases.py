"""Issue 14.7: the smaller reliability items, through the real CLIs, files and signals."""

import os
import pathlib
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
from helpers import make_arrays, write_cache


def _env(**extra):
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                JAX_PLATFORMS="cpu", **extra)


def _py(args, timeout=180, **kw):
    return subprocess.run([sys.executable, *args], cwd=REPO, env=_env(), capture_output=True,
                          text=True, timeout=timeout, **kw)


def test_unknown_override_is_one_line_with_the_suggestion():
    out = _py(["-m", "nepa3d_jax.main", "--config", "configs/base.py",
               "--config.train.num_stepz=5"])
    assert out.returncode == 2
    assert out.stderr.strip() == ("nepa3d-jax: error: --config.train.num_stepz: train has no "
                                  "field 'num_stepz'; did you mean --config.train.num_steps?")


def test_workdir_that_is_a_file_is_named_before_any_work(tmp_path):
    workdir = tmp_path / "runA"
    workdir.write_text("not a directory")
    out = _py(["-m", "nepa3d_jax.main", "--config", "configs/base.py",
               f"--config.workdir={workdir}", "--config.data.mix_config=nowhere.yaml"])
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"config.workdir={workdir} is a file, not a directory" in out.stderr
    assert "Traceback" not in out.stderr and workdir.read_text() == "not a directory"


def test_cpac_checks_out_json_and_ckpt_before_the_work(tmp_path, reference_dir):
    from nepa3d_jax.config import load_config
    from nepa3d_jax.eval.cpac import udf

    c = load_config(str(REPO / "configs" / "cpac_udf.py"))
    c.update(dict(ckpt=str(tmp_path), cache_root=str(reference_dir / "unpaired"),
                  out_json=str(tmp_path / "out.json")))
    with pytest.raises(ValueError, match=r"config.ckpt=.* is a directory but not a run "
                                         r"directory \(no checkpoints/ inside\)"):
        udf.validate(c)
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    c.ckpt = str(tmp_path / "run")
    c.out_json = str(tmp_path)
    with pytest.raises(ValueError, match=r"config.out_json=.* is a directory"):
        udf.validate(c)


def test_data_prep_outputs_follow_the_umask(tmp_path):
    from data_prep.atomic import atomic_savez
    from nepa3d_jax.atomic_io import atomic_path, write_text_atomic

    old = os.umask(0o022)
    try:
        atomic_savez(tmp_path / "a.npz", {"x": np.zeros(3)})
        write_text_atomic(tmp_path / "b.json", "{}")
        with atomic_path(tmp_path / "c.bin") as tmp:
            pathlib.Path(tmp).write_bytes(b"x")
    finally:
        os.umask(old)
    for name in ("a.npz", "b.json", "c.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


_POOL_SCRIPT = """
import os, sys, time
from nepa3d_jax.process_pool import process_pool
pool = process_pool(2)
futures = [pool.submit(time.sleep, 600) for _ in range(2)]
time.sleep(2.0)
print(" ".join(str(p) for p in pool._processes), flush=True)
time.sleep(600)
"""


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_worker_processes_die_with_a_sigkilled_parent():
    parent = subprocess.Popen([sys.executable, "-c", _POOL_SCRIPT], cwd=REPO, env=_env(),
                              stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(p) for p in parent.stdout.readline().split()]
        assert len(workers) == 2 and all(_alive(p) for p in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.time() + 20
        while any(_alive(p) for p in workers) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(_alive(p) for p in workers)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_validate_rejects_a_mesh_cache_whose_rays_all_miss(tmp_path):
    arrays = make_arrays(seed=1)
    arrays["ray_hit_pool"][:] = 0.0  # what a 1e30 outlier vertex made of a cache
    write_cache(tmp_path / "cache" / "train" / "chair" / "outlier.npz", arrays=arrays)
    write_cache(tmp_path / "cache" / "train" / "chair" / "fine.npz", seed=2)
    out = _py(["-m", "data_prep.validate", "--cache_root", str(tmp_path / "cache"),
               "--splits", "train", "--backends", "mesh"])
    assert out.returncode != 0
    assert "outlier.npz" in out.stdout + out.stderr and "rays hits the surface" in out.stdout \
        + out.stderr
    assert "fine.npz" not in out.stdout + out.stderr


def test_mesh_with_an_outlier_vertex_is_skipped_not_cached(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    from data_prep.mesh_cache import load_mesh, mesh_cache
    from data_prep.profile import Profile
    from data_prep.runner import BadShape

    box = trimesh.creation.box()
    far = len(box.vertices)
    mesh = trimesh.Trimesh(np.vstack([box.vertices, [[1e30, 0, 0]]]),
                           np.vstack([box.faces, [[0, 1, far]]]), process=False)
    mesh.export(tmp_path / "outlier.obj")
    prof = Profile(pc_points=64, pt_pool=64, ray_pool=64, n_views=2, rays_per_view=32,
                   df_grid=0, udf=False, pc_rays=False, dist_ref_points=256)
    with pytest.raises(BadShape, match="rays hits the normalised surface"):
        mesh_cache(load_mesh(str(tmp_path / "outlier.obj")), prof, np.random.default_rng(0))


def test_import_torch_overwrite_replaces_the_whole_previous_run(tmp_path, reference_dir):
    pytest.importorskip("torch")
    pt = reference_dir / "ckpt" / "tiny_qa" / "last.pt"
    out = tmp_path / "run"
    for name in ("metrics", "checkpoints/7"):
        (out / name).mkdir(parents=True)
    (out / "metrics" / "loss.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    (out / "results.json").write_text('{"final_loss": 0.5}')
    (out / "notes.txt").write_text("mine")
    refused = _py(["-m", "nepa3d_jax.checkpoint.import_torch", str(pt), str(out)])
    assert refused.returncode == 2 and "--overwrite" in refused.stderr
    done = _py(["-m", "nepa3d_jax.checkpoint.import_torch", str(pt), str(out), "--overwrite"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (out / "metrics").exists() and not (out / "results.json").exists()
    assert (out / "notes.txt").read_text() == "mine"  # only the run's own artefacts go
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["0"]
    assert not (out / "run.lock").exists()


def test_type_emb_of_the_wrong_width_is_named():
    from nepa3d_jax.checkpoint.torch_import import CheckpointError, infer_spec

    state = {"pos_emb": np.zeros((1, 10, 8)), "type_emb.weight": np.zeros((9, 5)),
             "token_mlp.0.weight": np.zeros((8, 15))}
    with pytest.raises(CheckpointError, match=r"'type_emb.weight' has shape \(9, 5\), but "
                                              r"'pos_emb' \(1, 10, 8\) says d_model=8"):
        infer_spec(state, heads=4)
