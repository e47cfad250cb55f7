"""The cache contract: which keys a shape's `.npz` holds, their ranks, dtypes and pool lengths.

One `.npz` per shape under `<root>/<split>/<class>/<id>.npz` (DESIGN.md section 2). Checks are
done from the npy headers inside the zip (cheap: no array is decompressed) plus, optionally, a
finiteness / index-range pass over the arrays a run actually reads. Every problem names the file
and the key so a user can find the broken shape among tens of thousands.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from nepa3d_jax.data import npz


class CacheError(ValueError):
    """A cache file or cache root is unusable; the message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class KeySpec:
    """Shape pattern (symbolic dims, ints are exact) and accepted dtype kind of one cache key.

    Symbols: N point-cloud size, P point-query pool, R ray pool, G grid side, K a pre-computed
    FPS order length (K <= the pool it indexes).
    """
    shape: tuple[str | int, ...]
    kind: str  # "float" | "int" | "occ"


KEY_SPECS: dict[str, KeySpec] = {
    "pc_xyz": KeySpec(("N", 3), "float"),
    "pc_n": KeySpec(("N", 3), "float"),
    "pc_fps_order": KeySpec(("Kc",), "int"),
    "pt_xyz_pool": KeySpec(("P", 3), "float"),
    "pt_dist_pool": KeySpec(("P",), "float"),
    "pt_dist_pc_pool": KeySpec(("P",), "float"),
    "pt_dist_udf_pool": KeySpec(("P",), "float"),
    "pt_fps_order": KeySpec(("Kp",), "int"),
    "udf_grid": KeySpec(("G", "G", "G"), "float"),
    "occ_grid": KeySpec(("G", "G", "G"), "occ"),
    "df_grid": KeySpec((1,), "int"),
    "df_dilate": KeySpec((1,), "int"),
    "ray_o_pool": KeySpec(("R", 3), "float"),
    "ray_d_pool": KeySpec(("R", 3), "float"),
    "ray_hit_pool": KeySpec(("R",), "float"),
    "ray_t_pool": KeySpec(("R",), "float"),
    "ray_n_pool": KeySpec(("R", 3), "float"),
    "ray_hit_pc_pool": KeySpec(("R",), "float"),
    "ray_t_pc_pool": KeySpec(("R",), "float"),
    "ray_n_pc_pool": KeySpec(("R", 3), "float"),
}

# Keys whose values may legitimately be NaN / negative: the original's preprocess marks
# point-cloud distances it could not compute that way and the pointcloud backends recompute them.
NONFINITE_ALLOWED = frozenset({"pt_dist_pc_pool"})


def reject_nonfinite(path: str, key: str, a: np.ndarray) -> None:
    """CacheError naming file and key when a float array (other than NONFINITE_ALLOWED) holds
    NaN/Inf: the one value check of every cache reader (`.npz` and TFDS builds)."""
    if a.dtype.kind == "f" and key not in NONFINITE_ALLOWED and not np.isfinite(a).all():
        raise CacheError(f"{path} [{key}]: {int((~np.isfinite(a)).sum())} NaN/Inf values")

# Which pool an FPS order indexes (checked: 0 <= order < len(pool), len(order) <= len(pool)).
FPS_ORDER_OF = {"pt_fps_order": "pt_xyz_pool", "pc_fps_order": "pc_xyz"}

# Dimensions that must not be 0: a shape's point pool and point cloud are always sampled.
EMPTY_NOT_ALLOWED = frozenset({"P", "N"})

_KIND_OK = {
    "float": "f",
    "int": "iu",
    "occ": "biu",
}

