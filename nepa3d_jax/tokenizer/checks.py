"""Validation of the tokenizer's static arguments, run at trace time before any compile.

Messages name the argument (the same names as the original's config keys) so a bad
config fails with a sentence a user can act on.
"""

import numpy as np

_MODE_ALIASES = {"grid": "fixed_grid"}


def check_size(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a Python int (it fixes shapes), got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


def check_mode(name: str, value, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, one of {allowed}; got {value!r}")
    mode = _MODE_ALIASES.get(value.lower(), value.lower())
    if mode not in allowed:
        raise ValueError(f"unknown {name} {value!r}; expected one of {allowed}")
    return mode


def _shape(name: str, x) -> tuple[int, ...]:
    shape = getattr(x, "shape", None)
    if shape is None:
        shape = np.shape(x)
    return tuple(int(s) for s in shape)


def check_pools(pt_xyz, pt_dist, rays: dict, n_point: int, n_ray: int) -> tuple[int, int]:
    """Shape checks of one sample's pools; returns (point pool size, ray pool size)."""
    xyz_shape = _shape("pt_xyz", pt_xyz)
    if len(xyz_shape) != 2 or xyz_shape[1] != 3:
        raise ValueError(f"pt_xyz must have shape (N, 3), got {xyz_shape}")
    n_pool = xyz_shape[0]
    dist_shape = _shape("pt_dist", pt_dist)
    if dist_shape not in ((n_pool,), (n_pool, 1)):
        raise ValueError(f"pt_dist must have shape ({n_pool},) or ({n_pool}, 1) to match pt_xyz,"
                         f" got {dist_shape}")
    if n_point > n_pool:
        raise ValueError(f"n_point={n_point} is larger than the point pool pt_xyz "
                         f"({n_pool} points)")
    if n_ray == 0:
        return n_pool, 0
    missing = [k for k, v in rays.items() if v is None]
    if missing:
        raise ValueError(f"ray pools are required when n_ray > 0 (n_ray={n_ray}); missing: "
                         f"{', '.join(missing)}")
    n_rays = _shape("ray_o", rays["ray_o"])[0]
    for name, want in (("ray_o", ((n_rays, 3),)), ("ray_d", ((n_rays, 3),)),
                       ("ray_n", ((n_rays, 3),)), ("ray_hit", ((n_rays,), (n_rays, 1))),
                       ("ray_t", ((n_rays,), (n_rays, 1)))):
        got = _shape(name, rays[name])
        if got not in want:
            raise ValueError(f"{name} must have shape {' or '.join(map(str, want))}, got {got}")
    return n_pool, n_rays


def check_probability(name: str, value) -> None:
    if isinstance(value, (int, float, np.floating)) and not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
