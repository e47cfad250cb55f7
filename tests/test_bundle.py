"""Eval bundle orchestration (fake step runners: no training here) and the comparison
table / chart across result directories."""

import json
import os
import pathlib
import struct
import subprocess
import sys

import pytest

from nepa3d_jax import jobs
from nepa3d_jax.eval import bundle
from nepa3d_jax.eval import compare

REPO = pathlib.Path(__file__).resolve().parents[1]


def _bundle_config(tmp_path, ckpt, modelnet_root):
    return jobs.with_defaults(jobs.default_config("eval_bundle"), dict(
        ckpt=str(ckpt), results_root=str(tmp_path / "results"),
        scan=dict(cache_root="scan"), modelnet=dict(cache_root=str(modelnet_root)),
        cpac=dict(cache_root="unpaired")))


def _fake_runners(calls):
    def make(name, result):
        def runner(cfg):
            calls.append((name, cfg.ckpt, cfg.out_json))
            with open(cfg.out_json, "w") as f:
                json.dump(result, f)
            return result
        return runner
    return dict(scan=make("scan", dict(best_val=0.5, test_acc=0.4)),
                modelnet=make("modelnet", dict(best_val=0.8, test_acc=0.7)),
                cpac=make("cpac", {"mae": 0.16, "rmse": 0.2, "iou@tau": 0.27}))


def test_bundle_skips_modelnet_with_logged_reason(tmp_path):
    ckpt = tmp_path / "runs" / "pretrain_runA" / "last.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    calls = []
    cfg = _bundle_config(tmp_path, ckpt, tmp_path / "no_modelnet_cache")
    summary = bundle.run(cfg, runners=_fake_runners(calls))
    out = tmp_path / "results" / "pretrain_runA"  # run tag from the .pt's run directory
    assert [c[0] for c in calls] == ["scan", "cpac"]
    assert all(c[1] == str(ckpt) for c in calls)
    assert calls[0][2] == str(out / "cls_scanobjectnn.json")
    steps = json.loads((out / "bundle.json").read_text())["steps"]
    assert steps["modelnet"]["status"] == "skipped"
    assert "ModelNet40 cache not found" in steps["modelnet"]["reason"]
    assert steps["scan"]["summary"] == {"best_val": 0.5, "test_acc": 0.4}
    assert steps["cpac"]["summary"]["iou@tau"] == 0.27
    log = (out / "bundle.log").read_text()
    assert "[skip] modelnet: ModelNet40 cache not found" in log
    assert summary["run_tag"] == "pretrain_runA"


def test_bundle_runs_modelnet_when_present_and_reports_failures(tmp_path):
    ckpt = tmp_path / "runB"
    ckpt.mkdir()
    (tmp_path / "mn").mkdir()
    calls = []
    runners = _fake_runners(calls)

    def broken(cfg):
        raise ValueError("boom")
    runners["cpac"] = broken
    cfg = _bundle_config(tmp_path, ckpt, tmp_path / "mn")
    with pytest.raises(RuntimeError, match=r"\['cpac'\] failed"):
        bundle.run(cfg, runners=runners)
    steps = json.loads((tmp_path / "results" / "runB" / "bundle.json").read_text())["steps"]
    assert [c[0] for c in calls] == ["scan", "modelnet"]
    assert steps["cpac"]["status"] == "failed" and "boom" in steps["cpac"]["error"]
    assert steps["modelnet"]["status"] == "ok"
    with pytest.raises(ValueError, match="config.ckpt"):
        bundle.run(_bundle_config(tmp_path, tmp_path / "missing", tmp_path), runners=runners)


def _fake_results(root, tag, scan, cpac, xyz_only=True):
    d = root / tag
    d.mkdir(parents=True)
    (d / "cls_scanobjectnn.json").write_text(json.dumps(dict(
        best_val=scan[0], test_acc=scan[1], settings=dict(resolved=dict(xyz_only=xyz_only)))))
    (d / "cpac_udf.json").write_text(json.dumps(dict(zip(("mae", "rmse", "iou@tau"), cpac))))
    (d / "bundle.json").write_text(json.dumps(dict(run_tag=tag, steps={
        "modelnet": dict(status="skipped", reason="absent")})))
    return d


def test_compare_table_and_chart(tmp_path):
    a = _fake_results(tmp_path, "runA", (0.3492, 0.3157), (0.1604, 0.2056, 0.2684))
    b = _fake_results(tmp_path, "runB", (0.2439, 0.2230), (0.1621, 0.2081, 0.2665), False)
    table = compare.compare([str(a), str(b)], out=str(tmp_path / "cmp"))
    lines = table.strip().splitlines()
    assert lines[0].startswith("| run | cls readout | ScanObjectNN test_acc")
    assert lines[2] == ("| runA | xyz-only | **0.3157** | **0.3492** | - | **0.1604** | "
                        "**0.2056** | **0.2684** |")
    assert lines[3] == "| runB | full-spec | 0.2230 | 0.2439 | - | 0.1621 | 0.2081 | 0.2665 |"
    assert (tmp_path / "cmp.md").read_text() == table
    png = (tmp_path / "cmp.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_compare_cli_and_bad_dir(tmp_path):
    a = _fake_results(tmp_path, "runA", (0.5, 0.4), (0.1, 0.2, 0.3))
    proc = subprocess.run([sys.executable, "-m", "nepa3d_jax.eval.compare", str(a)], cwd=REPO,
                          capture_output=True, text=True, check=True,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert "| runA | xyz-only | 0.4000 | 0.5000 | - | 0.1000 | 0.2000 | 0.3000 |" in proc.stdout
    assert (tmp_path / "compare.png").exists()
    with pytest.raises(ValueError, match="not found"):
        compare.compare([str(tmp_path / "nope")])


def _cpac_result(folder, mae, rnd, nn):
    block = lambda m: {"mae": {"mean": m, "ci_low": m - 0.01, "ci_high": m + 0.01}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cpac_udf.json").write_text(json.dumps({
        "mae": mae, "rmse": 0.2, "iou@tau": 0.3,
        "summary": {"pretrained": block(mae), "random_init": block(rnd), "nn_copy": block(nn)},
        "baselines": {"random_init": {"mae": rnd}, "nn_copy": {"mae": nn}}}))


