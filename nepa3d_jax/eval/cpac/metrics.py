"""UDF regression metrics, target transforms and the nearest-context-copy baseline (pure numpy).

Definitions follow the original CPAC report: MAE and RMSE over all queries (float32), IoU of the
sets {d <= tau} of truth and prediction (union + 1e-9), the same restricted to queries whose true
distance is <= `near_tau`, and `nn_copy`: each query copies the distance of its nearest context
point (first index on ties).
"""

from __future__ import annotations

import numpy as np

TARGET_TRANSFORMS = ("none", "trunc", "log1p")


def udf_metrics(y_true: np.ndarray, y_pred: np.ndarray, tau: float) -> dict[str, float]:
    t = np.asarray(y_true).reshape(-1).astype(np.float32)
    p = np.asarray(y_pred).reshape(-1).astype(np.float32)
    err = p - t
    gt, pr = t <= float(tau), p <= float(tau)
    iou = np.sum(gt & pr) / (np.sum(gt | pr) + 1e-9)
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err ** 2))),
            "iou@tau": float(iou)}


def udf_metrics_near(y_true: np.ndarray, y_pred: np.ndarray, tau: float,
                     near_tau: float) -> dict[str, float]:
    """`udf_metrics` over the queries with true distance <= near_tau, plus their count `n`."""
    t = np.asarray(y_true).reshape(-1).astype(np.float32)
    p = np.asarray(y_pred).reshape(-1).astype(np.float32)
    mask = t <= float(near_tau)
    n = int(mask.sum())
    if n == 0:
        return {"n": 0, "mae": float("nan"), "rmse": float("nan"), "iou@tau": float("nan")}
    out = udf_metrics(t[mask], p[mask], tau)
    out["n"] = n
    return out


def _check_mode(mode: str) -> str:
    if mode not in TARGET_TRANSFORMS:
        raise ValueError(f"target_transform={mode!r}: choose from {', '.join(TARGET_TRANSFORMS)}")
    return mode


def transform_target(y: np.ndarray, mode: str, trunc_max: float, log_scale: float) -> np.ndarray:
    """Target space of the ridge fit: identity, min(y, trunc_max), or log1p(y / log_scale)."""
    y = np.asarray(y, np.float32)
    mode = _check_mode(mode)
    if mode == "trunc":
        return np.minimum(y, np.float32(trunc_max))
    if mode == "log1p":
        return np.log1p(y / np.float32(max(float(log_scale), 1e-8))).astype(np.float32)
    return y


def inverse_transform_target(y_t: np.ndarray, mode: str, trunc_max: float,
                             log_scale: float) -> np.ndarray:
    """Back to distances (truncation cannot be undone: identity, as the original)."""
    y_t = np.asarray(y_t, np.float32)
    if _check_mode(mode) == "log1p":
        return (np.expm1(y_t) * np.float32(max(float(log_scale), 1e-8))).astype(np.float32)
    return y_t


def transform_tau(tau: float, mode: str, trunc_max: float, log_scale: float) -> float:
    mode = _check_mode(mode)
    if mode == "trunc":
        return min(float(tau), float(trunc_max))
    if mode == "log1p":
        return float(np.log1p(float(tau) / max(float(log_scale), 1e-8)))
    return float(tau)


def nn_copy_predict(ctx_xyz_C3: np.ndarray, ctx_dist_C: np.ndarray, q_xyz_M3: np.ndarray,
                    chunk: int = 256) -> np.ndarray:
    """Distance of each query's nearest context point (squared float32 distance, first argmin)."""
    m = q_xyz_M3.shape[0]
    if m == 0:
        return np.zeros((0,), np.float32)
    if ctx_xyz_C3.shape[0] == 0:
        return np.zeros((m,), np.float32)
    nn = np.empty((m,), np.int64)
    for s in range(0, m, chunk):
        d2 = np.sum((q_xyz_M3[s:s + chunk, None, :] - ctx_xyz_C3[None, :, :]) ** 2, axis=-1)
        nn[s:s + chunk] = np.argmin(d2, axis=1)
    return np.asarray(ctx_dist_C, np.float32)[nn]
