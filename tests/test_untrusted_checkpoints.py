"""Issue 14.1: no entry point that accepts a `.pt` runs code from it.

The malicious file is a real pickle whose `__reduce__` would create a marker file when
unpickled with `weights_only=False`; every entry point must refuse it with a clear error and
the marker must not exist afterwards.
"""

import json
import os
import pathlib
import subprocess
import sys

import ml_collections
import pytest

torch = pytest.importorskip("torch")

REPO = pathlib.Path(__file__).resolve().parents[1]


class _Payload:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # runs on unpickling: creates the marker


@pytest.fixture()
def evil_pt(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "args": _Payload(str(marker)), "epoch": 1}, str(path))
    assert path.stat().st_size > 0 and not marker.exists()
    return path, marker


def _env():
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                JAX_PLATFORMS="cpu")


def _run(args, tmp_path):
    return subprocess.run([sys.executable, *args], cwd=REPO, env=_env(), capture_output=True,
                          text=True, timeout=300)


def test_unsafe_load_would_run_the_payload(evil_pt):
    """The fixture is really malicious: a plain (unsafe) load creates the marker."""
    path, marker = evil_pt
    torch.load(str(path), weights_only=False)
    assert marker.exists()


def test_config_diff_run_refuses_malicious_pt(evil_pt, tmp_path):
    path, marker = evil_pt
    out = _run(["-m", "nepa3d_jax.config_diff", "--run", str(path), "configs/runA.py"], tmp_path)
    assert out.returncode != 0
    assert not marker.exists()
    assert "weights-only" in out.stderr and str(path) in out.stderr
    assert "Unsupported global" in out.stderr and "Traceback" not in out.stderr


def test_import_torch_refuses_malicious_pt(evil_pt, tmp_path):
    path, marker = evil_pt
    out = _run(["-m", "nepa3d_jax.checkpoint.import_torch", str(path), str(tmp_path / "out")],
               tmp_path)
    assert out.returncode == 2, out.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()
    assert "weights-only" in out.stderr and "Traceback" not in out.stderr


def test_cpac_udf_cli_refuses_malicious_pt(evil_pt, tmp_path, reference_dir):
    path, marker = evil_pt
    out = _run(["-m", "nepa3d_jax.main", "--config", "configs/cpac_udf.py",
                f"--config.ckpt={path}", f"--config.cache_root={reference_dir / 'unpaired'}",
                f"--config.out_json={tmp_path / 'cpac.json'}", "--config.max_shapes=2",
                "--config.check_caches=False"], tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    assert not marker.exists() and not (tmp_path / "cpac.json").exists()
    assert "weights-only" in out.stderr and str(path) in out.stderr


def test_finetune_and_bundle_refuse_malicious_pt(evil_pt, tmp_path, reference_dir):
    from nepa3d_jax.checkpoint.torch_file import CheckpointError
    from nepa3d_jax.config import load_config
    from nepa3d_jax.main import run_job

    path, marker = evil_pt
    cls = load_config(str(REPO / "configs" / "cls_scanobjectnn.py"))
    cls.update(dict(ckpt=str(path), cache_root=str(reference_dir / "scan_cache"),
                    out_json=str(tmp_path / "cls.json"), epochs=1))
    with pytest.raises(CheckpointError, match="weights-only"):
        run_job(cls)
    assert not marker.exists() and not (tmp_path / "cls.json").exists()

    bundle = load_config(str(REPO / "configs" / "eval_bundle.py"))
    bundle.ckpt, bundle.results_root = str(path), str(tmp_path / "results")
    bundle.scan.cache_root = str(reference_dir / "scan_cache")
    bundle.cpac.cache_root = str(reference_dir / "unpaired")
    bundle.cpac.check_caches = False
    bundle.modelnet.cache_root = str(tmp_path / "no_modelnet")
    with pytest.raises(RuntimeError, match=r"\['scan', 'cpac'\] failed") as info:
        run_job(bundle)
    assert not marker.exists()
    record = json.loads(pathlib.Path(str(info.value).rsplit("see ", 1)[1]).read_text())
    for step in ("scan", "cpac"):
        assert record["steps"][step]["status"] == "failed"
        assert record["steps"][step]["error"].startswith("CheckpointError")
        assert "weights-only" in record["steps"][step]["error"]
