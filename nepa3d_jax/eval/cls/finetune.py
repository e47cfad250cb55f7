"""Classification fine-tuning of a pretrained QueryNepa (ScanObjectNN / ModelNet40): one seed.

The job entry is `eval/cls/study.py` (seeds, random-init baseline), which calls `run_single`
once per seed and backbone:
`python -m nepa3d_jax.main --config configs/cls_scanobjectnn.py --config.ckpt=RUN_OR_PT`

Protocol (the original's `nepa3d.train.finetune_cls`): files of `<cache_root>/train` split
into train / validation (stratified, seeded), optional N-way / K-shot selection; AdamW at a
constant learning rate (opt-in: warmup and cosine decay, `lr_schedule`), cross-entropy;
validation accuracy after every epoch; the best-validation parameters are scored on
`<cache_root>/test` with MC test-time resampling (logits averaged over k deterministic
resamples per shape). The log's first lines state the protocol (backends, readout, pooling,
head norm, attention, sizes, split, schedule) so a reader can audit a run.
"""

from __future__ import annotations

import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from nepa3d_jax import atomic_io
from nepa3d_jax.eval.cls import augment as cls_augment
from nepa3d_jax.eval.cls import board as cls_board
from nepa3d_jax.eval.cls import data as cls_data
from nepa3d_jax.eval.cls import model as cls_model
from nepa3d_jax.eval.cls import pooling as cls_pooling
from nepa3d_jax.eval.cls import setup as cls_setup
from nepa3d_jax.eval.cls import split as cls_split
from nepa3d_jax.eval.cls import steps as cls_steps
from nepa3d_jax.run_log import close_run_log, open_run_log
from nepa3d_jax.tokenizer.options import TokenOptions


def write_json_atomic(path: str, obj: Any) -> None:
    """`nepa3d_jax.atomic_io`: atomic, standard JSON (an undefined metric is null plus a reason)."""
    atomic_io.write_json_atomic(path, obj, indent=2, sort_keys=True)


def _mc_counts(c) -> tuple[int, int]:
    k_val = int(c.mc_eval_k) if c.mc_eval_k_val < 0 else int(c.mc_eval_k_val)
    k_test = int(c.mc_eval_k) if c.mc_eval_k_test < 0 else int(c.mc_eval_k_test)
    if min(k_val, k_test) < 1:
        raise ValueError(f"mc_eval_k_val={k_val} / mc_eval_k_test={k_test} must be >= 1")
    return k_val, k_test


def protocol_lines(c, r: cls_setup.Resolved, sel: dict, pooling: str, aug, k_val: int,
                   k_test: int, n_dev: int, step_batch: int, full_spec: list[str]) -> list[str]:
    """What ran, in the terms of the seed plan's audit (section 9/12)."""
    pre = r.backbone.pretrain
    xyz_only = bool(c.ablate_point_dist) and r.n_ray == 0
    readout = "xyz-only" if xyz_only else "full-spec" if c.full_spec_readout else "custom"
    train_be = c.train_backend or c.backend
    eval_be = c.eval_backend or c.backend
    return [
        f"[protocol] job=finetune_cls cache_root={c.cache_root} ckpt={c.ckpt or '(scratch)'}",
        f"[protocol] train_backend={train_be} eval_backend={eval_be} "
        f"readout={readout} (pt_xyz_key={c.pt_xyz_key} "
        f"ablate_point_dist={bool(c.ablate_point_dist)}"
        f" n_ray={r.n_ray})" + (f" full_spec_readout changed: {'; '.join(full_spec)}"
                                if full_spec else ""),
        f"[protocol] cls_pooling={c.cls_pooling}->{pooling} head_norm={int(c.head_norm)} "
        f"cls_is_causal={bool(c.cls_is_causal)} "
        f"({'causal' if c.cls_is_causal else 'bidirectional'} attention) "
        f"freeze_backbone={bool(c.freeze_backbone)}",
        f"[protocol] n_point={r.n_point}/{pre.get('n_point', '-')} "
        f"n_ray={r.n_ray}/{pre.get('n_ray', '-')} (fine-tune/pretrain) "
        f"qa_tokens={int(r.qa_tokens)} "
        f"qa_layout={c.qa_layout} add_eos={int(r.add_eos)} seq_len={r.seq_len} "
        f"model_max_len={r.backbone.max_len} d_model={r.backbone.d_model}",
        f"[protocol] pt_sample_mode_train={c.pt_sample_mode_train} "
        f"pt_sample_mode_eval={c.pt_sample_mode_eval} pt_fps_key={c.pt_fps_key} "
        f"pt_rfps_m={c.pt_rfps_m} point_order_mode={c.point_order_mode} "
        f"pt_dist_key={c.pt_dist_key}",
        f"[protocol] val_ratio={c.val_ratio} val_seed={c.val_seed} fewshot_k={c.fewshot_k} "
        f"fewshot_n_way={c.fewshot_n_way} fewshot_seed={c.fewshot_seed} "
        f"picked_classes={sel['picked_classes']} num_train={len(sel['train'])} "
        f"num_val={len(sel['val'])} num_test={len(sel['test'])} "
        f"num_classes={len(sel['label_map'])}",
        f"[protocol] aug_preset={c.aug_preset} {aug} aug_eval={bool(c.aug_eval)} "
        f"mc_eval_k_val={k_val} mc_eval_k_test={k_test} eval_seed={c.eval_seed}",
        f"[protocol] optimizer=AdamW lr={c.lr} ({_schedule_text(c)}) "
        f"weight_decay={c.weight_decay} "
        f"epochs={c.epochs} batch={c.batch} (global; step batch {step_batch} incl. padding) "
        f"devices={n_dev} seed={c.seed}",
    ]


