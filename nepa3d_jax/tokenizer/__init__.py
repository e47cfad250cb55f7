"""Tokenizer: pools of point/ray queries and answers -> token sequences (pure jnp).

Names are loaded on first use (PEP 562), so the jax-free parts (`types`, `checks`, `modes`,
`options`: token ids, sequence lengths, the mode tables) serve config tools without importing
jax.
"""

import importlib
from typing import Any

_EXPORTS = {
    "ordering": ("morton_codes", "morton_codes_np", "morton_order", "morton_order_np",
                 "random_permutation", "ray_direction_order"),
    "pool_sampling": ("farthest_from_centroid", "fixed_grid_indices", "fps_order",
                      "random_choice", "rfps_order"),
    "sequence": ("POOL_FIELDS", "build_batch", "build_sequence"),
    "types": ("FEAT_DIM", "NUM_TYPES", "TYPE_A_POINT", "TYPE_A_RAY", "TYPE_BOS", "TYPE_EOS",
              "TYPE_MISSING_RAY", "TYPE_POINT", "TYPE_Q_POINT", "TYPE_Q_RAY", "TYPE_RAY",
              "sequence_length"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"nepa3d_jax.tokenizer.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'nepa3d_jax.tokenizer' has no attribute {name!r}")