def test_compare_cli_labels_rows_warns_and_says_where_it_wrote(tmp_path):
    run = tmp_path / "runs" / "demo"  # a run folder: train.eval_after wrote cpac_udf.json here
    _cpac_result(run, 0.1427, 0.1478, 0.0884)
    (run / "config.json").write_text(json.dumps({
        "seed": 0, "config_source": {"path": "configs/demo.py", "overrides": []}}))
    bundled = tmp_path / "results" / "demo"  # an eval bundle of the same run
    _cpac_result(bundled, 0.1430, 0.1470, 0.0880)
    (bundled / "bundle.json").write_text(json.dumps({"run_tag": "demo", "ckpt": "runs/demo"}))
    other = tmp_path / "other" / "demo"
    other.mkdir(parents=True)
    (other / "cpac.json").write_text("{}")  # a result under a name compare does not read
    (other / "cls_scanobjectnn.json").write_text("{not json")
    proc = subprocess.run([sys.executable, "-m", "nepa3d_jax.eval.compare", "results/demo",
                           "runs/demo", "other/demo"], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr
    rows = [line.split(" | ")[0] for line in proc.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| run |")]
    assert rows == ["| results/demo (demo.py)", "| runs/demo (demo.py)"]
    assert "other/demo/cls_scanobjectnn.json cannot be read" in proc.stderr
    assert ("other/demo: no readable cls_scanobjectnn.json, cls_modelnet40.json, "
            "cpac_udf.json, probe.json (it holds cls_scanobjectnn.json, cpac.json); skipped") in proc.stderr
    assert "- runs/demo (demo.py): random-init CPAC MAE 0.1478 [0.1378, 0.1578]; nn_copy " \
        "CPAC MAE 0.0884 [0.0784, 0.0984]" in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-1] == (
        f"wrote {os.path.join('results', 'compare')}.md and "
        f"{os.path.join('results', 'compare')}.png")
    png = (tmp_path / "results" / "compare.png").read_bytes()
    width, height = struct.unpack(">II", png[16:24])
    # only the three CPAC panels (no empty ScanObjectNN / ModelNet40 ones): one row of three
    assert (width, height) == (3 * 4 * 120, round((3.6 + 0.6) * 120))
    nothing = subprocess.run([sys.executable, "-m", "nepa3d_jax.eval.compare", "other/demo"],
                             cwd=tmp_path, capture_output=True, text=True)
    assert nothing.returncode == 2
    assert nothing.stderr.strip().splitlines()[-1] == (
        "error: no folder holds a result compare can read: other/demo")


def test_chart_panels_are_the_columns_with_values():
    from nepa3d_jax.eval import compare_chart
    cols = compare.columns()
    row = dict(values={c.header: None for c in cols}, baselines={})
    assert compare_chart.panels([row], cols) == []
    row["values"]["CPAC MAE"] = 0.1
    row["baselines"]["ScanObjectNN test_acc"] = {"random_init": (0.5, None)}
    assert [c.header for c in compare_chart.panels([row], cols)] == [
        "ScanObjectNN test_acc", "CPAC MAE"]


def test_eval_bundle_config_loads():
    from nepa3d_jax.config import load_config
    c = load_config(str(REPO / "configs" / "eval_bundle.py"),
                    ["ckpt=runs/x", "scan.epochs=3", "modelnet.cache_root=none"])
    assert c.job == "eval_bundle" and c.scan.job == "finetune_cls" and c.scan.epochs == 3
    assert c.modelnet.aug_preset == "modelnet40" and c.scan.aug_preset == "scanobjectnn"
    assert c.scan.cls_pooling == "mean_pts" and c.scan.n_ray == 0 and c.scan.mc_eval_k_test == 10


def test_bundle_seeds_reach_every_step_and_the_summary_shows_random_init(tmp_path):
    ckpt = tmp_path / "runs" / "r"
    ckpt.mkdir(parents=True)
    seen = {}

    def make(name, result):
        def runner(cfg):
            seen[name] = cfg.seeds
            return result
        return runner
    cfg = _bundle_config(tmp_path, ckpt, tmp_path / "absent")
    cfg.seeds = "0,1,2"
    runners = dict(scan=make("scan", dict(best_val=0.5, test_acc=0.4, baselines={
        "random_init": {"test_acc": 0.3}})), modelnet=make("modelnet", {}),
        cpac=make("cpac", {"mae": 0.16, "baselines": {"random_init": {"mae": 0.2}}}))
    summary = bundle.run(cfg, runners=runners)
    assert seen == {"scan": "0,1,2", "cpac": "0,1,2"}  # modelnet: no cache, skipped
    assert summary["steps"]["scan"]["summary"]["random_init_test_acc"] == 0.3
    assert summary["steps"]["cpac"]["summary"]["random_init_mae"] == 0.2
