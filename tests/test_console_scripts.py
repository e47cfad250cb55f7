"""The installed console scripts as a new user meets them (issue 26): usage that names the
required flags and configs/, one clear line (exit status 2) for every mistake, snake_case and
kebab-case alike, every job's config checkable. Run as subprocesses from a folder outside
the checkout, through the scripts pip wrote next to this interpreter."""

import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
BIN = pathlib.Path(sys.executable).parent


def _script(name: str) -> str:
    path = BIN / name
    if not path.is_file():
        pytest.skip(f"{name} is not installed next to {sys.executable} (pip install -e .)")
    return str(path)


def run(name: str, *args, cwd=None) -> subprocess.CompletedProcess:
    cmd = [_script(name) if not name.startswith("-m ") else sys.executable]
    if name.startswith("-m "):
        cmd += ["-m", name[3:]]
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True,
                          timeout=180, cwd=cwd or REPO.parent,
                          env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"})


def one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit status 2, no traceback, one stderr line holding every needle."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-1000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_nepa3d_jax_without_config_prints_usage_and_runs_nothing(tmp_path):
    proc = run("nepa3d-jax", cwd=tmp_path)
    one_line_error(proc, "--config FILE is required", "configs/")
    assert list(tmp_path.iterdir()) == []  # no silent demo: nothing written
    help_ = run("nepa3d-jax", "--help", cwd=tmp_path)
    assert help_.returncode == 0, help_.stderr
    assert "usage: nepa3d-jax --config FILE" in help_.stdout
    assert "configs/demo.py" in help_.stdout and "nepa3d-config" in help_.stdout


def test_nepa3d_jax_names_the_file_field_or_flag_in_one_line(tmp_path):
    pt = tmp_path / "last.pt"
    pt.write_bytes(b"PK\x03\x04\x00\x00binary")
    no_get = tmp_path / "cfg.py"
    no_get.write_text("x = 1\n")
    demo = CONFIGS / "demo.py"
    one_line_error(run("nepa3d-jax", "--config", tmp_path / "nope.py"),
                   "config file not found", "nope.py")
    one_line_error(run("nepa3d-jax", "--config", pt), str(pt), "not a config file")
    one_line_error(run("nepa3d-jax", "--config", no_get), str(no_get), "get_config()")
    one_line_error(run("nepa3d-jax", "--config", demo, "--config.train.epoch=3"),
                   "train has no field 'epoch'", "did you mean --config.train.epochs?")
    # kebab-case field names are the snake_case ones; a wrong type names the field
    one_line_error(run("nepa3d-jax", "--config", demo, "--config.train.num-steps=abc"),
                   "--config.train.num_steps=abc", "invalid literal")
    one_line_error(run("nepa3d-jax", "--config", demo, "--confg.train.num_steps=1"),
                   "unknown flag '--confg.train.num_steps'")
    one_line_error(run("nepa3d-jax", "--config", demo, "runs/demo"),
                   "unexpected argument 'runs/demo'")


def _fake_run_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (tmp_path / "cache").mkdir()
    return run_dir


@pytest.mark.parametrize("name", ["eval_bundle", "cpac_udf"])
def test_nepa3d_config_checks_evaluation_configs(tmp_path, name):
    """These crashed with AttributeError 'data'; now the evaluator's own checks run."""
    config = CONFIGS / f"{name}.py"
    one_line_error(run("nepa3d-config", "--config", config), str(config), "config.ckpt")
    run_dir = _fake_run_dir(tmp_path)
    cache = "cpac.cache_root" if name == "eval_bundle" else "cache_root"
    ok = run("nepa3d-config", "--config", config, f"--config.ckpt={run_dir}",
             f"--config.{cache}={tmp_path / 'cache'}")
    assert ok.returncode == 0, ok.stderr
    assert f'"ckpt": "{run_dir}"' in ok.stdout and f'"job": "{name}"' in ok.stdout
    bad = run("nepa3d-config", "--config", config, f"--config.ckpt={run_dir}",
              f"--config.{cache}={tmp_path / 'no_cache'}")
    one_line_error(bad, "cache_root", "no_cache")


def test_nepa3d_config_checks_classification_configs(tmp_path):
    for name in ("cls_scanobjectnn", "cls_modelnet40"):
        ok = run("nepa3d-config", "--config", CONFIGS / f"{name}.py", "--quiet")
        assert ok.returncode == 0 and ok.stdout == "", (name, ok.stderr)
        bad = run("nepa3d-config", "--config", CONFIGS / f"{name}.py",
                  "--config.cls-pooling=maxx")
        one_line_error(bad, "config.cls_pooling='maxx'")


def test_nepa3d_config_mistakes_are_one_line(tmp_path):
    pt = tmp_path / "last.pt"
    pt.write_bytes(b"PK\x03\x04\x00\x00binary")
    demo = CONFIGS / "demo.py"
    one_line_error(run("nepa3d-config", "--config", demo, "--config.train.epoch=3"),
                   "train has no field 'epoch'", "did you mean --config.train.epochs?")
    one_line_error(run("nepa3d-config", "--config", pt), str(pt), "not a config file")
    one_line_error(run("nepa3d-config", "diff", pt, demo), str(pt), "not a config file")
    one_line_error(run("nepa3d-config", "diff", tmp_path / "nope.py", demo), "nope.py")
    ok = run("nepa3d-config", "--config", demo, "--quiet", "--config.train.num-steps=5")
    assert ok.returncode == 0, ok.stderr
    usage = run("nepa3d-config")
    assert usage.returncode == 2 and "configs/" in usage.stderr and "--config FILE" in usage.stderr


def test_nepa3d_prep_knows_every_tool_the_docs_name():
    from data_prep.__main__ import TOOLS

    docs = "\n".join(p.read_text() for p in [REPO / "README.md", *(REPO / "docs").glob("*.md")])
    named = set(re.findall(r"python -m data_prep\.([a-z_]+)", docs))
    named |= set(re.findall(r"nepa3d-prep ([a-z_]+)", docs))
    assert "to_tfds" in named and named <= set(TOOLS), named - set(TOOLS)
    for tool in ("to_tfds", "to-tfds"):
        proc = run("nepa3d-prep", tool, "--help")
        assert proc.returncode == 0 and "--out" in proc.stdout, proc.stderr
    one_line_error(run("nepa3d-prep", "mesh"), "unknown tool 'mesh'", "did you mean 'meshes'?")
    usage = run("nepa3d-prep")
    assert usage.returncode == 2 and "to_tfds" in usage.stderr


def test_module_commands_take_both_spellings(tmp_path):
    for flag in ("--n_point", "--n-point"):
        proc = run("-m nepa3d_jax.eval.render", "tokens", "--cache", tmp_path / "x.npz", "--out",
                   tmp_path / "t.png", flag, "8")
        assert proc.returncode == 2 and "x.npz: no such file" in proc.stderr, proc.stderr
    for flag in ("--out", "--out_dir", "--out-dir"):
        proc = run("-m data_prep.to_tfds", "--cache-root", tmp_path / "none", flag, tmp_path / "o")
        assert proc.returncode == 2 and "none" in proc.stderr, proc.stderr
        assert "unrecognized" not in proc.stderr
    one_line_error(run("-m nepa3d_jax.parallel.selftest", "--config", tmp_path / "nope.py"),
                   "config file not found", "nope.py")
