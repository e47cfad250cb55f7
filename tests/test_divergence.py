"""Issue 14.3: a diverging run stops non-zero naming the step, never saves a non-finite state,
keeps its last finite checkpoint; evaluators refuse NaN parameters; JSON never holds NaN."""

import json
import pathlib

import jax
import numpy as np
import pytest

from nepa3d_jax import atomic_io
from helpers import run_main, tiny_pretrain_args

REPO = pathlib.Path(__file__).resolve().parents[1]


def strict_json(text: str):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def test_json_writer_refuses_nan_and_names_undefined_metrics(tmp_path):
    path = tmp_path / "r.json"
    atomic_io.write_json_atomic(path, {"mae": float("nan"), "iou": [0.5, float("inf")],
                                "n": np.int64(3), "x": np.float32(0.25)})
    out = strict_json(path.read_text())
    assert out["mae"] is None and out["iou"] == [0.5, None] and out["n"] == 3
    assert out["undefined"] == {"mae": "non-finite value (nan)",
                                "iou[1]": "non-finite value (inf)"}
    assert oct(path.stat().st_mode & 0o777) == oct(atomic_io.shared_mode())
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temp file left
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        atomic_io.write_json_atomic(tmp_path, {})


def test_huge_lr_stops_with_the_step_and_keeps_the_finite_checkpoint(reference_dir, tmp_path):
    workdir = tmp_path / "run"
    out = run_main(tiny_pretrain_args(reference_dir, workdir, num_steps=8, base_lr=1e30,
                                      log_every_steps=100, checkpoint_every_steps=1,
                                      keep_checkpoints=3))
    assert out.returncode == 3, out.stderr[-3000:]
    assert "training diverged" in out.stderr and "at step 2" in out.stderr
    assert "last finite checkpoint is step 1" in out.stderr
    steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [1]  # step 2 (non-finite) was never written
    from nepa3d_jax.checkpoint.run_dir import load_params
    _, params = load_params(workdir)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params))
    results = strict_json((workdir / "results.json").read_text())
    assert results["status"] == "diverged" and results["diverged_at_step"] == 2
    assert results["last_finite_checkpoint"] == 1


def test_evaluators_refuse_non_finite_parameters(reference_dir, tmp_path):
    from nepa3d_jax.checkpoint import load_pretrained
    from nepa3d_jax.checkpoint.run_dir import save_params_only
    from nepa3d_jax.checkpoint.torch_import import import_torch_checkpoint
    from nepa3d_jax.checkpoint.torch_file import CheckpointError
    from nepa3d_jax.config import load_config
    from nepa3d_jax.main import run_job

    pytest.importorskip("torch")
    config, params, _ = import_torch_checkpoint(reference_dir / "ckpt" / "tiny_qa" / "last.pt")
    params = jax.tree.map(np.asarray, params)
    params["pred_head"]["bias"] = params["pred_head"]["bias"].copy()
    params["pred_head"]["bias"][0] = np.nan
    bad = save_params_only(tmp_path / "nan_run", params, config)
    with pytest.raises(CheckpointError, match=r"pred_head.*bias.*1 non-finite"):
        load_pretrained(bad)
    cpac = load_config(str(REPO / "configs" / "cpac_udf.py"))
    cpac.update(dict(ckpt=bad, cache_root=str(reference_dir / "unpaired"), check_caches=False,
                     out_json=str(tmp_path / "cpac.json"), max_shapes=2))
    with pytest.raises(CheckpointError, match="non-finite"):
        run_job(cpac)
    assert not (tmp_path / "cpac.json").exists()
