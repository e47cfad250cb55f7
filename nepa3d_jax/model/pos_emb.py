"""Resizing the learned positional table when a checkpoint's max_len differs from the need.

The original resizes with `F.interpolate(mode="linear", align_corners=False)` along the
sequence axis: output row j samples the old table at x = (j + 0.5) * L_old / L_new - 0.5,
clamped at 0, interpolating linearly between floor(x) and the next row (the last row repeats
past the end). Scale and weights are float32 as in torch's CPU kernel.
"""

from __future__ import annotations

import numpy as np


def resize_pos_emb(pos_1LD: np.ndarray, new_len: int) -> np.ndarray:
    """(1, L, D) -> (1, new_len, D) float32 by the original's linear interpolation."""
    pos = np.asarray(pos_1LD, np.float32)
    if pos.ndim != 3 or pos.shape[0] != 1:
        raise ValueError(f"pos_emb must have shape (1, L, D), got {pos.shape}")
    new_len = int(new_len)
    old_len = pos.shape[1]
    if new_len <= 0:
        raise ValueError(f"max_len must be > 0, got {new_len}")
    if new_len == old_len:
        return pos
    scale = np.float32(old_len) / np.float32(new_len)
    # One rounding of scale * (j + 0.5) - 0.5 (torch's compiled kernel fuses the multiply-add).
    src = (np.float64(scale) * (np.arange(new_len, dtype=np.float64) + 0.5) - 0.5)
    src = np.maximum(src.astype(np.float32), np.float32(0.0))
    i0 = np.floor(src).astype(np.int64)
    i1 = np.where(i0 < old_len - 1, i0 + 1, i0)
    lam1 = np.clip(src - i0.astype(np.float32), 0.0, 1.0).astype(np.float32)
    lam0 = (np.float32(1.0) - lam1)[None, :, None]
    lam1 = lam1[None, :, None]
    return (pos[:, i0] * lam0 + pos[:, i1] * lam1).astype(np.float32)
