"""Point sampling modes, point orders and Q/A layouts: one table each, read by everything.

The tokenizer dispatches through these tables and config validation, classification and CPAC
take their allowed values from them, so a new point order (or sampling mode) is one entry here
plus its tests. Samplers share one signature (the tokenizer passes every input; each uses what
it needs); an order returns a permutation of the sampled points, or None to keep their order.
"""

from __future__ import annotations

from typing import Callable, Optional

import jax

from nepa3d_jax.tokenizer import ordering, sampling

Sampler = Callable[..., jax.Array]     # (key, xyz, mask, n_point, fps_order, fps_count, rfps_m)
Order = Callable[[jax.Array, jax.Array], Optional[jax.Array]]   # (key, xyz_K3) -> perm | None

PT_SAMPLERS: dict[str, Sampler] = {
    "random": lambda key, xyz, mask, n, fps_order, fps_count, rfps_m:
        sampling.random_choice(key, mask, n),
    "fps": lambda key, xyz, mask, n, fps_order, fps_count, rfps_m:
        sampling.fps_with_order(key, xyz, mask, n, fps_order, fps_count),
    "rfps": lambda key, xyz, mask, n, fps_order, fps_count, rfps_m:
        sampling.rfps_order(key, xyz, mask, n, rfps_m),
    "fixed_grid": lambda key, xyz, mask, n, fps_order, fps_count, rfps_m:
        sampling.fixed_grid_indices(xyz, mask, n),
}

POINT_ORDERS: dict[str, Order] = {
    "morton": lambda key, xyz: ordering.morton_order(xyz),
    "fps": lambda key, xyz: None,  # keep the sampling order
    "random": lambda key, xyz: ordering.random_permutation(key, xyz.shape[0]),
}

PT_SAMPLE_MODES = tuple(PT_SAMPLERS)
POINT_ORDER_MODES = tuple(POINT_ORDERS)
QA_LAYOUTS = ("interleave", "split")
