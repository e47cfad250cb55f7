"""The probe's classifiers and poolings on constructed data (exact expectations)."""

import jax.numpy as jnp
import numpy as np
import pytest

from nepa3d_jax.eval.probe import classifiers, features
from nepa3d_jax.tokenizer import types as tt


def _blobs(n_per, d=6, k=3, sep=4.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * sep
    x = np.concatenate([c + rng.normal(size=(n_per, d)) for c in centres])
    y = np.repeat(np.arange(k), n_per)
    return x, y


def test_logreg_separates_blobs_and_beats_chance_only_with_signal():
    x, y = _blobs(20)
    xt, yt = _blobs(20, seed=0)
    model = classifiers.fit_logreg(x, y, c=1.0)
    assert (model.predict(xt) == yt).mean() == 1.0
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(60, 6))
    acc = (classifiers.fit_logreg(noise, y, 1.0).predict(rng.normal(size=(60, 6))) == y).mean()
    assert acc < 0.6


def test_logreg_penalty_shrinks_weights_and_the_gradient_is_right():
    x, y = _blobs(10)
    small = np.abs(classifiers.fit_logreg(x, y, c=0.001).w).max()
    large = np.abs(classifiers.fit_logreg(x, y, c=100.0).w).max()
    assert small < 0.1 * large
    with pytest.raises(ValueError, match="C="):
        classifiers.fit_logreg(x, y, c=0.0)
    with pytest.raises(ValueError, match="NaN"):
        classifiers.fit_logreg(np.full_like(x, np.nan), y)


def test_choose_c_uses_folds_of_the_training_rows_only():
    x, y = _blobs(6)
    assert classifiers.choose_c(x, y, [0.1, 1.0], n_folds=3) in (0.1, 1.0)
    # one example per class: no fold can hold a class out -> C = 1
    assert classifiers.choose_c(x[::6], y[::6], [0.1, 10.0]) == 1.0
    folds = classifiers.stratified_folds(y, 3)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(y)))
    for f in folds:
        assert np.bincount(y[f], minlength=3).tolist() == [2, 2, 2]


def test_knn_is_cosine_after_centring_with_votes_then_similarity():
    train = np.array([[1.0, 0.0], [0.9, 0.1], [-1.0, 0.0], [0.0, 1.0]]) + 5.0
    labels = np.array([0, 0, 1, 2])
    test = np.array([[1.0, 0.05], [-0.9, 0.0]]) + 5.0
    assert classifiers.knn_predict(train, labels, test, 1).tolist() == [0, 1]
    assert classifiers.knn_predict(train, labels, test, 3)[0] == 0


def test_poolings():
    h = jnp.arange(2 * 6 * 2, dtype=jnp.float32).reshape(2, 6, 2)
    qa = jnp.asarray([[tt.TYPE_BOS, tt.TYPE_Q_POINT, tt.TYPE_A_POINT, tt.TYPE_Q_POINT,
                       tt.TYPE_A_POINT, tt.TYPE_EOS]] * 2)
    mean_pts = np.asarray(features.pool(h, qa, "mean_pts"))
    np.testing.assert_allclose(mean_pts, np.asarray(h)[:, 1:5].mean(1))
    mean_q = np.asarray(features.pool(h, qa, "mean_q"))
    np.testing.assert_allclose(mean_q, np.asarray(h)[:, [1, 3]].mean(1))
    mm = np.asarray(features.pool(h, qa, "mean_max"))
    np.testing.assert_allclose(mm[:, 2:], np.asarray(h)[:, 4])
    ln = np.asarray(features.pool(h, qa, "mean_max_ln"))
    np.testing.assert_allclose(ln.mean(-1), 0.0, atol=1e-5)
    legacy = jnp.asarray([[tt.TYPE_BOS, tt.TYPE_POINT, tt.TYPE_POINT, tt.TYPE_RAY,
                           tt.TYPE_RAY, tt.TYPE_EOS]] * 2)
    np.testing.assert_allclose(np.asarray(features.pool(h, legacy, "mean_q")),
                               np.asarray(h)[:, 1:5].mean(1))
    with pytest.raises(ValueError, match="readouts"):
        features.check_readouts(["mean"])
