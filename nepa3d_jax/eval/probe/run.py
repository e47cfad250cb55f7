"""The `probe` job: frozen features of a checkpoint and of its random init, scored by logistic
regression (C by cross-validation on the episode's shapes) and cosine k-NN on fixed K-shot
episodes (`eval.cls.split.stratified_kshot`, seeded, the same for every arm).

Result JSON (`out_json`):
  protocol             tokens, readouts, shots, episodes
  arms.<arm>.<layer:readout>.K<k>.{logreg, knn<k>}   per-episode test accuracies
  summary.<arm>        the headline readout's mean accuracy per K and classifier
  delta                pretrained - random_init per K and classifier (mean over episodes)
  <classifier>_K<k>    the pretrained arm's summary flattened (e.g. `logreg_K5`), the
                       numbers `compare` shows (`jobs.PROBE_METRICS`); `baselines.random_init`
                       holds the same keys for the random init
"""

from __future__ import annotations

import logging
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from nepa3d_jax import atomic_io
from nepa3d_jax.eval import baselines
from nepa3d_jax.eval.cls import data as cls_data
from nepa3d_jax.eval.cls import split as cls_split
from nepa3d_jax.eval.probe import classifiers, features
from nepa3d_jax.tokenizer import modes
from nepa3d_jax.tokenizer.options import TokenOptions
from nepa3d_jax.tokenizer.types import sequence_length

log = logging.getLogger("nepa3d_jax.probe")


def _ints(text: str, field: str) -> list[int]:
    try:
        return [int(x) for x in str(text).split(",") if x.strip() != ""]
    except ValueError as err:
        raise ValueError(f"config.{field}={text!r}: expected comma-separated integers") from err


def _floats(text: str, field: str) -> list[float]:
    try:
        return [float(x) for x in str(text).split(",") if x.strip() != ""]
    except ValueError as err:
        raise ValueError(f"config.{field}={text!r}: expected comma-separated numbers") from err


def check_config(c: ml_collections.ConfigDict) -> dict[str, Any]:
    """Parsed lists; ValueError naming the field (before anything is read or compiled)."""
    if not c.ckpt:
        raise ValueError("config.ckpt is empty: name the run directory or .pt to probe")
    shots = _ints(c.shots, "shots")
    if not shots or min(shots) < 0:
        raise ValueError(f"config.shots={c.shots!r}: K >= 0 per class (0 = whole pool)")
    knn = _ints(c.knn_k, "knn_k")
    if min(knn or [0]) < 1:
        raise ValueError(f"config.knn_k={c.knn_k!r}: each k must be >= 1")
    cs = _floats(c.logreg_cs, "logreg_cs")
    if not cs or min(cs) <= 0:
        raise ValueError(f"config.logreg_cs={c.logreg_cs!r}: positive values")
    readouts = features.check_readouts([r for r in str(c.readouts).split(",") if r])
    layers = _ints(c.layers, "layers")
    head_layer, _, head_readout = str(c.headline).partition(":")
    if head_readout not in readouts or int(head_layer) not in layers:
        raise ValueError(f"config.headline={c.headline!r}: must be '<layer>:<readout>' with the "
                         f"layer in config.layers={c.layers!r} and the readout in "
                         f"config.readouts={c.readouts!r}")
    if int(c.episodes) < 1 or int(c.batch) < 1 or int(c.cv_folds) < 2:
        raise ValueError("config.episodes and config.batch must be >= 1, config.cv_folds >= 2")
    if c.point_order_mode and c.point_order_mode not in modes.POINT_ORDER_MODES:
        raise ValueError(f"config.point_order_mode={c.point_order_mode!r}: one of "
                         f"{', '.join(modes.POINT_ORDER_MODES)} or '' (the checkpoint's)")
    return dict(shots=shots, knn=knn, cs=cs, readouts=readouts, layers=layers,
                headline=(int(head_layer), head_readout))


def _episodes(paths: list[str], k: int, n: int, seed: int) -> list[np.ndarray]:
    """Index arrays into `paths` of the K-shot episodes (one, the whole pool, for K = 0)."""
    where = {p: i for i, p in enumerate(paths)}
    if k == 0:
        return [np.arange(len(paths))]
    return [np.asarray([where[p] for p in cls_split.stratified_kshot(paths, k, seed * 1000 + e)])
            for e in range(n)]  # episode_seed 0: seeds 0..n-1, the hand-crafted baseline's


def score(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
          n_classes: int, cs: list[float], folds: int, knn: list[int]) -> dict[str, float]:
    """Test accuracies of the logistic probe (C by CV on the training rows) and each k-NN."""
    r = classifiers.train_and_test(train_x, train_y, test_x, test_y, n_classes, cs, folds)
    out = {"logreg": r["acc"], "logreg_c": r["C"]}
    for k in knn:
        out[f"knn{k}"] = float((classifiers.knn_predict(train_x, train_y, test_x, k)
                                == test_y).mean())
    return out