def _schedule_text(c) -> str:
    if c.lr_schedule == "constant":
        return "constant"
    return f"linear warmup {c.lr_warmup_epochs} epochs, cosine decay to 0"


def _audit_notes(c, r: cls_setup.Resolved, k_val: int, k_test: int) -> list[str]:
    """Facts a reader of the plan's logs would otherwise have to work out."""
    notes = []
    deterministic = (c.pt_sample_mode_eval in ("fps", "fixed_grid")
                     and c.point_order_mode != "random" and r.n_ray == 0 and not c.aug_eval)
    if deterministic and max(k_val, k_test) > 1:
        notes.append("[audit] eval tokenization is deterministic here (pt_sample_mode_eval="
                     f"{c.pt_sample_mode_eval}, point_order_mode={c.point_order_mode}, n_ray=0, "
                     "aug_eval=False): the MC resamples are identical, so mc_eval_k only "
                     "repeats work")
    pre = r.backbone.pretrain
    for name in ("point_order_mode", "qa_layout"):
        if name == "qa_layout" and not r.qa_tokens:
            continue
        if pre.get(name) and pre[name] != c[name]:
            notes.append(f"[audit] {name}: pretrained with {pre[name]!r}, fine-tuned with "
                         f"{c[name]!r} (the original's fine-tune always uses its default)")
    if float(c.val_ratio) <= 0:
        notes.append("[audit] val_ratio=0: no validation split; the last epoch is scored on test")
    return notes


def run_single(config: ml_collections.ConfigDict) -> dict:
    """Fine-tune, pick the best validation epoch, score it on test; writes `out_json`.

    `random_init=True` re-initialises the checkpoint's backbone (same architecture and
    token settings, parameters from the pretraining seed): the random-init baseline."""
    c = ml_collections.ConfigDict(config.to_dict())
    t_start = time.time()
    if jax.process_count() > 1:
        raise ValueError("finetune_cls runs in one process (all local devices); got "
                         f"{jax.process_count()} processes")
    full_spec = cls_setup.apply_full_spec(c)
    cls_setup.check_fields(c)
    k_val, k_test = _mc_counts(c)
    aug = cls_augment.resolve(
        c.aug_preset, rotate_z=bool(c.aug_rotate_z), scale_min=float(c.aug_scale_min),
        scale_max=float(c.aug_scale_max), translate=float(c.aug_translate),
        jitter_sigma=float(c.aug_jitter_sigma), jitter_clip=float(c.aug_jitter_clip))
    sel = cls_split.select_files(
        c.cache_root, val_ratio=float(c.val_ratio), val_seed=int(c.val_seed),
        fewshot_k=int(c.fewshot_k), fewshot_seed=int(c.fewshot_seed),
        fewshot_n_way=int(c.fewshot_n_way), fewshot_way_seed=int(c.fewshot_way_seed))
    key_init, key_head = jax.random.split(jax.random.key(int(c.seed)))
    r = cls_setup.resolve(c)
    if bool(c.random_init):
        _reinit(r)
    pooling = cls_pooling.resolve_pooling(c.cls_pooling, r.qa_tokens)
    mesh = cls_steps.data_mesh()
    n_dev = mesh.devices.size
    step_batch = cls_steps.batch_size_for(int(c.batch), n_dev)

    log_path = c.log_path or (os.path.splitext(c.out_json)[0] + ".log" if c.out_json else "")
    log = open_run_log("nepa3d_jax.finetune_cls", log_path)
    try:
        for line in protocol_lines(c, r, sel, pooling, aug, k_val, k_test, n_dev, step_batch,
                                   full_spec):
            log.info(line)
        for note in r.notes + _audit_notes(c, r, k_val, k_test):
            log.info(note)
        result = _train_and_test(c, r, sel, pooling, aug, k_val, k_test, mesh, step_batch,
                                 key_init, key_head, log)
    finally:
        close_run_log(log)
    result.update(
        settings=dict(c.to_dict(), resolved=dict(
            n_point=r.n_point, n_ray=r.n_ray, qa_tokens=int(r.qa_tokens), add_eos=int(r.add_eos),
            seq_len=r.seq_len, max_len=r.backbone.max_len, d_model=r.backbone.d_model,
            cls_pooling=pooling, head_norm=bool(int(c.head_norm)),
            mc_eval_k_val=k_val, mc_eval_k_test=k_test,
            xyz_only=bool(c.ablate_point_dist) and r.n_ray == 0, num_devices=n_dev,
            step_batch=step_batch, aug=str(aug), full_spec_changes=full_spec,
            pretrain=r.backbone.pretrain, picked_classes=sel["picked_classes"],
            label_map=sel["label_map"])),
        num_train=len(sel["train"]), num_val=len(sel["val"]), num_test=len(sel["test"]),
        seconds_total=time.time() - t_start)
    if c.out_json:
        write_json_atomic(c.out_json, result)
    return result


