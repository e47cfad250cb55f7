"""Token orders: Morton (Z-order) codes for points, direction sort for rays, permutations.

The Morton grid is the original's: coordinates in [-1, 1] map to 2**bits cells per axis
(clipped), and x, y, z bits interleave with x lowest. The ray order sorts by azimuth
theta = atan2(dy, dx), ties broken by polar angle phi = acos(dz), then by index (stable).
"""

import jax
import jax.numpy as jnp
import numpy as np

from nepa3d_jax.tokenizer.sorting import lex_argsort

_MAX_BITS = 10  # 3 * 10 bits fill a uint32


def _check_bits(bits: int) -> int:
    if isinstance(bits, bool) or int(bits) != bits or not 1 <= int(bits) <= _MAX_BITS:
        raise ValueError(f"morton bits must be an integer in [1, {_MAX_BITS}], got {bits!r}")
    return int(bits)


def _spread_bits(v, xp):
    """Insert two zero bits between each of the low 10 bits of v (uint32)."""
    v = v & xp.uint32(0x3FF)
    v = (v | (v << xp.uint32(16))) & xp.uint32(0x30000FF)
    v = (v | (v << xp.uint32(8))) & xp.uint32(0x300F00F)
    v = (v | (v << xp.uint32(4))) & xp.uint32(0x30C30C3)
    v = (v | (v << xp.uint32(2))) & xp.uint32(0x9249249)
    return v


def _morton(xyz, bits: int, xp):
    cells = float(2**bits - 1)
    scaled = (xyz * xp.float32(0.5) + xp.float32(0.5)) * xp.float32(cells)
    grid = xp.clip(scaled, xp.float32(0.0), xp.float32(cells)).astype(xp.uint32)
    gx, gy, gz = grid[..., 0], grid[..., 1], grid[..., 2]
    return (_spread_bits(gx, xp)
            | (_spread_bits(gy, xp) << xp.uint32(1))
            | (_spread_bits(gz, xp) << xp.uint32(2)))


def morton_codes(xyz_N3: jax.Array, bits: int = 10) -> jax.Array:
    """uint32 Z-order codes of float32 points (..., 3) in the [-1, 1] cube."""
    bits = _check_bits(bits)
    return _morton(jnp.asarray(xyz_N3, jnp.float32), bits, jnp)


def morton_codes_np(xyz_N3: np.ndarray, bits: int = 10) -> np.ndarray:
    """Host-side (numpy) twin of `morton_codes`, for code that sorts outside jit (CPAC)."""
    bits = _check_bits(bits)
    return _morton(np.asarray(xyz_N3, np.float32), bits, np)


def morton_order(xyz_N3: jax.Array, bits: int = 10) -> jax.Array:
    """Stable argsort of the Morton codes (int32)."""
    return lex_argsort(morton_codes(xyz_N3, bits))


def morton_order_np(xyz_N3: np.ndarray, bits: int = 10) -> np.ndarray:
    """Host-side stable argsort of the Morton codes (int64)."""
    return np.argsort(morton_codes_np(xyz_N3, bits), kind="stable")


def _ray_angles(ray_d_N3: jax.Array):
    d = jnp.asarray(ray_d_N3, jnp.float32)
    norm = jnp.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1] + d[:, 2] * d[:, 2])
    d = d / (norm + jnp.float32(1e-9))[:, None]
    theta = jnp.arctan2(d[:, 1], d[:, 0])
    phi = jnp.arccos(jnp.clip(d[:, 2], -1.0, 1.0))
    return theta, phi


def ray_direction_order(ray_d_N3: jax.Array) -> jax.Array:
    """Indices sorting rays by (theta, phi), stable; int32 (N,)."""
    return lex_argsort(*_ray_angles(ray_d_N3))


def random_permutation(key: jax.Array, n: int) -> jax.Array:
    """A uniformly random permutation of range(n) (int32)."""
    return jax.random.permutation(key, n).astype(jnp.int32)
