"""The network a CPAC pass reads: a checkpoint (or its random-init twin), its token settings and
its batched forward, loaded once and shared by every seed of the study.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Iterable

import jax

from nepa3d_jax.eval.cpac import tokens
from nepa3d_jax.eval.cpac.extract import RepresentationFn, checkpoint_max_len

PRETRAINED, RANDOM_INIT = "pretrained", "random-init"


@dataclasses.dataclass(frozen=True)
class Network:
    """What every pass of one model needs. `pretrained` and `rep_fn` are None for a
    baseline-only run (nn_copy needs no network)."""
    label: str                   # PRETRAINED or RANDOM_INIT: named in progress and logs
    pretrained: Any | None
    qa_tokens: bool
    qa_layout: str
    add_eos: bool
    rep_fn: RepresentationFn | None
    load_seconds: float = 0.0
    pretrain_point_order: str | None = None  # the checkpoint's data.point_order_mode

    def layout(self, n_context: int, n_query: int) -> tokens.TokenLayout:
        """The CPAC token layout (a causal prefix: context, then queries)."""
        return tokens.token_layout(n_context, n_query, qa_tokens=self.qa_tokens,
                                   qa_layout=self.qa_layout, add_eos=self.add_eos,
                                   causal_prefix=True)

    def random_init(self, seed: int) -> "Network":
        """The same architecture, token settings and batching at a fresh initialisation."""
        from nepa3d_jax.eval import baselines

        rand = baselines.random_init(self.pretrained, seed)
        return dataclasses.replace(self, label=RANDOM_INIT, pretrained=rand,
                                   rep_fn=self.rep_fn.with_params(rand.params))


def default_batch_size() -> int:
    """Shapes per call for `batch_size=0`: one per device on CPU, where a single Run-A sequence
    keeps its activations in cache and larger batches are slower per shape; 8 per device on
    accelerators."""
    per_device = 1 if jax.default_backend() == "cpu" else 8
    return per_device * jax.local_device_count()


def _infer(c, pre, name: str, default: Any) -> Any:
    """A -1 token setting means "the checkpoint's"; the original's default when unrecorded."""
    if int(c[name]) >= 0:
        return bool(int(c[name]))
    try:
        return bool(int(pre.config.data[name]))
    except (AttributeError, KeyError, TypeError):
        return default


def _point_order(pre) -> str | None:
    try:
        return str(pre.config.data.point_order_mode)
    except (AttributeError, KeyError, TypeError):
        return None


def load_checkpoint(c, n_contexts: Iterable[int]):
    """(pretrained, qa_tokens, qa_layout, add_eos); the positional table checked against CPAC."""
    from nepa3d_jax.checkpoint import load_pretrained

    want = int(c.max_len)
    pre = load_pretrained(str(c.ckpt), max_len=want if want > 0 else None,
                          attention=str(c.attention) or None)
    qa_tokens = _infer(c, pre, "qa_tokens", True)
    add_eos = _infer(c, pre, "add_eos", True)
    try:
        qa_layout = str(pre.config.data.qa_layout or "interleave").lower()
    except (AttributeError, KeyError):
        qa_layout = "interleave"
    need = max(tokens.sequence_length(n, int(c.n_query), qa_tokens, add_eos) for n in n_contexts)
    have = checkpoint_max_len(pre)
    if have is not None and need > have:
        raise ValueError(
            f"{c.ckpt}: positional table holds {have} tokens but CPAC with n_context="
            f"{c.n_context}, n_query={c.n_query} needs {need}; set config.max_len={need} to "
            "resize it by linear interpolation (the original's --max_len)")
    return pre, qa_tokens, qa_layout, add_eos


def load(c, n_shapes: int) -> Network:
    """The checkpoint of `c.ckpt` (none for a baseline-only run without one) and a forward
    batched for passes of at most `n_shapes` shapes."""
    t0 = time.perf_counter()
    n_ctx = [0 if str(c[m]) == "none" else int(c.n_context)
             for m in ("context_mode_train", "context_mode_test")]
    pre, qa, rep_fn = None, (True, "interleave", True), None
    if str(c.ckpt):
        pre, *loaded = load_checkpoint(c, n_ctx)
        qa = tuple(loaded)
    if not bool(int(c.baseline_only)):
        # no bigger than the larger pass: small runs would otherwise mostly compute padding
        bs = min(int(c.batch_size) or default_batch_size(), max(1, n_shapes))
        rep_fn = RepresentationFn(pre, rep_source=str(c.rep_source), batch_size=bs,
                                  query_isolation=bool(int(c.query_isolation)))
    order = _point_order(pre) if pre is not None else None
    return Network(PRETRAINED, pre, *qa, rep_fn, time.perf_counter() - t0, order)
