"""CPAC-UDF result files: the settings block of the original's JSON, atomic writing, progress."""

from __future__ import annotations

import os

from nepa3d_jax import atomic_io


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress(total: int, desc: str, enabled: bool):
    """A tqdm bar, or a silent stand-in (disabled or tqdm missing)."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc)


def write_json_atomic(path: str, obj: dict) -> None:
    """`nepa3d_jax.atomic_io`: atomic, standard JSON (an undefined metric is null plus a reason)."""
    atomic_io.write_json_atomic(path, obj, indent=2)


def settings(c, *, eval_paths, tr_paths, te_paths, head_backend, legacy, qa) -> dict:
    """The settings keys of the original's result JSON (for side-by-side comparison)."""
    head_split = str(c.head_train_split or "").strip()
    return {
        "context_backend": str(c.context_backend), "target": "udfgrid_distance_probe",
        "n_context": int(c.n_context), "n_query": int(c.n_query),
        "query_source": str(c.query_source), "query_pool_frac": float(c.query_pool_frac),
        "grid_sample_mode": str(c.grid_sample_mode), "grid_near_tau": float(c.grid_near_tau),
        "grid_near_frac": float(c.grid_near_frac), "eval_split": str(c.split),
        "head_train_split": "legacy_transductive" if legacy else head_split,
        "head_train_backend": head_backend, "legacy_transductive": bool(legacy),
        "eval_seed": int(c.eval_seed), "n_shapes_total": len(eval_paths),
        "n_shapes_head_train": len(tr_paths), "n_shapes_head_test": len(te_paths),
        "ridge_lambda": float(c.ridge_lambda),
        "ridge_lipschitz_lambda": float(c.ridge_lipschitz_lambda),
        "ridge_lipschitz_info": {"enabled": False},
        "tau": float(c.tau), "disjoint_context_query": bool(int(c.disjoint_context_query)),
        "context_mode_train": str(c.context_mode_train),
        "context_mode_test": str(c.context_mode_test), "mismatch_shift": int(c.mismatch_shift),
        "rep_source": str(c.rep_source), "target_transform": str(c.target_transform),
        "target_trunc_max": float(c.target_trunc_max),
        "target_log_scale": float(c.target_log_scale),
        "report_near_tau": float(c.report_near_tau),
        "add_eos": qa[2], "qa_tokens": qa[0], "qa_layout": qa[1],
        "ckpt": os.path.abspath(str(c.ckpt)) if str(c.ckpt) else "",
    }