def with_metrics(result: dict) -> dict:
    """Adds (in place) the flat numbers `compare` reads: `<classifier>_K<k>` of the pretrained
    arm's summary at the top level, the random init's under `baselines.random_init`. Also
    completes a result written before they existed (the study reuses such files)."""
    flat = {arm: {f"{m}_{kk}": v for kk, per_m in s.items() for m, v in per_m.items()}
            for arm, s in result["summary"].items()}
    result.update(flat.get("pretrained", {}))
    if "random_init" in flat:
        result["baselines"] = {"random_init": flat["random_init"]}
    return result


def _load(c, lists):
    from nepa3d_jax.checkpoint import load_pretrained
    pre = load_pretrained(c.ckpt)
    data = pre.config.data  # filled from the pretrain defaults when the record lacks a field
    n_point = int(c.n_point) if int(c.n_point) > 0 else int(data.n_point)
    if n_point <= 0:
        raise ValueError(f"config.n_point={c.n_point}: the checkpoint records no data.n_point; "
                         "set it")
    qa = bool(int(data.qa_tokens))
    eos = bool(int(data.add_eos))
    order = c.point_order_mode or str(data.point_order_mode)
    tok = TokenOptions(n_point=n_point, n_ray=0, qa_tokens=qa, add_eos=eos,
                       qa_layout=str(data.qa_layout),
                       pt_sample_mode=c.pt_sample_mode, point_order_mode=order,
                       pt_rfps_m=int(c.pt_rfps_m))
    if sequence_length(n_point, 0, qa, eos) > pre.max_len:
        pre = load_pretrained(c.ckpt, max_len=sequence_length(n_point, 0, qa, eos))
    return pre, tok


def run(config: ml_collections.ConfigDict) -> dict:
    c = config
    lists = check_config(c)
    t0 = time.time()
    train_paths = cls_split.list_npz(c.cache_root, c.train_split)
    test_paths = cls_split.list_npz(c.cache_root, c.test_split)
    label_map = cls_split.build_label_map(train_paths + test_paths)
    pre, tok = _load(c, lists)
    opts = cls_data.PoolOptions(backend=c.backend, pt_xyz_key=c.pt_xyz_key,
                                pt_dist_key=c.pt_dist_key, ablate_point_dist=bool(c.ablate_point_dist),
                                keep_rays=False)
    data = cls_data.load_splits({"train": train_paths, "test": test_paths}, label_map, opts,
                                eval_seed=int(c.eval_seed), show_progress=bool(c.progress))
    fn = features.make_extract_fn(pre.model, tok, lists["layers"], lists["readouts"],
                                  bool(c.is_causal))
    arms = {"pretrained": pre.params}
    seed = baselines.init_seed(pre)
    if int(c.random_init_baseline):
        arms["random_init"] = baselines.random_params(pre.model, seed)
    # Both arms' parameters placed alike (committed to one device), so `fn` compiles once, not
    # once for the checkpoint's arrays and again for the fresh ones.
    arms = {arm: jax.device_put(params, jax.devices()[0]) for arm, params in arms.items()}
    feats = {arm: {split: features.extract(fn, params, data[split], int(c.batch))
                   for split in ("train", "test")} for arm, params in arms.items()}
    y_train, y_test = data["train"]["label"], data["test"]["label"]
    episodes = {k: _episodes(train_paths, k, int(c.episodes), int(c.episode_seed))
                for k in lists["shots"]}
    out_arms: dict[str, dict] = {}
    for arm, f in feats.items():
        out_arms[arm] = {}
        for key in f["train"]:
            name = f"{key[0]}:{key[1]}"
            per_k = {}
            for k, eps in episodes.items():
                runs = [score(f["train"][key][idx], y_train[idx], f["test"][key], y_test,
                              len(label_map), lists["cs"], int(c.cv_folds), lists["knn"])
                        for idx in eps]
                per_k[f"K{k}"] = {m: [r[m] for r in runs] for m in runs[0]}
            out_arms[arm][name] = per_k
    head = f"{lists['headline'][0]}:{lists['headline'][1]}"
    metrics = ["logreg"] + [f"knn{k}" for k in lists["knn"]]
    summary = {arm: {f"K{k}": {m: float(np.mean(v[head][f"K{k}"][m])) for m in metrics}
                     for k in lists["shots"]} for arm, v in out_arms.items()}
    result = dict(
        job="probe", ckpt=c.ckpt, cache_root=c.cache_root, init_seed=seed,
        protocol=dict(n_point=tok.n_point, qa_tokens=tok.qa_tokens, add_eos=tok.add_eos,
                      point_order_mode=tok.point_order_mode, is_causal=bool(c.is_causal),
                      readouts=list(lists["readouts"]), layers=lists["layers"], headline=head,
                      shots=lists["shots"], episodes=int(c.episodes),
                      episode_seed=int(c.episode_seed), n_classes=len(label_map),
                      n_train_pool=len(train_paths), n_test=len(test_paths),
                      chance=1.0 / max(len(label_map), 1)),
        arms=out_arms, summary=summary, seconds=round(time.time() - t0, 1))
    with_metrics(result)
    if "random_init" in summary:
        result["delta"] = {kk: {m: summary["pretrained"][kk][m] - summary["random_init"][kk][m]
                                for m in metrics} for kk in summary["pretrained"]}
    if c.out_json:
        atomic_io.write_json_atomic(c.out_json, result)
    log.info("probe %s: %s", c.ckpt, summary)
    return result
