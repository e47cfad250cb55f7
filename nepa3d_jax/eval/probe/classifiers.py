"""Closed, deterministic classifiers on frozen features (numpy + scipy, no learning-rate knobs).

`fit_logreg`: multinomial logistic regression with an L2 penalty `||W||^2 / (2 C)` (the bias is
not penalised), solved by L-BFGS from zero; features are standardised with the training set's
mean and std first. `choose_c` picks C by stratified cross-validation on the training set only
(never the test set). `knn_predict`: cosine k-NN with majority vote, ties broken by summed
similarity. These are the readouts of the study's probes (docs/evaluation.md); the hand-crafted
baseline of the study corpus uses the same ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy import optimize, special

DEFAULT_CS = (0.01, 0.1, 1.0, 10.0, 100.0)


@dataclasses.dataclass(frozen=True)
class LogReg:
    """A fitted model: standardisation + weights."""
    mean: np.ndarray
    scale: np.ndarray
    w: np.ndarray          # (D, K)
    b: np.ndarray          # (K,)
    classes: np.ndarray    # (K,) the labels the columns stand for

    def decision(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, np.float64) - self.mean) / self.scale
        return z @ self.w + self.b

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.classes[np.argmax(self.decision(x), axis=1)]


def fit_logreg(x: np.ndarray, y: np.ndarray, c: float = 1.0, max_iter: int = 500) -> LogReg:
    """Multinomial logistic regression (L2, strength 1/C) on standardised features."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y)
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"fit_logreg: features {x.shape} and labels {y.shape} do not match")
    if not np.isfinite(x).all():
        raise ValueError("fit_logreg: features hold NaN/Inf")
    if c <= 0:
        raise ValueError(f"fit_logreg: C={c} must be > 0")
    classes, idx = np.unique(y, return_inverse=True)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    z = (x - mean) / scale
    n, d = z.shape
    k = len(classes)
    onehot = np.zeros((n, k))
    onehot[np.arange(n), idx] = 1.0

    def loss_grad(theta):
        w = theta[:d * k].reshape(d, k)
        b = theta[d * k:]
        logits = z @ w + b
        logp = logits - special.logsumexp(logits, axis=1, keepdims=True)
        loss = -(onehot * logp).sum() / n + (w * w).sum() / (2.0 * c * n)
        p = np.exp(logp)
        g = (p - onehot) / n
        gw = z.T @ g + w / (c * n)
        return loss, np.concatenate([gw.ravel(), g.sum(axis=0)])

    if k == 1:
        return LogReg(mean, scale, np.zeros((d, 1)), np.zeros(1), classes)
    res = optimize.minimize(loss_grad, np.zeros(d * k + k), jac=True, method="L-BFGS-B",
                            options=dict(maxiter=int(max_iter)))
    return LogReg(mean, scale, res.x[:d * k].reshape(d, k), res.x[d * k:], classes)


def stratified_folds(y: np.ndarray, n_folds: int, seed: int = 0) -> list[np.ndarray]:
    """Index arrays of `n_folds` folds, each class dealt round-robin after a seeded shuffle."""
    y = np.asarray(y)
    rng = np.random.RandomState(seed)
    folds: list[list[int]] = [[] for _ in range(n_folds)]
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        rng.shuffle(members)
        for i, m in enumerate(members):
            folds[i % n_folds].append(int(m))
    return [np.asarray(sorted(f), np.int64) for f in folds if f]


def choose_c(x: np.ndarray, y: np.ndarray, cs: Sequence[float] = DEFAULT_CS,
             n_folds: int = 3, seed: int = 0) -> float:
    """C with the best mean cross-validated accuracy on (x, y); ties -> the smaller C.
    With fewer than two examples in some class no fold can hold it out: C = 1."""
    y = np.asarray(y)
    per_class = np.bincount(np.unique(y, return_inverse=True)[1])
    folds = min(int(n_folds), int(per_class.min()))
    if folds < 2 or len(cs) == 1:
        return 1.0 if len(cs) != 1 else float(cs[0])
    splits = stratified_folds(y, folds, seed)
    best_c, best_acc = float(cs[0]), -1.0
    for c in sorted(cs):
        accs = []
        for held in splits:
            keep = np.setdiff1d(np.arange(len(y)), held)
            model = fit_logreg(x[keep], y[keep], c)
            accs.append(float((model.predict(x[held]) == y[held]).mean()))
        acc = float(np.mean(accs))
        if acc > best_acc + 1e-12:
            best_c, best_acc = float(c), acc
    return best_c


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
