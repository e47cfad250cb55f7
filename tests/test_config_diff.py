"""config_diff: pairs, the A/B/C/D matrix, run directories and original .pt args."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from nepa3d_jax.config import derive, load_config, to_run_json
from nepa3d_jax.review import diff as config_diff

REPO = pathlib.Path(__file__).resolve().parents[1]
RUNS = [str(REPO / "configs" / f"run{r}.py") for r in "ABCD"]


def _rows(paths, devices=8):
    cols = [config_diff.resolved_fields(p, devices) for p in paths]
    return dict(config_diff.differing_rows(cols))


def test_a_vs_c_is_order_mode_and_seed_only():
    assert _rows([RUNS[0], RUNS[2]]) == {"data.point_order_mode": ["fps", "morton"],
                                         "seed": [100, 102]}


def test_a_vs_d():
    assert _rows([RUNS[0], RUNS[3]]) == {"data.n_ray": [1024, 0], "data.max_len": [4500, 2500],
                                         "derived.seq_len": [4098, 2050], "seed": [100, 103]}


def test_workdir_only_on_request():
    cols = [config_diff.resolved_fields(p, 8, include_workdir=True) for p in RUNS[:2]]
    assert "workdir" in dict(config_diff.differing_rows(cols))


def test_abcd_matrix_matches_seed_plan_section_3():
    rows = _rows(RUNS)
    absent = config_diff.ABSENT
    assert rows == {
        "seed": [100, 101, 102, 103],
        "data.n_ray": [1024, 0, 1024, 0],
        "data.qa_tokens": [1, 0, 1, 1],
        "data.max_len": [4500, 2500, 4500, 2500],
        "data.pt_xyz_key": ["pt_xyz_pool", "pc_xyz", "pt_xyz_pool", "pt_xyz_pool"],
        "data.ablate_point_dist": [0, 1, 0, 0],
        "data.point_order_mode": ["fps", "morton", "morton", "fps"],
        # mixtures: mesh+udf+scan for A/C/D, shapenet pc + scan for B (0.5 / 0.5)
        "data.mix.shapenet_mesh": ["mesh w=0.34 data/shapenet_cache_v0", absent,
                                   "mesh w=0.34 data/shapenet_cache_v0",
                                   "mesh w=0.34 data/shapenet_cache_v0"],
        "data.mix.shapenet_udf": ["udfgrid w=0.33 data/shapenet_cache_v0", absent,
                                  "udfgrid w=0.33 data/shapenet_cache_v0",
                                  "udfgrid w=0.33 data/shapenet_cache_v0"],
        "data.mix.shapenet_pc": [absent, "pointcloud_noray w=0.5 data/shapenet_cache_v0",
                                 absent, absent],
        "data.mix.scan_noray_mainsplit": [
            f"pointcloud_noray w={w} data/scanobjectnn_main_split_v2"
            for w in (0.33, 0.5, 0.33, 0.33)],
        "derived.seq_len": [4098, 1026, 4098, 2050],
    }
    # Same everywhere, so absent from the table: n_point, sampling mode, batch, LR at 8 devices.


def test_cli_markdown_table(capsys):
    assert config_diff.main([*RUNS, "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| field | runA | runB | runC | runD |" in out
    assert "| `data.qa_tokens` | 1 | 0 | 1 | 1 |" in out
    assert "| `derived.seq_len` | 4098 | 1026 | 4098 | 2050 |" in out


def test_cli_pair_plain(capsys):
    assert config_diff.main([RUNS[0], RUNS[2]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("fields that differ (2)")
    assert [ln.split()[0] for ln in lines[3:]] == ["data.point_order_mode", "seed"]


def _write_run(workdir: pathlib.Path, config, num_devices=8, path=RUNS[0], overrides=()):
    workdir.mkdir(parents=True)
    record = to_run_json(config, derive(config, num_devices, 2), path, overrides)
    (workdir / "config.json").write_text(json.dumps(record))
    return workdir


def test_run_dir_matches(tmp_path, capsys):
    config = load_config(RUNS[0], ["train.epochs=3"])
    run = _write_run(tmp_path / "run", config, overrides=["train.epochs=3"])
    assert config_diff.main(["--run", str(run), RUNS[0]]) == 0
    assert capsys.readouterr().out.startswith("OK:")
    # Against the bare file, the recorded override is a mismatch.
    assert config_diff.main(["--run", str(run), RUNS[0], "--ignore-overrides"]) == 1
    assert "train.epochs" in capsys.readouterr().out
    # Without a file: the saved derived values agree with the saved config; the recorded file
    # is named, not loaded.
    assert config_diff.main(["--run", str(run)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK:") and "not loaded" in out and RUNS[0] in out


def test_run_dir_mismatch_exits_nonzero(tmp_path, capsys):
    config = load_config(RUNS[0])
    config.data.qa_tokens = 0  # what the original's shell wrapper silently did
    run = _write_run(tmp_path / "run", config)
    record = json.loads((run / "config.json").read_text())
    record["derived"]["lr"] = 1.875e-5  # and a learning rate that does not follow the rule
    (run / "config.json").write_text(json.dumps(record))
    assert config_diff.main(["--run", str(run), "--markdown"]) == 1  # the record alone
    out = capsys.readouterr().out
    assert out.startswith("MISMATCH") and "| `derived.lr` | 1.875e-05 | 0.0003 |" in out
    assert "data.qa_tokens" not in out  # the file it should match was not given
    assert config_diff.main(["--run", str(run), RUNS[0], "--markdown"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("MISMATCH")
    assert "| `data.qa_tokens` | 0 | 1 |" in out
    assert "| `derived.lr` | 1.875e-05 | 0.0003 |" in out
    assert "derived.seq_len" in out  # 2050 saved vs 4098 intended


def test_run_dir_explicit_config_overrides_recorded(tmp_path, capsys):
    run = _write_run(tmp_path / "run", load_config(RUNS[2]), path=RUNS[2])
    assert config_diff.main(["--run", str(run), RUNS[0]]) == 1
    out = capsys.readouterr().out
    assert "data.point_order_mode" in out and "seed" in out and "workdir" in out


def test_run_dir_errors(tmp_path, capsys):
    assert config_diff.main(["--run", str(tmp_path)]) == 2
    assert "config.json" in capsys.readouterr().err


def _tiny_config(tmp_path, qa_tokens, lr_scale=False):
    """A config file stating what ckpt/tiny_qa/last.pt was trained with (README)."""
    path = tmp_path / f"tiny_qa{qa_tokens}_{int(lr_scale)}.py"
    path.write_text(f"""from nepa3d_jax.train import pretrain_defaults

