"""`TokenOptions`: the static tokenizer arguments of one compiled program.

One type for pretraining (`train.step.StepSpec.tokens`) and classification fine-tuning (one per
split); it is frozen and hashable, so it can key a compiled program, and `kwargs()` feeds
`build_batch` / `build_sequence` directly.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nepa3d_jax.tokenizer.types import sequence_length


@dataclasses.dataclass(frozen=True)
class TokenOptions:
    """Static tokenizer options (a new value = a new compilation)."""
    n_point: int
    n_ray: int
    qa_tokens: bool
    qa_layout: str
    add_eos: bool
    pt_sample_mode: str
    point_order_mode: str
    pt_rfps_m: int
    drop_ray_prob: float = 0.0  # evaluation never drops rays; training passes data.drop_ray_prob

    def kwargs(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def seq_len(self) -> int:
        return sequence_length(self.n_point, self.n_ray, self.qa_tokens, self.add_eos)
