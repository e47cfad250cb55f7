"""CPAC's opt-in query isolation: a query's representation depends on the context and on itself,
not on the other queries or their fake zero answers; off (the original's protocol), it does."""

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np

from nepa3d_jax.eval.cpac import tokens
from nepa3d_jax.eval.cpac.extract import RepresentationFn
from nepa3d_jax.model import QueryNepa


def _features(layout, rng, q_xyz):
    ctx = rng.uniform(-1, 1, (1, 5, 3)).astype(np.float32)
    dist = rng.uniform(0, 0.2, (1, 5)).astype(np.float32)
    return tokens.build_features(layout, ctx, dist, q_xyz)


def test_isolated_queries_ignore_each_other_and_the_default_does_not():
    for qa_layout in ("interleave", "split"):
        layout = tokens.token_layout(5, 4, qa_tokens=True, qa_layout=qa_layout,
                                     causal_prefix=True)
        model = QueryNepa(d_model=16, layers=2, heads=2, max_len=32)
        t = layout.length
        params = model.init(jax.random.key(0), jnp.zeros((1, t, 15)),
                            jnp.zeros((1, t), jnp.int32))["params"]
        pre = SimpleNamespace(model=model, params=params)
        q = np.random.default_rng(1).uniform(-1, 1, (1, 4, 3)).astype(np.float32)
        q_moved = q.copy()
        q_moved[0, 0] += 0.5  # move the first query only
        reps = {}
        for iso in (False, True):
            fn = RepresentationFn(pre, batch_size=1, devices=jax.devices()[:1],
                                  query_isolation=iso)
            a = np.asarray(fn(_features(layout, np.random.default_rng(2), q), layout.type_id,
                              layout.q_pos))
            b = np.asarray(fn(_features(layout, np.random.default_rng(2), q_moved),
                              layout.type_id, layout.q_pos))
            reps[iso] = (a, b)
        a, b = reps[True]
        np.testing.assert_allclose(a[0, 1:], b[0, 1:], rtol=1e-6, atol=1e-6)  # others unchanged
        assert np.abs(a[0, 0] - b[0, 0]).max() > 1e-4                         # itself changes
        a, b = reps[False]
        assert np.abs(a[0, 1:] - b[0, 1:]).max() > 1e-4, qa_layout  # the original: they see it