def get_config():
  c = pretrain_defaults.get_config()
  c.seed = 0
  c.data.mix_config = "mixA.yaml"
  c.data.mix_num_samples = 40  # the YAML's (the .pt's args say 0: take the YAML's)
  c.data.n_point, c.data.n_ray, c.data.qa_tokens, c.data.max_len = 32, 32, {qa_tokens}, -1
  c.model.d_model, c.model.layers, c.model.heads = 64, 2, 4
  c.train.batch_per_device, c.train.epochs = 4, 2
  c.train.lr_scale = {lr_scale}
  return c
""")
    return str(path)


def test_torch_args_match(reference_dir, tmp_path, capsys):
    pytest.importorskip("torch")
    ckpt = str(reference_dir / "ckpt" / "tiny_qa" / "last.pt")
    assert config_diff.main(["--run", ckpt, _tiny_config(tmp_path, 1)]) == 0
    assert capsys.readouterr().out.startswith("OK:")


def test_torch_args_qa_tokens_mismatch_is_one_command(reference_dir, tmp_path, capsys):
    pytest.importorskip("torch")
    ckpt = str(reference_dir / "ckpt" / "tiny_qa" / "last.pt")
    assert config_diff.main(["--run", ckpt, _tiny_config(tmp_path, 0)]) == 1
    out = capsys.readouterr().out
    assert "data.qa_tokens" in out
    # qa_tokens is the only difference; max_len 130 (auto) resolves to 66 for qa_tokens=0
    # so it is flagged too, which is exactly the positional-table consequence.
    flagged = [ln.split()[0] for ln in out.splitlines()[3:]]
    assert flagged == ["data.max_len", "data.qa_tokens"]


def test_torch_args_effective_lr_is_compared(reference_dir, tmp_path, capsys):
    """The .pt ran at lr 3e-4; a config asking for linear scaling from 3e-4 at batch 128 means
    3e-4 * (4 x 8) / 128 = 7.5e-5 at 8 devices: the LR slip of the plan, flagged."""
    pytest.importorskip("torch")
    ckpt = str(reference_dir / "ckpt" / "tiny_qa" / "last.pt")
    assert config_diff.main(["--run", ckpt, _tiny_config(tmp_path, 1, lr_scale=True)]) == 1
    out = capsys.readouterr().out
    rows = [ln.split() for ln in out.splitlines()[3:]]
    assert [r[0] for r in rows] == ["train.lr"]
    assert rows[0][-2:] == ["0.0003", "7.5e-05"]
    assert config_diff.main(["--run", ckpt, "--devices", "32",
                             _tiny_config(tmp_path, 1, lr_scale=True)]) == 0


def _mixture_config(tmp_path, name, mix_lines):
    """The tiny_qa settings with an inline mixture (`mix_lines` set `c.data.mix`)."""
    text = pathlib.Path(_tiny_config(tmp_path, 1)).read_text()
    text = text.replace('  c.data.mix_config = "mixA.yaml"\n', mix_lines)
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    return str(path)


RUN_A_STYLE = """  c.data.mix = pretrain_defaults.mix_mesh_udf_scan()
  c.data.mix.shapenet_mesh.cache_root = "cache"
  c.data.mix.shapenet_udf.cache_root = "cache"
  c.data.mix.scan_noray_mainsplit.cache_root = "scan_cache"
