"""Classification fine-tuning end to end (tiny model, few steps): the reference
ScanObjectNN-format cache, a synthetic cache made here, the reference tiny_qa checkpoint,
and clear errors on bad input."""

import json
import os

import numpy as np
import pytest

from configs import cls_scanobjectnn
from nepa3d_jax.data.schema import CacheError
from nepa3d_jax.eval.cls import study as finetune_cls

RESULT_KEYS = {"best_val", "best_ep", "test_acc", "history", "settings", "num_train",
               "num_val", "num_test", "test_pred", "seconds_total"}


def tiny_config(cache_root, out_json, **kw):
    c = cls_scanobjectnn.get_config()
    c.cache_root = str(cache_root)
    c.out_json = str(out_json)
    c.progress = False
    c.n_point = 32
    c.batch = 8
    c.epochs = 2
    c.lr = 1e-3
    c.mc_eval_k_test = 3
    c.random_init_baseline = 0  # the baseline doubles the run; tested on its own below
    c.scratch.d_model = 32
    c.scratch.layers = 1
    c.scratch.heads = 2
    for k, v in kw.items():
        if "." in k:
            a, b = k.split(".")
            c[a][b] = v
        else:
            c[k] = v
    return c


def _shape(rng, cls_id, n=128):
    """Class 0: sphere; 1: flat disc; 2: vertical line-ish cylinder (distinct, learnable)."""
    u = rng.randn(n, 3)
    if cls_id == 0:
        xyz = 0.5 * u / np.linalg.norm(u, axis=1, keepdims=True)
    elif cls_id == 1:
        xyz = np.c_[0.6 * rng.rand(n, 2) - 0.3, 0.01 * rng.randn(n)]
    else:
        xyz = np.c_[0.05 * rng.randn(n, 2), rng.rand(n) - 0.5]
    return xyz.astype(np.float32)


def make_synthetic_cache(root, per_class=(6, 2), n_classes=3, seed=0):
    """`<root>/{train,test}/class_k/*.npz` with the keys the pointcloud backends read."""
    rng = np.random.RandomState(seed)
    for split, count in zip(("train", "test"), per_class):
        for k in range(n_classes):
            d = root / split / f"class_{k}"
            d.mkdir(parents=True)
            for i in range(count):
                pc = _shape(rng, k)
                pool = _shape(rng, k, 96) + 0.02 * rng.randn(96, 3).astype(np.float32)
                ray_d = rng.randn(16, 3).astype(np.float32)
                ray_d /= np.linalg.norm(ray_d, axis=1, keepdims=True)
                np.savez(d / f"{split}_{k}_{i}.npz", pc_xyz=pc, pc_n=np.zeros_like(pc),
                         pt_xyz_pool=pool, pt_dist_pool=rng.rand(96).astype(np.float32),
                         ray_o_pool=(-ray_d).astype(np.float32), ray_d_pool=ray_d,
                         ray_hit_pool=np.ones(16, np.float32),
                         ray_t_pool=rng.rand(16).astype(np.float32),
                         ray_n_pool=ray_d)
    return root


def test_reference_scan_cache_end_to_end(reference_dir, tmp_path):
    """One run (compiles are the cost) checked for results, JSON and the protocol log."""
    out = tmp_path / "cls_scanobjectnn.json"
    result = finetune_cls.run(tiny_config(reference_dir / "scan_cache", out))
    assert RESULT_KEYS <= set(result)
    on_disk = json.loads(out.read_text())
    assert on_disk["test_acc"] == result["test_acc"]
    # 10 train shapes, 2 per class: the 10% split keeps one per class for validation.
    assert (result["num_train"], result["num_val"], result["num_test"]) == (5, 5, 5)
    assert 0.0 <= result["test_acc"] <= 1.0 and 0.0 <= result["best_val"] <= 1.0
    assert result["test_acc"] * 5 == pytest.approx(round(result["test_acc"] * 5))
    losses = [h["train_loss"] for h in result["history"]]
    assert len(losses) == 2 and all(np.isfinite(losses))
    r = result["settings"]["resolved"]
    assert r["xyz_only"] and r["cls_pooling"] == "mean_pts" and r["mc_eval_k_test"] == 3
    assert r["seq_len"] == 1 + 32 + 1  # scratch: legacy tokens + EOS

    # The log states the protocol first (the plan's audit read these lines).
    lines = out.with_suffix(".log").read_text().splitlines()
    head = "\n".join(lines[:8])
    assert all(line.startswith("[protocol]") for line in lines[:8])
    for fact in ("train_backend=pointcloud_noray", "eval_backend=pointcloud_noray",
                 "readout=xyz-only", "cls_pooling=mean_pts->mean_pts", "bidirectional attention",
                 "n_point=32", "n_ray=0", "val_ratio=0.1", "fewshot_k=0", "mc_eval_k_test=3",
                 "aug_preset=scanobjectnn", "pt_xyz_key=pc_xyz", "ablate_point_dist=True"):
        assert fact in head, fact
    assert any(line.startswith("[audit] eval tokenization is deterministic") for line in lines)
    assert lines[-1].startswith("best_val=") and "test_acc=" in lines[-1]


