"""PNG of a CPAC run: predicted vs true UDF over all eval queries, and per-shape error."""

from __future__ import annotations

import os

import numpy as np


def save(path: str, y_true: np.ndarray, y_pred: np.ndarray, n_query: int,
         tau: float = 0.03) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, p = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4.5))
    ax0.scatter(t, p, s=2, alpha=0.3)
    hi = float(max(t.max(initial=0.0), p.max(initial=0.0)))
    ax0.plot([0, hi], [0, hi], "k--", lw=1)
    ax0.axvline(tau, color="r", lw=0.8)
    ax0.axhline(tau, color="r", lw=0.8)
    ax0.set(xlabel="true UDF", ylabel="predicted UDF", title="queries (red: tau)")
    per_shape = np.abs(p - t)[: (t.size // n_query) * n_query].reshape(-1, n_query).mean(1)
    ax1.bar(np.arange(per_shape.size), per_shape)
    ax1.set(xlabel="eval shape", ylabel="MAE", title="per-shape MAE")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