"""


def test_torch_mixture_is_compared(reference_dir, tmp_path, monkeypatch, capsys):
    """tiny_qa trained on mixA.yaml: the same mixture inline reads OK; Run B's, or a changed
    backend, is flagged (before, any mixture read OK)."""
    pytest.importorskip("torch")
    monkeypatch.chdir(reference_dir)
    ckpt = str(reference_dir / "ckpt" / "tiny_qa" / "last.pt")
    assert config_diff.main(["--run", ckpt, _tiny_config(tmp_path, 1)]) == 0
    assert "mixture=mixture compared (mix_config mixA.yaml)" in capsys.readouterr().out
    assert config_diff.main(["--run", ckpt, _mixture_config(tmp_path, "a", RUN_A_STYLE)]) == 0
    assert "mixture compared" in capsys.readouterr().out
    run_b = "  c.data.mix = pretrain_defaults.mix_scan_pointcloud()\n"
    assert config_diff.main(["--run", ckpt, _mixture_config(tmp_path, "b", run_b)]) == 1
    out = capsys.readouterr().out
    assert "data.mix (components)" in out and "shapenet_pc" in out
    swapped = RUN_A_STYLE + '  c.data.mix.scan_noray_mainsplit.backend = "pointcloud"\n'
    assert config_diff.main(["--run", ckpt, _mixture_config(tmp_path, "c", swapped)]) == 1
    rows = [ln.split() for ln in capsys.readouterr().out.splitlines()[3:]]
    assert rows == [["data.mix[2]", "(scan_noray_mainsplit).backend", "pointcloud_noray",
                     "pointcloud"]]


def test_torch_mixture_not_found_says_so(reference_dir, tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    ckpt = tmp_path / "run" / "last.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes((reference_dir / "ckpt" / "tiny_qa" / "last.pt").read_bytes())
    monkeypatch.chdir(tmp_path)
    run_b = "  c.data.mix = pretrain_defaults.mix_scan_pointcloud()\n"
    config = _mixture_config(tmp_path, "b", run_b)
    assert config_diff.main(["--run", str(ckpt), config]) == 0
    assert "mixture not compared: mix_config 'mixA.yaml' not found" in capsys.readouterr().out


_EVIL = """import pathlib
pathlib.Path({marker!r}).write_text("ran")  # runs if anything imports this file
from nepa3d_jax.train.pretrain_defaults import get_config
"""


@pytest.mark.parametrize("where", ["inside", "absolute"])
def test_reviewing_a_run_dir_runs_no_file_it_names(tmp_path, where):
    """Issue 27.1: a run directory is untrusted input. Its config.json names a Python file that
    would write a marker when imported; `config diff --run` (the documented command) and
    `--show_source` read only JSON and text, and the marker never appears."""
    marker = tmp_path / "PWNED"
    run = tmp_path / "run"
    run.mkdir()
    evil = (run / "evil.py") if where == "inside" else (tmp_path / "elsewhere" / "evil.py")
    evil.parent.mkdir(parents=True, exist_ok=True)
    evil.write_text(_EVIL.format(marker=str(marker)))
    recorded = "evil.py" if where == "inside" else str(evil)
    config = load_config(RUNS[0])
    (run / "config.json").write_text(json.dumps(to_run_json(config, derive(config, 8, 2),
                                                            recorded, ["train.epochs=3"])))
    cwd = run if where == "inside" else REPO  # a relative path: also not from the run's folder
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for args in (["-m", "nepa3d_jax.config_diff", "--run", str(run)],
                 ["-m", "nepa3d_jax.config", "diff", "--run", str(run), "--show_source"]):
        out = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert not marker.exists(), args
    assert "shown as text, not run" in out.stdout and "write_text" in out.stdout
    # The payload is real: loading the file as a config runs it.
    load_config(str(evil))
    assert marker.read_text() == "ran"
