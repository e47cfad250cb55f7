"""Closed-form ridge probe: float64 normal equations with a bias column.

As the original CPAC probe: the design matrix gets a trailing column of ones, `lam` is added to
every diagonal entry of X^T X (the bias included), the solution is cast to float32 and applied
to float32 features. `RidgeAccumulator` sums X^T X and X^T y batch by batch so the full design
matrix (hundreds of thousands of rows) never has to be held, in float64 or at all.
"""

from __future__ import annotations

import numpy as np


def _with_bias(x_ND: np.ndarray, dtype) -> np.ndarray:
    x = np.asarray(x_ND, dtype).reshape(-1, np.shape(x_ND)[-1])
    return np.concatenate([x, np.ones((x.shape[0], 1), dtype)], axis=1)


class RidgeAccumulator:
    """Streaming sufficient statistics of a ridge fit."""

    def __init__(self, dim: int):
        self.xtx = np.zeros((dim + 1, dim + 1), np.float64)
        self.xty = np.zeros((dim + 1,), np.float64)
        self.count = 0

    def add(self, x_ND: np.ndarray, y_N: np.ndarray) -> None:
        x = _with_bias(x_ND, np.float64)
        y = np.asarray(y_N, np.float64).reshape(-1)
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"ridge: {x.shape[0]} feature rows but {y.shape[0]} targets")
        self.xtx += x.T @ x
        self.xty += x.T @ y
        self.count += x.shape[0]

    def solve(self, lam: float) -> np.ndarray:
        """(D + 1,) float32 weights, bias last."""
        if self.count == 0:
            raise ValueError("ridge: no training rows (the head-training pass gave no queries)")
        a = self.xtx.copy()
        a.flat[::a.shape[0] + 1] += float(lam)
        return np.linalg.solve(a, self.xty).astype(np.float32)


def ridge_fit(x_ND: np.ndarray, y_N: np.ndarray, lam: float) -> np.ndarray:
    """(D + 1,) float32 weights of min ||[X 1] w - y||^2 + lam ||w||^2."""
    acc = RidgeAccumulator(np.shape(x_ND)[-1])
    acc.add(x_ND, y_N)
    return acc.solve(lam)


def ridge_predict(x_ND: np.ndarray, w: np.ndarray) -> np.ndarray:
    """float32 predictions [X 1] @ w."""
    return (_with_bias(x_ND, np.float32) @ np.asarray(w, np.float32)).astype(np.float32)
