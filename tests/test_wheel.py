"""The package stands alone: a NON-editable install into a fresh venv runs the demo config from
another directory, through the console scripts.

Offline and fast: the wheel is built from a copy of the sources (`pip install --no-deps
--no-build-isolation --no-index`) into a venv without pip whose only link to the running one
is a `.pth` naming the running venv's site-packages, for the dependencies (jax, flax, ...).
That venv's own site-packages comes first, so the installed copy is what runs (asserted), not
the checkout nor an editable install. The run is the real demo (the config builds its
synthetic corpus through `data.synthetic.builder`, pretrains, checkpoints) with tiny sizes.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--config.data.synthetic.n_per_class=2", "--config.data.mix_num_samples=8",
        "--config.data.n_point=16", "--config.data.n_ray=16", "--config.train.batch_per_device=4",
        "--config.train.num_steps=2", "--config.train.checkpoint_every_steps=2",
        "--config.train.eval_after=", "--config.train.log_every_steps=1",
        "--config.model.layers=1"]


def _run(argv, cwd, timeout=300):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1")
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    for name in ("nepa3d_jax", "data_prep"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    env_dir = base / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", env_dir], base)
    assert made.returncode == 0, made.stderr
    python = env_dir / "bin" / "python"
    site = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], base)
    pathlib.Path(site.stdout.strip(), "_running_env.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n")
    pip = _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                "--no-index", src], base)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    return env_dir, elsewhere


def test_installed_copy_is_what_runs(venv):
    env_dir, elsewhere = venv
    out = _run([env_dir / "bin" / "python", "-c",
                "import nepa3d_jax, data_prep; print(nepa3d_jax.__file__, data_prep.__file__)"],
               elsewhere)
    assert out.returncode == 0, out.stderr
    for path in out.stdout.split():
        assert path.startswith(str(env_dir)), out.stdout
    for script in ("nepa3d-jax", "nepa3d-config", "nepa3d-prep"):
        help_out = _run([env_dir / "bin" / script, "--help"], elsewhere)
        assert help_out.returncode == 0 and "nepa3d" in help_out.stdout, (script, help_out.stderr)


def test_demo_config_checks_and_runs_from_another_directory(venv):
    env_dir, elsewhere = venv
    config = REPO / "configs" / "demo.py"
    check = _run([env_dir / "bin" / "nepa3d-config", "--config", config, "--devices", "1",
                  *TINY], elsewhere)
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout)["derived"]["seq_len"] == 1 + 2 * 16 + 2 * 16 + 1
    run = _run([env_dir / "bin" / "nepa3d-jax", "--config", config, *TINY], elsewhere)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((elsewhere / "runs" / "demo" / "results.json").read_text())
    assert results["step"] == 2 and len(results["losses"]) == 2
    assert all(0.0 < loss < 2.0 for _, loss in results["losses"])  # 1 - cos is in [0, 2]
    assert (elsewhere / "data" / "demo" / "unpaired_split.json").is_file()  # built by data_prep
