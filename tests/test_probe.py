"""The probe's classifiers and poolings on constructed data (exact expectations)."""

import jax.numpy as jnp
import numpy as np
import pytest

from nepa3d_jax.eval.probe import classifiers, features
from nepa3d_jax.tokenizer.types import (TYPE_A_POINT, TYPE_BOS, TYPE_EOS, TYPE_POINT, TYPE_Q_POINT,
                                        TYPE_RAY)


def _blobs(n_per, d=6, k=3, sep=4.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * sep
    x = np.concatenate([c + rng.normal(size=(n_per, d)) for c in centres])
    y = np.repeat(np.arange(k), n_per)
    return x, y


def test_probe_separates_blobs_and_sits_at_chance_without_signal():
    x, y = _blobs(20)
    xt, yt = _blobs(20, seed=0)
    assert classifiers.train_and_test(x, y, xt, yt, 3)["acc"] == 1.0
    rng = np.random.default_rng(1)
    acc = classifiers.train_and_test(rng.normal(size=(60, 6)), y, rng.normal(size=(60, 6)), y,
                                     3)["acc"]
    assert acc < 0.6
    with pytest.raises(ValueError, match="NaN"):
        classifiers.train_and_test(np.full_like(x, np.nan), y, xt, yt, 3)


def test_choose_c_uses_folds_of_the_training_rows_only():
    x, y = _blobs(6)
    assert classifiers.choose_c(x, y, 3, [0.1, 1.0], max_folds=3) in (0.1, 1.0)
    # one example per class: no fold can hold a class out -> C = 1
    assert classifiers.choose_c(x[::6], y[::6], 3, [0.1, 10.0]) == 1.0
    fold = classifiers.fold_ids(y, 3)
    for f in range(3):
        assert np.bincount(y[fold == f], minlength=3).tolist() == [2, 2, 2]
    # a smaller C shrinks the weights
    small = np.abs(classifiers.fit_logreg(x, y, 3, 0.001)).max()
    large = np.abs(classifiers.fit_logreg(x, y, 3, 100.0)).max()
    assert small < 0.1 * large


def test_knn_is_cosine_after_centring_with_votes_then_similarity():
    train = np.array([[1.0, 0.0], [0.9, 0.1], [-1.0, 0.0], [0.0, 1.0]]) + 5.0
    labels = np.array([0, 0, 1, 2])
    test = np.array([[1.0, 0.05], [-0.9, 0.0]]) + 5.0
    assert classifiers.knn_predict(train, labels, test, 1).tolist() == [0, 1]
    assert classifiers.knn_predict(train, labels, test, 3)[0] == 0


def test_poolings():
    h = jnp.arange(2 * 6 * 2, dtype=jnp.float32).reshape(2, 6, 2)
    qa = jnp.asarray([[TYPE_BOS, TYPE_Q_POINT, TYPE_A_POINT, TYPE_Q_POINT,
                       TYPE_A_POINT, TYPE_EOS]] * 2)
    mean_pts = np.asarray(features.pool(h, qa, "mean_pts"))
    np.testing.assert_allclose(mean_pts, np.asarray(h)[:, 1:5].mean(1))
    mean_q = np.asarray(features.pool(h, qa, "mean_q"))
    np.testing.assert_allclose(mean_q, np.asarray(h)[:, [1, 3]].mean(1))
    mm = np.asarray(features.pool(h, qa, "mean_max"))
    np.testing.assert_allclose(mm[:, 2:], np.asarray(h)[:, 4])
    ln = np.asarray(features.pool(h, qa, "mean_max_ln"))
    np.testing.assert_allclose(ln.mean(-1), 0.0, atol=1e-5)
    legacy = jnp.asarray([[TYPE_BOS, TYPE_POINT, TYPE_POINT, TYPE_RAY,
                           TYPE_RAY, TYPE_EOS]] * 2)
    np.testing.assert_allclose(np.asarray(features.pool(h, legacy, "mean_q")),
                               np.asarray(h)[:, 1:5].mean(1))
    with pytest.raises(ValueError, match="readouts"):
        features.check_readouts(["mean"])
