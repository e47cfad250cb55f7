"""The train state (step, params, opt_state), created directly in its sharded layout.

`jax.eval_shape(init)` gives the shapes without allocating; the sharding rules turn them into
NamedShardings; `jax.jit(init, out_shardings=...)` then materialises each leaf on its devices
(no host copy of the full state, which matters with fsdp). The same abstract tree is the
restore target for Orbax, so a resumed state lands in the same layout.
"""

from __future__ import annotations

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import Mesh

from nepa3d_jax.tokenizer.types import FEAT_DIM, NUM_TYPES

LEGACY_NUM_TYPES = 5  # BOS, POINT, RAY, MISSING_RAY, EOS

from nepa3d_jax.parallel import param_shardings, replicated


@flax.struct.dataclass
class TrainState:
    step: jax.Array          # () int32, replicated: completed optimizer steps
    params: Any
    opt_state: Any

    def as_dict(self) -> dict[str, Any]:
        """The Orbax `state` item layout: {"params", "opt_state", "step"}."""
        return {"params": self.params, "opt_state": self.opt_state, "step": self.step}

    @classmethod
    def from_dict(cls, tree: dict[str, Any]) -> "TrainState":
        return cls(step=tree["step"], params=tree["params"], opt_state=tree["opt_state"])


def compute_dtype(name: str = "auto") -> jnp.dtype:
    """`model.compute_dtype`: auto = bfloat16 on GPU (float32 master params), float32 elsewhere."""
    if name == "auto":
        return jnp.bfloat16 if jax.default_backend() == "gpu" else jnp.float32
    return jnp.dtype(name)


def build_model(config: ml_collections.ConfigDict, max_len: int) -> Any:
    """QueryNepa from `config.model` with the resolved positional capacity `max_len`."""
    from nepa3d_jax.model import QueryNepa

    m = config.model
    # The original sizes the type table by the token vocabulary: 9 for Q/A, 5 for legacy.
    n_types = NUM_TYPES if int(config.data.qa_tokens) else LEGACY_NUM_TYPES
    return QueryNepa(d_model=int(m.d_model), layers=int(m.layers), heads=int(m.heads),
                     mlp_ratio=float(m.mlp_ratio), max_len=int(max_len),
                     attention=str(m.attention),
                     dtype=compute_dtype(str(m.compute_dtype)),
                     n_types=n_types, remat=bool(m.remat),
                     final_norm=bool(m.final_norm), type_emb_std=float(m.type_emb_std),
                     answer_head=float(config.train.answer_loss_weight) > 0)


def init_fn(model: Any, optimizer: optax.GradientTransformation, feat_dim: int = FEAT_DIM,
            seed: int = 0) -> Callable[[], TrainState]:
    """A no-argument function building the initial state (params from `key(seed)`).

    Parameter shapes do not depend on the sequence length (the positional table is
    `max_len` long), so a 2-token dummy sequence traces the model cheaply.
    """

    def init() -> TrainState:
        feat = jnp.zeros((1, 2, feat_dim), jnp.float32)
        type_id = jnp.zeros((1, 2), jnp.int32)
        params = model.init(jax.random.key(seed), feat, type_id)["params"]
        return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                          opt_state=optimizer.init(params))

    return init


def state_shardings(abstract: TrainState, mesh: Mesh) -> TrainState:
    """Params and optimizer moments follow the fsdp rule; the step (and scalars) replicate."""
    return TrainState(step=replicated(mesh),
                      params=param_shardings(abstract.params, mesh),
                      opt_state=param_shardings(abstract.opt_state, mesh))


def create_state(init: Callable[[], TrainState], mesh: Mesh) -> tuple[TrainState, TrainState]:
    """(state, shardings): the initial state materialised in place on the mesh."""
    abstract = jax.eval_shape(init)
    shardings = state_shardings(abstract, mesh)
    state = jax.jit(init, out_shardings=shardings)()
    return state, shardings


def abstract_state(init: Callable[[], TrainState], shardings: TrainState) -> TrainState:
    """ShapeDtypeStructs carrying the target shardings (Orbax's restore target)."""
    abstract = jax.eval_shape(init)
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        abstract, shardings)
