"""Token type ids, feature slots and sequence lengths (the original's token contract).

Legacy ids 0..4 come first and Q/A ids were appended after them, so checkpoints trained
with either format keep their type-embedding rows.
"""

from nepa3d_jax.tokenizer import checks

TYPE_BOS = 0
TYPE_POINT = 1
TYPE_RAY = 2
TYPE_MISSING_RAY = 3
TYPE_EOS = 4
TYPE_Q_POINT = 5
TYPE_A_POINT = 6
TYPE_Q_RAY = 7
TYPE_A_RAY = 8
NUM_TYPES = 9

# Feature slots of one token (FEAT_DIM floats).
FEAT_DIM = 15
SLOT_XYZ = slice(0, 3)       # point xyz, or ray hit point (answer / legacy ray)
SLOT_RAY_O = slice(3, 6)     # ray origin (also the optional point gradient)
SLOT_RAY_D = slice(6, 9)     # ray direction
SLOT_T = 9                   # ray depth t
SLOT_DIST = 10               # point distance answer
SLOT_HIT = 11                # ray hit flag
SLOT_NORMAL = slice(12, 15)  # ray hit normal


def sequence_length(n_point: int, n_ray: int, qa_tokens: bool, add_eos: bool = True) -> int:
    """Tokens in one sequence: BOS + one (legacy) or two (Q/A) tokens per primitive + EOS."""
    n_point = checks.check_size("n_point", n_point)
    n_ray = checks.check_size("n_ray", n_ray)
    per_primitive = 2 if qa_tokens else 1
    return 1 + per_primitive * (n_point + n_ray) + (1 if add_eos else 0)
