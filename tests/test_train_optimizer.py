"""Our AdamW equals the original's `torch.optim.AdamW(params, lr, weight_decay=0.05)`."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from nepa3d_jax import jobs
from nepa3d_jax.train.optimizer import lr_at, make_optimizer

torch = pytest.importorskip("torch")


def test_adamw_matches_torch_over_steps():
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(5, 4)).astype(np.float32)
    grads = [rng.normal(scale=s, size=(5, 4)).astype(np.float32) for s in (1.0, 0.1, 3.0, 1e-3)]
    train = ml_collections.ConfigDict(dict(weight_decay=0.05, b1=0.9, b2=0.999, grad_clip=0.0,
                                           lr_schedule="constant", lr_warmup_steps=0))
    opt = make_optimizer(train, lr=3e-3, total_steps=len(grads))
    params = {"w": jnp.asarray(w0)}
    state = opt.init(params)
    w_t = torch.nn.Parameter(torch.tensor(w0))
    opt_t = torch.optim.AdamW([w_t], lr=3e-3, weight_decay=0.05)
    for g in grads:
        updates, state = opt.update({"w": jnp.asarray(g)}, state, params)
        params = optax.apply_updates(params, updates)
        w_t.grad = torch.tensor(g)
        opt_t.step()
        np.testing.assert_allclose(np.asarray(params["w"]), w_t.detach().numpy(), atol=1e-6)


def test_grad_clip_is_opt_in():
    """Off by default (as the original); on, Adam's moments see the clipped gradient."""
    grad = {"w": jnp.full(4, 10.0)}  # global norm 20
    params = {"w": jnp.zeros(4)}
    for clip, norm in ((0.0, 20.0), (1.0, 1.0)):
        train = jobs.default_config("pretrain").train  # b1, b2 as every loaded config has
        train.update(dict(weight_decay=0.0, grad_clip=clip))
        opt = make_optimizer(train, lr=1.0, total_steps=10)
        _, state = opt.update(grad, opt.init(params), params)
        adam = state[0] if clip == 0.0 else state[1][0]
        assert float(jnp.linalg.norm(adam.mu["w"])) == pytest.approx(0.1 * norm, rel=1e-6)


def test_cosine_schedule_is_opt_in_warms_up_and_ends_at_zero():
    """Default: the original's constant LR at every step. `cosine`: 0 -> peak over the warmup,
    half the peak midway through the decay, 0 at the last step; the logged LR is the applied one."""
    train = jobs.default_config("pretrain").train
    assert train.lr_schedule == "constant"
    assert [lr_at(train, 0.01, 100, s) for s in (0, 50, 99)] == [0.01] * 3
    train.update(dict(lr_schedule="cosine", lr_warmup_steps=10))
    lrs = [lr_at(train, 0.01, 110, s) for s in (0, 5, 10, 60, 110)]
    assert lrs == pytest.approx([0.0, 0.005, 0.01, 0.005, 0.0], abs=1e-9)
    # the optimizer applies that LR: SGD-like first Adam step has |update| = lr (weight decay 0)
    train.update(dict(weight_decay=0.0))
    opt = make_optimizer(train, lr=0.01, total_steps=110)
    params, grad = {"w": jnp.zeros(3)}, {"w": jnp.ones(3)}
    state = opt.init(params)
    sizes = []
    for _ in range(6):
        updates, state = opt.update(grad, state, params)
        sizes.append(float(jnp.abs(updates["w"][0])))
    assert sizes == pytest.approx([0.0, 0.001, 0.002, 0.003, 0.004, 0.005], abs=1e-6)


def test_unknown_lr_schedule_is_refused_naming_the_field():
    train = jobs.default_config("pretrain").train
    train.lr_schedule = "linear"
    with pytest.raises(ValueError, match="train.lr_schedule='linear'"):
        make_optimizer(train, lr=0.01, total_steps=10)
