"""CPAC token sequences: context (xyz, distance) pairs, then queries with a zero answer.

Layouts (the original's CPAC sequences; only xyz slots 0:3 and the distance slot 10 are set):
  Q/A interleave  BOS, (Q ctx_i, A ctx_i)*, (Q q_j, A 0)*, EOS      query rep at 1 + 2C + 2j
  Q/A split       BOS, Q ctx*, Q q*, A ctx*, A 0*, EOS               query rep at 1 + C + j
  legacy          BOS, POINT(xyz, dist) ctx*, POINT(xyz, 0) q*, EOS  query rep at 1 + C + j
The representation of query j is read at its query (Q or POINT) token. With causal attention
nothing after the last query token can change it, so `token_layout(..., causal_prefix=True)`
cuts the sequence there (exact; the split layout halves, the others lose one or two tokens).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from nepa3d_jax.tokenizer.modes import QA_LAYOUTS
from nepa3d_jax.tokenizer.types import sequence_length as tt_sequence_length
from nepa3d_jax.tokenizer.types import (FEAT_DIM, SLOT_DIST, SLOT_XYZ, TYPE_A_POINT, TYPE_BOS,
                                        TYPE_EOS, TYPE_POINT, TYPE_Q_POINT)



def sequence_length(n_context: int, n_query: int, qa_tokens: bool, add_eos: bool) -> int:
    """Tokens in one CPAC sequence: the tokenizer's formula with context + queries as points."""
    return tt_sequence_length(int(n_context) + int(n_query), 0, bool(qa_tokens), bool(add_eos))


@dataclasses.dataclass(frozen=True)
class TokenLayout:
    """Where each part of a CPAC sequence goes; built once per (C, M) and reused for every shape."""
    type_id: np.ndarray      # (T,) int32
    ctx_xyz_pos: np.ndarray  # (C,) positions holding context xyz
    ctx_dist_pos: np.ndarray  # (C,) positions holding context distances
    q_pos: np.ndarray        # (M,) query token positions (xyz there; representation read there)
    # Positions may lie past `length` when the layout is a causal prefix; they are dropped.

    @property
    def length(self) -> int:
        return int(self.type_id.shape[0])


def token_layout(n_context: int, n_query: int, *, qa_tokens: bool, qa_layout: str = "interleave",
                 add_eos: bool = True, causal_prefix: bool = False) -> TokenLayout:
    c, m = int(n_context), int(n_query)
    ar_c, ar_m = np.arange(c), np.arange(m)
    if not qa_tokens:
        types = [TYPE_BOS] + [TYPE_POINT] * (c + m)
        ctx_xyz = ctx_dist = 1 + ar_c
        q_pos = 1 + c + ar_m
    elif qa_layout == "interleave":
        types = [TYPE_BOS] + [TYPE_Q_POINT, TYPE_A_POINT] * (c + m)
        ctx_xyz, ctx_dist = 1 + 2 * ar_c, 2 + 2 * ar_c
        q_pos = 1 + 2 * c + 2 * ar_m
    elif qa_layout == "split":
        types = [TYPE_BOS] + [TYPE_Q_POINT] * (c + m) + [TYPE_A_POINT] * (c + m)
        ctx_xyz, ctx_dist = 1 + ar_c, 1 + c + m + ar_c
        q_pos = 1 + c + ar_m
    else:
        raise ValueError(f"qa_layout={qa_layout!r}: choose from {', '.join(QA_LAYOUTS)}")
    if add_eos:
        types.append(TYPE_EOS)
    if causal_prefix and m:
        types = types[:int(q_pos.max()) + 1]
    return TokenLayout(np.asarray(types, np.int32), ctx_xyz.astype(np.int64),
                       ctx_dist.astype(np.int64), q_pos.astype(np.int64))


def build_features(layout: TokenLayout, ctx_xyz_BC3: np.ndarray, ctx_dist_BC: np.ndarray,
                   q_xyz_BM3: np.ndarray) -> np.ndarray:
    """(B, T, FEAT_DIM) float32 token features of a batch of shapes."""
    b = q_xyz_BM3.shape[0]
    t = layout.length
    feat = np.zeros((b, t, FEAT_DIM), np.float32)
    for pos, slot, vals in ((layout.ctx_xyz_pos, SLOT_XYZ, ctx_xyz_BC3),
                            (layout.ctx_dist_pos, SLOT_DIST, ctx_dist_BC),
                            (layout.q_pos, SLOT_XYZ, q_xyz_BM3)):
        keep = pos < t  # positions past a causal prefix cut are dropped
        feat[:, pos[keep], slot] = np.asarray(vals)[:, keep]
    return feat

