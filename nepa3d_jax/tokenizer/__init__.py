"""Tokenizer: pools of point/ray queries and answers -> token sequences (pure jnp)."""

from nepa3d_jax.tokenizer.ordering import (morton_codes, morton_codes_np, morton_order,
                                           morton_order_np, random_permutation,
                                           ray_direction_order)
from nepa3d_jax.tokenizer.sampling import (farthest_from_centroid, fixed_grid_indices,
                                           fps_order, random_choice, rfps_order)
from nepa3d_jax.tokenizer.sequence import POOL_FIELDS, build_batch, build_sequence
from nepa3d_jax.tokenizer.types import (FEAT_DIM, NUM_TYPES, TYPE_A_POINT, TYPE_A_RAY,
                                        TYPE_BOS, TYPE_EOS, TYPE_MISSING_RAY, TYPE_POINT,
                                        TYPE_Q_POINT, TYPE_Q_RAY, TYPE_RAY, sequence_length)