# Keys each backend reads unconditionally. A tuple entry is a group of alternatives: one of
# them must be present (the original falls back in that order; the ray answer groups are
# all-of: ("ray_hit_pc_pool", ...) *or* the mesh ray answers).
Requirement = str | tuple[str, ...]
_RAY_QUERY = ("ray_o_pool", "ray_d_pool")
_RAY_MESH = ("ray_hit_pool", "ray_t_pool", "ray_n_pool")
BACKEND_REQUIRED_KEYS: dict[str, tuple[Requirement, ...]] = {
    "mesh": ("pt_xyz_pool", "pt_dist_pool", *_RAY_QUERY, *_RAY_MESH),
    "pointcloud": ("pc_xyz", "pt_xyz_pool", *_RAY_QUERY,
                   ("ray_hit_pc_pool", "ray_hit_pool"), ("ray_t_pc_pool", "ray_t_pool"),
                   ("ray_n_pc_pool", "ray_n_pool")),
    "pointcloud_meshray": ("pc_xyz", "pt_xyz_pool", *_RAY_QUERY, *_RAY_MESH),
    "udfgrid": ("pt_xyz_pool", ("pt_dist_udf_pool", "pt_dist_pool"), *_RAY_QUERY),
    "voxel": ("pc_xyz", "pc_n", "pt_xyz_pool", *_RAY_QUERY),
}
BACKEND_REQUIRED_KEYS["pointcloud_noray"] = BACKEND_REQUIRED_KEYS["pointcloud"]
BACKENDS = tuple(sorted(BACKEND_REQUIRED_KEYS))


# Documented caps on declared sizes (docs/reliability.md "Hostile caches"). Checked from the npy
# headers before any array is read, so a small file whose headers declare 100M rows is reported
# (file, key, declared shape) instead of being allocated. The default cache profile has pools of
# 20000 points, 8000 rays, 2048 cloud points and a 64^3 grid: the caps leave 50x headroom. A run
# whose pools are really larger sets config.data.pt_pool_pad / ray_pool_pad above the cap, which
# then is the limit of that pool (a pad below a pool is refused by the pipeline, naming it).
MAX_POOL_ROWS = 1 << 20
MAX_GRID_SIDE = 256
MAX_ARRAY_BYTES = 256 << 20  # any one array, known key or not (a TFDS build reads them all)
POOL_SYMBOLS = ("N", "P", "R", "Kc", "Kp")
DEFAULT_LIMITS: dict[str, int] = {**{s: MAX_POOL_ROWS for s in POOL_SYMBOLS}, "G": MAX_GRID_SIDE}


def size_limits(pt_pool_pad: int = 0, ray_pool_pad: int = 0) -> dict[str, int]:
    """Row limits per shape symbol: the caps, raised to a pool's configured pad above them."""
    limits = dict(DEFAULT_LIMITS)
    limits.update(P=max(MAX_POOL_ROWS, int(pt_pool_pad)), Kp=max(MAX_POOL_ROWS, int(pt_pool_pad)),
                  R=max(MAX_POOL_ROWS, int(ray_pool_pad)))
    return limits


def size_problems(path: str, headers: Mapping[str, ArrayHeader],
                  limits: Mapping[str, int] | None = None) -> list[str]:
    """Declared sizes over the limits (`size_limits`), each naming file, key and shape (one
    line per file and symbol, on its primary pool where that is over).

    Runs on headers alone: nothing is allocated for a file that fails it.
    """
    limits = DEFAULT_LIMITS if limits is None else limits
    problems: list[str] = []
    reported: set[str] = set()
    for key in sorted(headers, key=lambda k: (k not in ("pt_xyz_pool", "pc_xyz", "ray_o_pool"), k)):
        h = headers[key]
        spec = KEY_SPECS.get(key)
        if spec is not None and len(h.shape) == len(spec.shape):
            over = [(n, sym) for n, sym in zip(h.shape, spec.shape)
                    if isinstance(sym, str) and n > limits.get(sym, n)]
            if over:
                n, sym = over[0]
                if sym in reported:
                    continue
                reported.add(sym)
                problems.append(f"{path} [{key}]: declared shape {h.shape} has {n} along "
                                f"'{sym}', over the limit {limits[sym]} (see docs/reliability.md "
                                "'Hostile caches'; a real pool this large needs "
                                "config.data.pt_pool_pad / ray_pool_pad set to its length)")
                continue
        nbytes = int(np.prod(h.shape, dtype=np.float64)) * h.dtype.itemsize
        if nbytes > MAX_ARRAY_BYTES:
            problems.append(f"{path} [{key}]: declared shape {h.shape} ({h.dtype}) is "
                            f"{nbytes / 2**20:.0f} MiB, over the cap of "
                            f"{MAX_ARRAY_BYTES >> 20} MiB per array")
    return problems


class Problem(NamedTuple):
    """One finding of `check_cache_root`: where, which key (or '' for layout), what."""
    path: str
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path} [{self.key}]" if self.key else self.path
        return f"{where}: {self.message}"


