"""Closed, deterministic classifiers on frozen features (numpy + scipy): the one owner of the
study's readouts, used by the probe job and by the corpus's hand-crafted baseline
(`data_prep.study_baseline`).

Logistic regression: multinomial, loss `C * sum of cross-entropies + |W|^2 / 2` (the bias is
not penalised) on standardised features, solved by Newton-CG with Hessian-vector products (its
work is a few large numpy products, where scipy's L-BFGS-B spends ~100x longer in tiny BLAS
calls). C is chosen by stratified k-fold accuracy on the training rows only (`choose_c`), never
on the test set. `knn_predict`: cosine k-NN after centring on the training mean, majority vote,
ties broken by summed similarity.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize

C_GRID = tuple(10.0 ** e for e in range(-2, 3))


def logreg_loss(theta: np.ndarray, xb: np.ndarray, onehot: np.ndarray,
                c: float) -> tuple[float, np.ndarray]:
    """(loss, gradient) of the L2 multinomial logistic regression; `xb` ends with a ones column
    (the bias, not penalised), theta is the flattened (F + 1, n_classes) weights."""
    w = theta.reshape(xb.shape[1], onehot.shape[1])
    z = xb @ w
    z -= z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    pen = w.copy()
    pen[-1] = 0.0
    grad = c * xb.T @ (np.exp(logp) - onehot) + pen
    return -c * float((onehot * logp).sum()) + 0.5 * float((pen * w).sum()), grad.ravel()


def logreg_hessp(theta: np.ndarray, v: np.ndarray, xb: np.ndarray, onehot: np.ndarray,
                 c: float) -> np.ndarray:
    """Hessian of `logreg_loss` at theta times v (for Newton-CG; no Hessian is formed)."""
    k = onehot.shape[1]
    w, vm = theta.reshape(xb.shape[1], k), v.reshape(xb.shape[1], k)
    z = xb @ w
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    a = xb @ vm
    pen = vm.copy()
    pen[-1] = 0.0
    return (c * xb.T @ (p * a - p * (p * a).sum(1, keepdims=True)) + pen).ravel()


def fit_logreg(x: np.ndarray, y: np.ndarray, n_classes: int, c: float,
               init: np.ndarray | None = None) -> np.ndarray:
    """(F + 1, n_classes) weights (last row: bias) minimising `logreg_loss` by Newton-CG from
    `init` (zeros by default). Newton-CG rather than L-BFGS: its work is a few large numpy
    products, where scipy's L-BFGS-B spends ~100x longer in tiny multithreaded BLAS calls."""
    xb = np.concatenate([x, np.ones((len(x), 1))], 1)
    onehot = np.eye(n_classes)[y]
    start = np.zeros(xb.shape[1] * n_classes) if init is None else np.ravel(init)
    res = minimize(logreg_loss, start, args=(xb, onehot, c), jac=True, hessp=logreg_hessp,
                   method="Newton-CG", options={"maxiter": 200})
    return res.x.reshape(xb.shape[1], n_classes)


def predict(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.argmax(np.concatenate([x, np.ones((len(x), 1))], 1) @ w, axis=1)


def fold_ids(y: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Fold index per sample: each class's samples, shuffled, dealt round-robin."""
    rng = np.random.RandomState(seed)
    fold = np.zeros(len(y), np.int64)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        fold[rng.permutation(idx)] = np.arange(len(idx)) % k
    return fold


def choose_c(x: np.ndarray, y: np.ndarray, n_classes: int, cs: Sequence[float] = C_GRID,
             max_folds: int = 5) -> float:
    """C of the best stratified k-fold accuracy on (x, y) alone (ties: the smaller C); 1.0 when
    some class has a single example (nothing to validate on)."""
    cs = tuple(sorted(float(c) for c in cs))    # ascending: each fit starts from the last
    k = min(int(max_folds), int(np.bincount(y, minlength=n_classes)[np.unique(y)].min()))
    if k < 2:
        return 1.0
    fold = fold_ids(y, k)
    acc = np.zeros(len(cs))
    for f in range(k):
        tr, va = fold != f, fold == f
        mu, sd = standardiser(x[tr])
        w = None
        for i, c in enumerate(cs):
            w = fit_logreg((x[tr] - mu) / sd, y[tr], n_classes, c, init=w)
            acc[i] += np.mean(predict(w, (x[va] - mu) / sd) == y[va]) / k
    return float(cs[int(np.argmax(acc))])        # first maximum: the smaller C


def standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(0), np.maximum(x.std(0), 1e-8)


def train_and_test(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray,
                   n_classes: int, cs: Sequence[float] = C_GRID, max_folds: int = 5) -> dict:
    """Accuracy on (x_te, y_te) of the probe fitted on (x_tr, y_tr): C by CV, features
    standardised with the training rows' mean and std."""
    x_tr = np.asarray(x_tr, np.float64)
    x_te = np.asarray(x_te, np.float64)
    if not (np.isfinite(x_tr).all() and np.isfinite(x_te).all()):
        raise ValueError("probe features hold NaN/Inf")
    c = choose_c(x_tr, y_tr, n_classes, cs, max_folds)
    mu, sd = standardiser(x_tr)
    pred = predict(fit_logreg((x_tr - mu) / sd, y_tr, n_classes, c), (x_te - mu) / sd)
    return {"acc": float(np.mean(pred == y_te)), "C": c, "pred": pred}


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, k: int
                ) -> np.ndarray:
    """Cosine k-NN (features centred on the training mean first, as a pooled readout shares a
    large common offset). Majority vote over the k nearest; ties go to the class with the larger
    summed similarity."""
    train_x = np.asarray(train_x, np.float64)
    mean = train_x.mean(axis=0)
    a, q = _unit(train_x - mean), _unit(np.asarray(test_x, np.float64) - mean)
    sim = q @ a.T
    k = max(1, min(int(k), len(train_x)))
    nearest = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    train_y = np.asarray(train_y)
    classes = np.unique(train_y)
    out = np.empty(len(q), dtype=train_y.dtype)
    for i, row in enumerate(nearest):
        votes = np.array([(train_y[row] == c).sum() for c in classes], np.float64)
        weight = np.array([sim[i, row][train_y[row] == c].sum() for c in classes])
        out[i] = classes[np.lexsort((weight, votes))[-1]]
    return out
