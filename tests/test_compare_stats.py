"""`compare` with intervals and significance: a constructed pair of runs with one real
difference (CPAC MAE) and one null (classification accuracy), and pretraining-seed groups."""

import json

import numpy as np
import pytest

from nepa3d_jax.eval import compare


def _run(root, tag, abs_err, acc_per_seed, ckpt=None, seed_shift=0):
    """A results folder with a CPAC result + side file and a 3-seed classification result."""
    d = root / tag
    d.mkdir(parents=True)
    paths = [f"data/eval/c/s{i}.npz" for i in range(abs_err.shape[1])]
    n = abs_err.shape[1]
    side = {"paths": paths, "seeds": [0, 1], "stats": {"pretrained": {
        "abs_err": abs_err.tolist(), "sq_err": (abs_err ** 2).tolist(),
        "inter": np.full_like(abs_err, 3).tolist(), "union": np.full_like(abs_err, 5).tolist()}}}
    (d / "cpac_udf.per_shape.json").write_text(json.dumps(side))
    mae = float(abs_err.mean())
    (d / "cpac_udf.json").write_text(json.dumps({
        "mae": mae, "rmse": 0.2, "iou@tau": 0.6, "per_shape_json": str(d / "cpac_udf.per_shape.json"),
        "summary": {"pretrained": {"mae": {"mean": mae, "ci_low": mae - 0.01,
                                           "ci_high": mae + 0.01}}}}))
    acc = float(np.mean(acc_per_seed))
    (d / "cls_scanobjectnn.json").write_text(json.dumps({
        "best_val": acc, "test_acc": acc, "settings": {"resolved": {"xyz_only": True}},
        "per_seed": [{"seed": s, "test_acc": a, "best_val": a} for s, a in enumerate(acc_per_seed)],
        "summary": {"pretrained": {"test_acc": {"ci_low": acc - 0.02, "ci_high": acc + 0.02}}}}))
    (d / "bundle.json").write_text(json.dumps({"run_tag": tag, "ckpt": str(ckpt or "")}))
    return d


def test_one_real_difference_and_one_null_are_marked_correctly(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.exponential(0.1, (2, 60))
    better = base - 0.02 + rng.normal(0, 0.002, base.shape)   # every shape improves
    acc_a = [0.70, 0.74, 0.72]
    acc_b = [0.72, 0.73, 0.71]                                  # same mean, mixed signs
    a = _run(tmp_path, "runA", base, acc_a)
    b = _run(tmp_path, "runB", better, acc_b)
    table = compare.compare([str(a), str(b)], out=str(tmp_path / "cmp"))
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()
            if line.startswith("| run")}
    headers = rows["run"].strip("| ").split(" | ")
    cells = rows["runB"].strip("| ").split(" | ")
    mae_cell = cells[headers.index("CPAC MAE")]
    acc_cell = cells[headers.index("ScanObjectNN test_acc")]
    assert mae_cell.endswith(" *") and "[" in mae_cell          # real difference
    assert not acc_cell.endswith("*") and "[" in acc_cell       # the null
    assert "Wilcoxon signed-rank" in table and "paired t-test" in table
    assert "runB CPAC MAE" in table and "n=60" in table
    png = (tmp_path / "cmp.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_pretraining_seeds_group_by_config_and_groups_use_welch(tmp_path):
    rng = np.random.default_rng(1)
    dirs = []
    for run, offset in (("A", 0.0), ("B", 0.05)):
        for seed in range(3):
            ckpt = tmp_path / "runs" / f"run{run}_seed{seed}"
            ckpt.mkdir(parents=True)
            (ckpt / "config.json").write_text(json.dumps({
                "seed": seed, "workdir": str(ckpt), "data": {"mix_seed": seed, "n_point": 64},
                "model": {"d_model": 64 if run == "A" else 96}}))
            err = rng.exponential(0.1, (1, 20)) + offset
            dirs.append(str(_run(tmp_path / "res", f"run{run}_seed{seed}", err,
                                 [0.7, 0.7, 0.7], ckpt=ckpt)))
    table = compare.compare(dirs, out=str(tmp_path / "g"))
    body = [line for line in table.splitlines()
            if line.startswith("| run") and not line.startswith("| run |")]
    assert len(body) == 2
    assert body[0].startswith("| runA_seed0 (+2 seeds) |")
    assert "Welch t-test over pretraining seeds" in table
    ungrouped = compare.compare(dirs, out=str(tmp_path / "u"), group=False)
    assert len([l for l in ungrouped.splitlines() if l.startswith("| run_")
                or l.startswith("| runA_") or l.startswith("| runB_")]) == 6


def test_study_arms_group_by_recipe_with_probe_columns(tmp_path):
    """A study's arm folders: the seeds of one recipe are one row named by the recipe even when
    a field that does not change the model differs (seed 0 checks every cache, the others only
    headers), and the probe's numbers are columns with the random init beside them."""
    from nepa3d_jax.eval.probe.run import with_metrics

    dirs = []
    for recipe, acc in (("original", [0.40, 0.41, 0.39]), ("better", [0.50, 0.52, 0.51])):
        for seed in range(3):
            ckpt = tmp_path / "runs" / recipe / f"seed{seed}" / "run"
            ckpt.mkdir(parents=True)
            (ckpt / "config.json").write_text(json.dumps({
                "seed": seed, "workdir": str(ckpt),
                "data": {"mix_seed": seed, "validate": "full" if seed == 0 else "header"},
                "model": {"final_norm": recipe == "better"}}))
            d = ckpt.parent
            summary = {arm: {f"K{k}": {"logreg": a + k / 100, "knn1": a - 0.1}
                             for k in (1, 5, 10)}
                       for arm, a in (("pretrained", acc[seed]), ("random_init", 0.3))}
            (d / "probe.json").write_text(json.dumps(with_metrics({"summary": summary})))
            (d / "bundle.json").write_text(json.dumps({"run_tag": recipe, "ckpt": str(ckpt)}))
            dirs.append(str(d))
    table = compare.compare(dirs, out=str(tmp_path / "cmp"), stems=("probe",))
    lines = table.splitlines()
    headers = lines[0].strip("| ").split(" | ")
    assert headers[2:] == ["probe logreg K=5", "probe logreg K=10", "probe 1-NN K=10"]
    body = [line.strip("| ").split(" | ") for line in lines[2:4]]
    assert [row[0] for row in body] == ["original (3 seeds)", "better (3 seeds)"]
    assert body[0][headers.index("probe logreg K=5")].startswith("0.4500 [")
    assert body[1][headers.index("probe logreg K=10")].endswith(" *")   # +0.11, tight seeds
    assert "better (3 seeds) probe logreg K=5: Welch t-test over pretraining seeds" in table
    assert "original (3 seeds): random-init probe logreg K=5 0.3500" in table