def test_synthetic_cache_learns_with_fewshot(tmp_path):
    # The loss check shows only the head's first steps: at this budget (6 steps) training
    # accuracy is still 1/2 (loss ~ln 2); fitting starts after ~60 steps (docs/evaluation.md).
    root = make_synthetic_cache(tmp_path / "cache")
    cfg = tiny_config(root, tmp_path / "out" / "r.json", epochs=6, fewshot_n_way=2,
                      fewshot_k=4, fewshot_seed=1, aug_preset="modelnet40", mc_eval_k_test=2)
    result = finetune_cls.run(cfg)
    picked = result["settings"]["resolved"]["picked_classes"]
    want = sorted(["class_0", "class_1", "class_2"][i]
                  for i in np.random.RandomState(1).choice(3, 2, replace=False))
    assert picked == want
    # 6 per class -> 1 val each -> 5 train each -> K=4 per class; test keeps 2 picked classes.
    assert (result["num_train"], result["num_val"], result["num_test"]) == (8, 2, 4)
    losses = [h["train_loss"] for h in result["history"]]
    assert losses[-1] < losses[0], losses
    assert len(result["test_pred"]) == 4 and set(result["test_pred"]) <= {0, 1}


def test_readout_fixes_head_norm_mean_max_and_cosine_schedule(tmp_path):
    """The opt-in readout fields in one run: fc_norm is in the (trained, saved) parameter tree,
    the [mean, max] head is 2 x d_model wide, the log states the schedule."""
    root = make_synthetic_cache(tmp_path / "cache")
    out = tmp_path / "r.json"
    cfg = tiny_config(root, out, epochs=3, head_norm=1, cls_pooling="mean_max",
                      lr_schedule="cosine", lr_warmup_epochs=1, mc_eval_k_test=1,
                      save_dir=str(tmp_path / "best"), val_ratio=0.0)
    result = finetune_cls.run(cfg)
    assert result["settings"]["resolved"]["head_norm"] is True
    saved = np.load(tmp_path / "best" / "best_params.npz")
    assert saved["['head']['kernel']"].shape == (2 * 32, 3)
    scale, bias = saved["['fc_norm']['scale']"], saved["['fc_norm']['bias']"]
    assert scale.shape == bias.shape == (64,)
    assert np.abs(scale - 1).max() > 0 and np.abs(bias).max() > 0  # trained, not left at init
    head = "\n".join(out.with_suffix(".log").read_text().splitlines()[:8])
    assert "cls_pooling=mean_max->mean_max head_norm=1" in head
    assert "(linear warmup 1 epochs, cosine decay to 0)" in head
    assert all(np.isfinite(h["train_loss"]) for h in result["history"])


def test_bad_inputs_fail_before_training(tmp_path, reference_dir):
    root = make_synthetic_cache(tmp_path / "cache", per_class=(2, 1), n_classes=2)
    (tmp_path / "empty" / "train" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "test").mkdir(parents=True)
    with pytest.raises(ValueError, match="empty split"):
        finetune_cls.run(tiny_config(tmp_path / "empty", tmp_path / "x.json"))
    with pytest.raises(ValueError, match="cls_pooling"):
        finetune_cls.run(tiny_config(root, tmp_path / "x.json", cls_pooling="max"))
    with pytest.raises(ValueError, match="backend"):
        finetune_cls.run(tiny_config(root, tmp_path / "x.json", backend="lidar"))
    for kw in (dict(lr_schedule="step"), dict(lr_warmup_epochs=2, lr_schedule="cosine"),
               dict(lr_warmup_epochs=-1), dict(lr_warmup_epochs=1), dict(head_norm=2)):
        with pytest.raises(ValueError, match=f"config.{next(iter(kw))}="):  # epochs=2 here
            finetune_cls.run(tiny_config(root, tmp_path / "x.json", **kw))
    bad = root / "train" / "class_0" / "train_0_0.npz"
    z = dict(np.load(bad))
    del z["pc_xyz"]
    np.savez(bad, **z)
    with pytest.raises(CacheError, match=r"train_0_0\.npz \[pc_xyz\]"):
        finetune_cls.run(tiny_config(root, tmp_path / "x.json", val_ratio=0.0))
    assert not (tmp_path / "x.json").exists()