class ArrayHeader(NamedTuple):
    shape: tuple[int, ...]
    dtype: np.dtype


def read_headers(path: str | os.PathLike,
                 keys: Iterable[str] | None = None) -> dict[str, ArrayHeader]:
    """Shapes and dtypes of the arrays in an `.npz` (only `keys`, when given), from npy headers.

    Raises CacheError naming the file when it is not a readable zip of npy arrays.
    """
    wanted = None if keys is None else set(keys)
    path = os.fspath(path)
    out: dict[str, ArrayHeader] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                if not name.endswith(".npy"):
                    continue
                key = name[:-4]
                if wanted is not None and key not in wanted:
                    continue
                with zf.open(name) as f:
                    try:
                        shape, _, dtype = npz.read_header(f)
                    except (ValueError, OSError, EOFError) as e:
                        raise CacheError(f"{path} [{key}]: unreadable npy header ({e})") from e
                out[key] = ArrayHeader(tuple(int(s) for s in shape), np.dtype(dtype))
    except CacheError:
        raise
    except FileNotFoundError as e:
        raise CacheError(f"{path}: file not found") from e
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise CacheError(f"{path}: not a readable .npz (truncated or not a zip: {e})") from e
    return out


def _flatten_required(required: Iterable[Requirement] | None) -> list[tuple[str, ...]]:
    groups = []
    for r in required or ():
        groups.append((r,) if isinstance(r, str) else tuple(r))
    return groups


def check_headers(path: str, headers: Mapping[str, ArrayHeader],
                  required: Iterable[Requirement] | None,
                  limits: Mapping[str, int] | None = None) -> list[str]:
    """Header-level problems: missing required keys, declared sizes over `limits`
    (`size_problems`), dtype kinds, ranks, pool-length agreement."""
    problems: list[str] = size_problems(path, headers, limits)
    for group in _flatten_required(required):
        if not any(k in headers for k in group):
            what = group[0] if len(group) == 1 else " or ".join(group)
            has = ", ".join(sorted(headers))
            problems.append(f"{path} [{what}]: missing key (file has: {has})")
    dims: dict[str, tuple[int, str]] = {}
    # Bind symbols from the primary pools first so messages blame the odd key out.
    order = sorted(headers, key=lambda k: (k not in ("pt_xyz_pool", "pc_xyz", "ray_o_pool"), k))
    for key in order:
        spec = KEY_SPECS.get(key)
        if spec is None:
            continue  # unknown extra keys are allowed (forward compatibility)
        h = headers[key]
        if h.dtype.kind not in _KIND_OK[spec.kind]:
            problems.append(f"{path} [{key}]: dtype {h.dtype} is not {spec.kind}")
        if len(h.shape) != len(spec.shape):
            problems.append(f"{path} [{key}]: rank {len(h.shape)} (shape {h.shape}), "
                            f"expected shape {spec.shape}")
            continue
        for size, want in zip(h.shape, spec.shape):
            if isinstance(want, int):
                if size != want:
                    problems.append(f"{path} [{key}]: shape {h.shape}, expected {spec.shape}")
                    break
            elif want in dims and dims[want][0] != size:
                problems.append(f"{path} [{key}]: length {size} along '{want}' differs from "
                                f"{dims[want][1]} ({dims[want][0]}); shape {h.shape}")
                break
            elif want not in dims:
                dims[want] = (size, key)
                if want in EMPTY_NOT_ALLOWED and size == 0:
                    problems.append(f"{path} [{key}]: empty pool, shape {h.shape}: nothing to "
                                    "sample (a failed preprocess?)")
                    break
    for order_key, pool_key in FPS_ORDER_OF.items():
        if order_key in headers and pool_key in headers:
            k, n = headers[order_key].shape[:1], headers[pool_key].shape[:1]
            if k and n and k[0] > n[0]:
                problems.append(f"{path} [{order_key}]: length {k[0]} exceeds {pool_key} "
                                f"length {n[0]}")
    return problems