def _reinit(r: cls_setup.Resolved) -> None:
    from nepa3d_jax.eval import baselines

    bb = r.backbone
    if bb.params is None:
        raise ValueError("config.random_init=True needs config.ckpt (a from-scratch run is "
                         "already randomly initialised)")
    seed = baselines.pretrain_seed(bb.pretrain)
    bb.params = baselines.random_params(bb.model, seed)
    bb.source = f"random-init(seed={seed}) of {bb.source}"
    r.notes.append(f"[baseline] backbone re-initialised from seed {seed} (random-init baseline)")


def _train_and_test(c, r, sel, pooling, aug, k_val, k_test, mesh, step_batch, key_init,
                    key_head, log) -> dict:
    t0 = time.time()
    keep_rays = r.n_ray > 0
    opts = {}
    for name, backend in (("train", c.train_backend or c.backend),
                          ("val", c.eval_backend or c.backend),
                          ("test", c.eval_backend or c.backend)):
        opts[name] = cls_data.PoolOptions(
            backend=backend, pt_xyz_key=c.pt_xyz_key, pt_dist_key=c.pt_dist_key,
            pt_fps_key=c.pt_fps_key, ablate_point_dist=bool(c.ablate_point_dist),
            force_missing_ray=bool(c.force_missing_ray), keep_rays=keep_rays)
    data = cls_data.load_splits({k: sel[k] for k in ("train", "val", "test")}, sel["label_map"],
                                opts, eval_seed=int(c.eval_seed), show_progress=c.progress)
    log.info(f"[data] loaded {sum(len(sel[k]) for k in ('train', 'val', 'test'))} shapes in "
             f"{time.time() - t0:.1f}s")

    cls_setup.materialize(r, c.scratch, key_init)  # after the data: bad files fail first
    bb = r.backbone
    n_classes = len(sel["label_map"])
    width = cls_pooling.pooled_dim(pooling, bb.d_model)
    head = jax.jit(cls_model.init_head, static_argnums=(1, 2))(key_head, width, n_classes)
    params = dict(backbone=bb.params, head=head)
    if int(c.head_norm):
        params["fc_norm"] = cls_model.init_fc_norm(width)
    logits_fn = cls_model.make_logits_fn(bb.model, pooling, bool(c.cls_is_causal),
                                         bool(int(c.head_norm)))
    train = data["train"]
    n_train = len(train["label"])
    steps_per_epoch = -(-n_train // int(c.batch))
    if c.max_steps_per_epoch > 0:
        steps_per_epoch = min(steps_per_epoch, int(c.max_steps_per_epoch))
    lr = cls_steps.learning_rate(float(c.lr), str(c.lr_schedule),
                                 int(c.lr_warmup_epochs) * steps_per_epoch,
                                 int(c.epochs) * steps_per_epoch)
    tx = cls_steps.make_optimizer(lr, float(c.weight_decay), bool(c.freeze_backbone))
    common = dict(n_point=r.n_point, n_ray=r.n_ray, qa_tokens=r.qa_tokens, qa_layout=c.qa_layout,
                  add_eos=r.add_eos, point_order_mode=c.point_order_mode,
                  pt_rfps_m=int(c.pt_rfps_m))
    tok_train = TokenOptions(pt_sample_mode=c.pt_sample_mode_train,
                                       drop_ray_prob=float(c.drop_ray_prob_train), **common)
    tok_eval = TokenOptions(pt_sample_mode=c.pt_sample_mode_eval, **common)
    train_step = cls_steps.make_train_step(logits_fn, tx, tok_train, aug, int(c.seed), mesh)
    eval_aug = aug if c.aug_eval else None
    eval_step = cls_steps.make_eval_step(logits_fn, tok_eval, eval_aug, mesh)

    repl = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    state = jax.jit(lambda p: dict(params=p, opt_state=tx.init(p), step=jnp.zeros((), jnp.int32)),
                    out_shardings=repl)(params)
    snapshot = jax.jit(lambda p: jax.tree.map(jnp.copy, p), out_shardings=repl)
    best_val, best_ep, best_params = -1.0, -1, None
    history = []
    board = cls_board.Board(c)
    shuffle = np.random.default_rng(int(c.seed))
    t_train = time.time()
    for ep in range(int(c.epochs)):
        perm = shuffle.permutation(n_train)
        sums = np.zeros(3)
        metrics = []  # fetched once per epoch, so steps are dispatched back to back
        for s in range(steps_per_epoch):
            idx = perm[s * int(c.batch):(s + 1) * int(c.batch)]
            state, m = train_step(state, cls_steps.gather_batch(train, idx, step_batch, mesh))
            metrics.append(m)
        for m in jax.device_get(metrics):
            sums += [float(m["loss"]) * float(m["count"]), float(m["correct"]), float(m["count"])]
        train_loss = float(sums[0] / max(sums[2], 1.0))
        train_acc = float(sums[1] / max(sums[2], 1.0))
        if len(data["val"]["label"]):
            val_acc, _ = cls_steps.evaluate(eval_step, state["params"], data["val"], step_batch,
                                            mesh, k_val)
        else:  # val_ratio 0: every epoch counts as the best so far (the last one is tested)
            val_acc = 0.0
        if val_acc > best_val + 1e-12 or not len(data["val"]["label"]):
            best_val, best_ep = val_acc, ep
            best_params = snapshot(state["params"])
        history.append(dict(epoch=ep, train_loss=train_loss, train_acc=train_acc, val_acc=val_acc))
        board.epoch(history[-1])
        log.info(f"ep={ep} train_loss={train_loss:.4f} train_acc={train_acc:.4f} "
                 f"val_acc={val_acc:.4f} best_val={best_val:.4f} best_ep={best_ep} "
                 f"elapsed={time.time() - t_train:.1f}s")
    test_acc, test_logits = cls_steps.evaluate(eval_step, best_params, data["test"], step_batch,
                                               mesh, k_test)
    log.info(f"best_val={best_val:.4f} best_ep={best_ep} test_acc={test_acc:.4f}")
    board.close(c, dict(best_val=best_val, test_acc=test_acc, best_ep=best_ep))
    if c.save_dir:
        _save_params(c.save_dir, best_params, dict(epoch=best_ep, val_acc=best_val,
                                                   test_acc=test_acc, pretrain_ckpt=c.ckpt))
    return dict(best_val=best_val, best_ep=best_ep, test_acc=test_acc, history=history,
                final_train_loss=history[-1]["train_loss"] if history else float("nan"),
                test_pred=test_logits.argmax(-1).tolist(), seconds_train=time.time() - t_train)


def _save_params(save_dir: str, params: Any, meta: dict) -> None:
    """Best-validation classifier as a flat `.npz` of parameters plus a JSON sidecar."""
    os.makedirs(save_dir, exist_ok=True)
    flat = {jax.tree_util.keystr(p): np.asarray(v)
            for p, v in jax.tree_util.tree_leaves_with_path(jax.device_get(params))}
    tmp = os.path.join(save_dir, f"best_params.tmp.{os.getpid()}.npz")
    np.savez(tmp, **flat)
    os.replace(tmp, os.path.join(save_dir, "best_params.npz"))
    write_json_atomic(os.path.join(save_dir, "best_meta.json"), meta)