def test_reference_checkpoint_full_spec_readout(reference_dir, tmp_path):
    """The original's tiny_qa last.pt: Q/A tokens from the checkpoint, n_point capped at the
    pretrain 32, full-spec readout keeps the pool distances and 32 rays (missing here)."""
    ckpt = reference_dir / "ckpt" / "tiny_qa" / "last.pt"
    cfg = tiny_config(reference_dir / "scan_cache", tmp_path / "r.json", ckpt=str(ckpt),
                      n_point=64, full_spec_readout=True, epochs=1, cls_pooling="auto",
                      mc_eval_k_test=1)
    result = finetune_cls.run(cfg)
    r = result["settings"]["resolved"]
    assert (r["n_point"], r["n_ray"], r["qa_tokens"], r["add_eos"]) == (32, 32, 1, 1)
    assert r["seq_len"] == 130 and r["max_len"] == 130 and r["d_model"] == 64
    assert r["cls_pooling"] == "mean_a" and not r["xyz_only"]
    assert np.isfinite(result["history"][0]["train_loss"])
    log = (tmp_path / "r.log").read_text()
    assert "readout=full-spec" in log and "capping" in log


def test_seeds_random_init_baseline_and_tensorboard(reference_dir, tmp_path):
    """Two seeds of the tiny reference checkpoint and of its random re-initialisation: per-seed
    numbers, t intervals, the paired t-test, per-epoch TensorBoard scalars and hparams."""
    ckpt = reference_dir / "ckpt" / "tiny_qa" / "last.pt"
    out = tmp_path / "r.json"
    cfg = tiny_config(reference_dir / "scan_cache", out, ckpt=str(ckpt), epochs=2,
                      mc_eval_k_test=1, seeds="0,1", random_init_baseline=1,
                      max_steps_per_epoch=1)
    result = finetune_cls.run(cfg)
    assert result["seeds"] == [0, 1] and [r["seed"] for r in result["per_seed"]] == [0, 1]
    acc = result["summary"]["pretrained"]["test_acc"]
    assert acc["per_seed"] == [r["test_acc"] for r in result["per_seed"]]
    assert result["test_acc"] == pytest.approx(np.mean(acc["per_seed"]))
    assert acc["n"] == 2 and (acc["ci_low"] is None) == (acc["std"] is None)
    if acc["std"]:
        assert acc["ci_low"] < acc["mean"] < acc["ci_high"]
    rnd = result["baselines"]["random_init"]
    assert len(rnd["per_seed"]) == 2 and 0.0 <= rnd["test_acc"] <= 1.0
    sig = result["significance"]["pretrained_vs_random_init"]
    assert sig["test"].startswith("paired t") and sig["n"] == 2
    saved = json.loads(out.read_text())
    assert saved["baselines"]["random_init"]["test_acc"] == rnd["test_acc"]
    assert (tmp_path / "r.seed1.json").is_file() and (tmp_path / "r.random_init.seed0.json").is_file()
    assert "re-initialised" in (tmp_path / "r.random_init.seed0.log").read_text()
    scalars = _tb_scalars(tmp_path / "r.seed0_tb")
    assert [step for step, _ in scalars["finetune/val_acc"]] == [0, 1]
    assert [v for _, v in scalars["finetune/val_acc"]] == [
        pytest.approx(h["val_acc"]) for h in json.loads(
            (tmp_path / "r.seed0.json").read_text())["history"]]
    assert len(scalars["finetune/train_loss"]) == 2
    hparams = list((tmp_path / "r.seed0_tb").rglob("events.out.tfevents.*"))
    assert len(hparams) >= 2  # add_hparams writes its own run folder


def _tb_scalars(folder):
    """{tag: [(step, value)]} from the TFRecord event files directly under `folder`."""
    import struct

    from tensorboardX.proto import event_pb2

    out = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (n,) = struct.unpack("<Q", data[pos:pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + n])
            pos += 12 + n + 4
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, v.simple_value))
    return out