def check_cache_file(path: str | os.PathLike, required_keys: Iterable[Requirement] | None = None,
                     *, check_values: bool = True, value_keys: Iterable[str] | None = None,
                     limits: Mapping[str, int] | None = None) -> list[str]:
    """Problems of one cache file (empty list = fine); each names the file and the key.

    required_keys: keys (or tuples of alternatives) that must be present, e.g.
      `BACKEND_REQUIRED_KEYS["mesh"]`. check_values: also read arrays to check NaN/Inf and
      FPS-order index ranges (limited to `value_keys` when given; default every known key).
      Values are read only when the headers pass, so sizes over `limits` allocate nothing.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        return [f"{path}: not a file"]
    try:
        headers = read_headers(path)
    except CacheError as e:
        return [str(e)]
    problems = check_headers(path, headers, required_keys, limits)
    if not check_values or problems:
        return problems
    keys = set(KEY_SPECS) if value_keys is None else set(value_keys)
    keys &= set(headers)
    if not keys:
        return problems
    try:
        with npz.Npz(path) as z:
            for key in sorted(keys):
                a = z[key]
                if a.dtype.kind == "f" and key not in NONFINITE_ALLOWED:
                    bad = ~np.isfinite(a)
                    if bad.any():
                        problems.append(f"{path} [{key}]: {int(bad.sum())} NaN/Inf values")
                if key == "ray_hit_pool" and "ray_d_pool" in keys and a.size and not a.any() \
                        and np.any(z["ray_d_pool"]):
                    problems.append(f"{path} [{key}]: none of the {a.size} rays hits the "
                                    "surface (a degenerate or mis-normalised mesh, e.g. one "
                                    "outlier vertex)")
                if key in FPS_ORDER_OF and a.size:
                    pool = headers.get(FPS_ORDER_OF[key])
                    n = pool.shape[0] if pool is not None else None
                    if int(a.min()) < 0 or (n is not None and int(a.max()) >= n):
                        problems.append(f"{path} [{key}]: indices outside [0, {n})")
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        problems.append(f"{path}: corrupt array data ({e})")
    return problems


def load_cache(path: str | os.PathLike, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Read `keys` of one cache file; CacheError naming file and key on any problem.

    Only the listed keys are decompressed (npz members are read lazily).
    """
    path = os.fspath(path)
    out: dict[str, np.ndarray] = {}
    try:
        z = npz.Npz(path)
    except FileNotFoundError as e:
        raise CacheError(f"{path}: file not found") from e
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise CacheError(f"{path}: not a readable .npz (truncated or not a zip: {e})") from e
    with z:
        for key in keys:
            if key not in z.files:
                has = ", ".join(sorted(z.files))
                raise CacheError(f"{path} [{key}]: missing key (file has: {has})")
            try:
                out[key] = z[key]
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
                raise CacheError(f"{path} [{key}]: corrupt array data ({e})") from e
    return out


def list_cache_files(root: str | os.PathLike, split: str) -> list[str]:
    """Sorted `<root>/<split>/<class>/*.npz` paths as strings (the original's glob order)."""
    base = os.path.join(os.fspath(root), split)
    out = []
    if not os.path.isdir(base):
        return out
    for cls in sorted(os.listdir(base)):
        d = os.path.join(base, cls)
        if not os.path.isdir(d):
            continue
        out.extend(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".npz"))
    return sorted(out)


def check_cache_root(root: str | os.PathLike, splits: Iterable[str]) -> list[Problem]:
    """Layout problems of a cache root: missing root or split, empty split, empty class folders."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        return [Problem(root, "", "cache root does not exist or is not a directory")]
    problems: list[Problem] = []
    for split in splits:
        base = os.path.join(root, split)
        if not os.path.isdir(base):
            problems.append(Problem(base, "", f"split '{split}' missing under {root}"))
            continue
        classes = sorted(c for c in os.listdir(base) if os.path.isdir(os.path.join(base, c)))
        if not classes:
            problems.append(Problem(base, "", f"split '{split}' has no class folders "
                                              "(expected <root>/<split>/<class>/<id>.npz)"))
            continue
        n_total = 0
        for cls in classes:
            d = os.path.join(base, cls)
            n = sum(1 for f in os.listdir(d) if f.endswith(".npz"))
            n_total += n
            if n == 0:
                problems.append(Problem(d, "", f"class folder '{cls}' has no .npz files"))
        if n_total == 0:
            problems.append(Problem(base, "", f"split '{split}' is empty (no .npz files)"))
    return problems
