"""The closing summary a job prints (`eval.console`): short, with the table, the verdict, the
pictures and where the full result is; the full result stays in its file."""

import os

import ml_collections

from nepa3d_jax.eval import console


def _demo_like_result(tmp_path, steps=300, warnings=()):
    """A pretraining result shaped like the demo's (numbers of docs/evaluation.md)."""
    block = lambda m, lo, hi: {"mae": {"mean": m, "ci_low": lo, "ci_high": hi,
                                       "ci": "95% percentile bootstrap over 14 shapes (2000 draws)",
                                       "per_seed": [m, m]}}
    curve = tmp_path / "loss_curve.png"
    sheet = tmp_path / "cpac_sheet.png"
    curve.write_bytes(b"png")
    sheet.write_bytes(b"png")
    cpac = {"mae": 0.1427, "seeds": [0, 1], "render_png": str(sheet),
            "summary": {"pretrained": block(0.1427, 0.1256, 0.1644),
                        "random_init": block(0.1478, 0.1277, 0.1709),
                        "nn_copy": block(0.0884, 0.0845, 0.0924)},
            "significance": {"pretrained_vs_random_init": {"p": 0.296},
                             "pretrained_vs_nn_copy": {"p": 0.0001}}}
    return {"workdir": str(tmp_path), "step": steps, "total_steps": steps,
            "final_loss": 5.8e-4, "loss_curve": str(curve), "resumed_from": None,
            "warnings": list(warnings), "eval": {"cpac_udf": cpac},
            "losses": [[i, 0.1] for i in range(300)]}


def test_demo_summary_is_short_and_states_the_verdict(tmp_path):
    config = ml_collections.ConfigDict(dict(job="pretrain"))
    text = console.text(config, _demo_like_result(tmp_path, warnings=["w1", "w2", "w3", "w4"]))
    lines = text.splitlines()
    assert len(lines) <= 25
    assert lines[0] == f"{tmp_path}: step 300 of 300, final loss 0.00058"
    assert lines[1].startswith("CPAC mae (lower is better; seeds 0,1; 95% percentile "
                               "bootstrap over 14 shapes")
    assert lines[3].split() == ["pretrained", "0.1427", "[0.1256,", "0.1644]"]
    assert lines[4].split() == ["random-init", "0.1478", "[0.1277,", "0.1709]", "0.30"]
    assert lines[5].split() == ["nn_copy", "0.0884", "[0.0845,", "0.0924]", "0.0001"]
    assert lines[6:9] == [  # wrapped at 100 columns
        "verdict: CPAC mae: pretrained 0.1427 vs random-init 0.1478: no significant difference "
        "from",
        "  random-init (p=0.30); nn_copy is best (p=0.0001); after only 300 pretraining steps "
        "this reading",
        "  can change with training length"]
    assert lines[9:13] == ["warning: w1", "warning: w2", "warning: w3",
                           "(1 more warnings in the result file)"]
    assert lines[13] == (f"pictures: {tmp_path / 'loss_curve.png'}, "
                         f"{tmp_path / 'cpac_sheet.png'}")
    assert lines[14] == f"full results: {tmp_path / 'results.json'}"
    assert max(map(len, lines[1:13])) <= 100
    assert "losses" not in text


def test_bundle_and_evaluator_summaries(tmp_path):
    bundle = {"run_tag": "runA", "ckpt": "runs/runA", "results_dir": "results/runA", "steps": {
        "scan": {"status": "ok", "verdict": "classification test_acc: ..."},
        "modelnet": {"status": "skipped", "reason": "ModelNet40 cache not found: x"}}}
    text = console.text(ml_collections.ConfigDict(dict(job="eval_bundle")), bundle)
    assert text.splitlines() == [
        "eval bundle runA (runs/runA):", "  scan: ok",
        "    verdict: classification test_acc: ...",
        "  modelnet: skipped (ModelNet40 cache not found: x)",
        f"full results: {os.path.join('results/runA', 'bundle.json')}"]
    plain = console.text(ml_collections.ConfigDict(dict(job="cpac_udf", out_json="r.json")),
                         {"mae": 0.1, "rmse": 0.2})
    assert plain.splitlines() == ["cpac_udf: mae 0.1000, rmse 0.2000", "full result: r.json"]
