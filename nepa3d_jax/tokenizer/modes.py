"""Point sampling modes, point orders and Q/A layouts: one table each, read by everything.

The tokenizer dispatches through these tables and config validation, classification and CPAC
take their allowed values from them, so a new point order (or sampling mode) is one entry here
plus its tests. Samplers share one signature (the tokenizer passes every input; each uses what
it needs); an order returns a permutation of the sampled points, or None to keep their order.
The implementations are imported when first called, so config tools read the tables jax-free.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Optional

Sampler = Callable[..., Any]     # (key, xyz, mask, n_point, fps_order, fps_count, rfps_m) -> idx
Order = Callable[[Any, Any], Optional[Any]]   # (key, xyz_K3) -> permutation | None


def _impl(module: str) -> Any:
    return importlib.import_module(f"nepa3d_jax.tokenizer.{module}")


PT_SAMPLERS: dict[str, Sampler] = {
    "random": lambda key, xyz, mask, n, fps_order, fps_count, rfps_m:
        _impl("pool_sampling").random_choice(key, mask, n),
    "fps": lambda key, xyz, mask, n, fps_order, fps_count, rfps_m:
        _impl("pool_sampling").fps_with_order(key, xyz, mask, n, fps_order, fps_count),
    "rfps": lambda key, xyz, mask, n, fps_order, fps_count, rfps_m:
        _impl("pool_sampling").rfps_order(key, xyz, mask, n, rfps_m),
    "fixed_grid": lambda key, xyz, mask, n, fps_order, fps_count, rfps_m:
        _impl("pool_sampling").fixed_grid_indices(xyz, mask, n),
}

POINT_ORDERS: dict[str, Order] = {
    "morton": lambda key, xyz: _impl("ordering").morton_order(xyz),
    "fps": lambda key, xyz: None,  # keep the sampling order
    "random": lambda key, xyz: _impl("ordering").random_permutation(key, xyz.shape[0]),
}

PT_SAMPLE_MODES = tuple(PT_SAMPLERS)
POINT_ORDER_MODES = tuple(POINT_ORDERS)
QA_LAYOUTS = ("interleave", "split")

# `model.nepa_target`: which part of the next token's embedding the NEPA loss predicts. Kept
# with the token modes so config validation reads it jax-free. full = z (the original:
# token_mlp(feat) + type_emb + pos_emb); content = token_mlp(feat) alone, so the parts the
# predictor knows from the layout (type, position) are no longer targets; content_std = the
# content standardised per channel over the batch's targets (stop-gradient statistics), so the
# target is the part that differs between answers (its mean is shared by all of them).
NEPA_TARGETS = ("full", "content", "content_std")
