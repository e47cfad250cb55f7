"""One sample, from cache file to fixed-size padded pools (docs/architecture.md "Padded pools").

Pools are padded to per-run sizes so tokenization on device sees static shapes; the true
lengths travel as counts. Sizes come from a header-only scan of the corpus (no array is read).
"""

from __future__ import annotations

import dataclasses
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from nepa3d_jax.data import backends, npz, schema
from nepa3d_jax.data.schema import CacheError


@dataclasses.dataclass(frozen=True)
class SampleOptions:
    """Dataset-level options applied after the backend (the original's dataset arguments)."""
    backend: str
    pt_xyz_key: str
    pt_dist_key: str | None
    pt_fps_key: str
    ablate_point_dist: bool
    force_missing_ray: bool
    # The voxel backend's own defaults (`backends.VOXEL_*`), for readers that never use it (the
    # classification data); pretraining passes `config.data.voxel_*`.
    voxel_grid: int = backends.VOXEL_GRID
    voxel_dilate: int = backends.VOXEL_DILATE
    voxel_max_steps: int = backends.VOXEL_MAX_STEPS


@dataclasses.dataclass(frozen=True)
class PadSizes:
    """Fixed per-run lengths: point pool P, ray pool R, pre-computed FPS order K (<= P)."""
    pt: int
    ray: int
    fps: int


def flattened_link_hint(path: str) -> str:
    """A hint when the file is a symlink flattened into a text file holding its target."""
    try:
        with open(path, "rb") as f:
            head = f.read(4097)
        if len(head) <= 4096 and head.strip().endswith(b".npz"):
            target = head.strip().decode("utf-8", "replace")
            return (f"; it is a {len(head)}-byte text file naming '{target}': a symlink "
                    "flattened by a copy; recreate the split view with real links "
                    "(python -m data_prep.unpaired_split)")
    except OSError:
        pass
    return ""


class CheckedRecord(Mapping):
    """Lazy view of one `.npz`: a key is decompressed on first access and checked for NaN/Inf.

    The one cache reader of training, CPAC-UDF and classification; errors are CacheError
    naming the file and the key.
    """

    def __init__(self, path: str):
        self.path = path
        try:
            self._z = npz.Npz(path)
        except FileNotFoundError as e:
            raise CacheError(f"{path}: file not found") from e
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise CacheError(f"{path}: not a readable .npz (truncated or not a zip: {e})"
                             f"{flattened_link_hint(path)}") from e
        self._keys = set(self._z.files)
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key in self._cache:
            return self._cache[key]
        if key not in self._keys:
            raise CacheError(f"{self.path} [{key}]: missing key "
                             f"(file has: {', '.join(sorted(self._keys))})")
        try:
            a = self._z[key]
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise CacheError(f"{self.path} [{key}]: corrupt array data ({e})") from e
        schema.reject_nonfinite(self.path, key, a)
        self._cache[key] = a
        return a

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._keys))

    def __len__(self) -> int:
        return len(self._keys)

    def close(self) -> None:
        self._z.close()


_PAD_HINT = " (raise config.data.pt_pool_pad / ray_pool_pad, or 0 = corpus max)"


def pad_rows(a: np.ndarray, n: int, dtype: Any, what: str = "pool", path: str = "",
             hint: str = "") -> np.ndarray:
    """`a` zero-padded to `n` rows as `dtype`; ValueError when it has more (never truncates).

    The one padding routine of training, CPAC and classification: a pool longer than its pad
    would silently lose entries. An FPS order is a prefix by definition: cut it before padding.
    """
    if a.shape[0] > n:
        where = f"{path}: " if path else ""
        raise ValueError(f"{where}{what} has {a.shape[0]} entries, more than the pad size {n}"
                         f"{hint}")
    out = np.zeros((n, *a.shape[1:]), dtype)
    out[: a.shape[0]] = a
    return out


def pad_pools(pools: Mapping[str, Any], pads: PadSizes, path: str = "") -> dict[str, np.ndarray]:
    """`apply_backend` output -> fixed-size arrays + counts (float32 / int32 / bool)."""
    order = pools["pt_fps_order"]
    if order is None:
        order = np.zeros((0,), np.int32)
    order = order[: pads.fps]  # the tokenizer only ever uses a prefix of the order
    return dict(
        pt_xyz=pad_rows(pools["pt_xyz"], pads.pt, np.float32, "point pool", path, _PAD_HINT),
        pt_dist=pad_rows(pools["pt_dist"], pads.pt, np.float32, "point distances", path,
                         _PAD_HINT),
        pt_count=np.int32(pools["pt_xyz"].shape[0]),
        pt_fps_order=pad_rows(order, pads.fps, np.int32, "fps order", path, _PAD_HINT),
        fps_count=np.int32(order.shape[0]),
        ray_o=pad_rows(pools["ray_o"], pads.ray, np.float32, "ray pool", path, _PAD_HINT),
        ray_d=pad_rows(pools["ray_d"], pads.ray, np.float32, "ray pool", path, _PAD_HINT),
        ray_hit=pad_rows(pools["ray_hit"], pads.ray, np.float32, "ray pool", path, _PAD_HINT),
        ray_t=pad_rows(pools["ray_t"], pads.ray, np.float32, "ray pool", path, _PAD_HINT),
        ray_n=pad_rows(pools["ray_n"], pads.ray, np.float32, "ray pool", path, _PAD_HINT),
        ray_count=np.int32(pools["ray_o"].shape[0]),
        ray_available=np.bool_(pools["ray_available"]),
    )


def read_pools(path: str, opts: SampleOptions) -> dict[str, Any]:
    """Read one cache file and apply the backend: unpadded pools (`backends.apply_backend`).

    The one reader of training and classification (CPAC reads `CheckedRecord` key by key);
    CacheError names the file and the key, also for a key the backend needs but lacks.
    """
    return pools_from_record(CheckedRecord(path), opts)


def sample_from_record(rec: Any, opts: SampleOptions, pads: PadSizes) -> dict[str, np.ndarray]:
    """Apply the backend to an open record (`.npz` or TFDS, with a `.path` name) and pad it."""
    return pad_pools(pools_from_record(rec, opts), pads, rec.path)


def pools_from_record(rec: Any, opts: SampleOptions) -> dict[str, Any]:
    """`read_pools` of an open record (closed here): `.npz` or a TFDS record with a `.path`."""
    path = rec.path
    try:
        for group in schema.BACKEND_REQUIRED_KEYS.get(opts.backend, ()):
            group = (group,) if isinstance(group, str) else tuple(group)
            if not any(k in rec for k in group):
                raise CacheError(f"{path} [{' or '.join(group)}]: missing key needed by backend "
                                 f"'{opts.backend}' (file has: {', '.join(sorted(rec))})")
        return backends.apply_backend(
            rec, opts.backend, pt_xyz_key=opts.pt_xyz_key, pt_dist_key=opts.pt_dist_key,
            pt_fps_key=opts.pt_fps_key, ablate_point_dist=opts.ablate_point_dist,
            force_missing_ray=opts.force_missing_ray, voxel_grid=opts.voxel_grid,
            voxel_dilate=opts.voxel_dilate, voxel_max_steps=opts.voxel_max_steps, path=path)
    except KeyError as e:  # a key some backend reads without checking
        raise CacheError(f"{path} [{e.args[0] if e.args else '?'}]: missing key needed by "
                         f"backend '{opts.backend}'") from e
    finally:
        rec.close()


def load_sample(path: str, opts: SampleOptions, pads: PadSizes) -> dict[str, np.ndarray]:
    """Read, apply the backend and pad one cache file."""
    return sample_from_record(CheckedRecord(path), opts, pads)


@dataclasses.dataclass(frozen=True)
class RecordSizes:
    pt: int
    ray: int
    fps: int


def header_sizes(headers: Mapping[str, schema.ArrayHeader], opts: SampleOptions) -> RecordSizes:
    """Pool lengths one file will yield, from its npy headers (upper bounds for the FPS order)."""
    def length(key: str) -> int:
        return headers[key].shape[0] if key in headers and headers[key].shape else 0

    pt = length("pt_xyz_pool")
    pc_backend = opts.backend.startswith("pointcloud")
    if pc_backend and opts.pt_xyz_key == "pc_xyz":
        pt = length("pc_xyz")
    # Which stored order `backends.resolve_fps_key` can pick (pc orders only on pc backends).
    key = str(opts.pt_fps_key)
    if key.lower() == "auto":
        use_pc = pc_backend and str(opts.pt_xyz_key).startswith("pc_")
        use_pt = True
    else:
        use_pc = pc_backend and key in ("pc_fps_order", "pc_xyz_fps_order")
        use_pt = key == "pt_fps_order" or (pc_backend and key == "pt_xyz_pool_fps_order")
    fps = max(length("pt_fps_order") if use_pt else 0, length("pc_fps_order") if use_pc else 0)
    return RecordSizes(pt=pt, ray=length("ray_o_pool"), fps=min(fps, pt))


def read_keys(opts: SampleOptions) -> tuple[set[str], tuple]:
    """(keys a run with `opts` may read, required key groups) of its backend."""
    required = schema.BACKEND_REQUIRED_KEYS[opts.backend]
    # Only the headers a run depends on (a third of a full cache's keys: ~3x faster).
    keys = {k for g in required for k in ((g,) if isinstance(g, str) else g)}
    keys |= {"pc_xyz", "pt_fps_order", "pc_fps_order", "pt_dist_pool", "pt_dist_pc_pool",
             "pt_dist_udf_pool", "ray_hit_pc_pool", "ray_t_pc_pool", "ray_n_pc_pool"}
    return keys, required


# A file whose pool is this many times its component's median, and longer than OUTLIER_MIN_ROWS,
# is an outlier: with an automatic pad (pt_pool_pad / ray_pool_pad = 0) every sample would be
# padded to it. (Below the floor padding costs little: the default pools are 20000 / 8000.)
OUTLIER_FACTOR = 4
OUTLIER_MIN_ROWS = 1 << 16


def outlier_problems(names: Sequence[str], sizes: Sequence[RecordSizes], opts: SampleOptions,
                     pads: tuple[int, int] = (0, 0)) -> list[str]:
    """Files whose point or ray pool exceeds OUTLIER_FACTOR x the median of `names` (and
    OUTLIER_MIN_ROWS), for each pool whose pad is automatic (0): padding must not follow one
    outlier file."""
    problems: list[str] = []
    pt_key = "pc_xyz" if (opts.backend.startswith("pointcloud")
                          and opts.pt_xyz_key == "pc_xyz") else "pt_xyz_pool"
    for attr, key, pad, field in (("pt", pt_key, pads[0], "pt_pool_pad"),
                                  ("ray", "ray_o_pool", pads[1], "ray_pool_pad")):
        if pad or not sizes:
            continue
        lengths = np.array([getattr(s, attr) for s in sizes])
        median = float(np.median(lengths))
        odd = (lengths > OUTLIER_FACTOR * max(median, 1.0)) & (lengths > OUTLIER_MIN_ROWS)
        for i in np.flatnonzero(odd):
            problems.append(f"{names[i]} [{key}]: declared length {int(lengths[i])} is over "
                            f"{OUTLIER_FACTOR}x the median {median:.0f} of its mix component; "
                            f"with config.data.{field}=0 every sample would be padded to it "
                            f"(remove the file, or set config.data.{field}>={int(lengths[i])} "
                            "to accept it)")
    return problems


def scan_files(paths: Sequence[str], opts: SampleOptions, *, values: bool = False,
               workers: int = 8, pads: tuple[int, int] = (0, 0)) -> tuple[list[str], RecordSizes]:
    """Validate files (header level; `values` adds NaN/Inf and index checks) and find max sizes.

    `pads` = the config's (pt_pool_pad, ray_pool_pad): declared sizes are limited by them or by
    the schema's caps (`schema.size_limits`), and automatic pads refuse outliers
    (`outlier_problems`). Returns (problems, max sizes). Runs on a thread pool: the work is
    file I/O and zlib.
    """
    keys, required = read_keys(opts)
    limits = schema.size_limits(*pads)

    def one(path: str) -> tuple[list[str], RecordSizes]:
        try:
            headers = schema.read_headers(path, keys)
        except CacheError as e:
            return [str(e)], RecordSizes(0, 0, 0)
        probs = schema.check_headers(path, headers, required, limits)
        if values and not probs:
            probs = schema.check_cache_file(path, required, check_values=True,
                                            value_keys=sorted(keys & set(headers)), limits=limits)
        return probs, header_sizes(headers, opts)

    problems: list[str] = []
    with ThreadPoolExecutor(max(1, min(workers, len(paths)))) as ex:
        found = list(ex.map(one, paths))
    sizes = [s for _, s in found]
    for probs, _ in found:
        problems.extend(probs)
    problems += outlier_problems(paths, sizes, opts, pads)
    return problems, max_sizes(sizes)


def max_sizes(sizes: Sequence[RecordSizes]) -> RecordSizes:
    return RecordSizes(max((s.pt for s in sizes), default=0), max((s.ray for s in sizes), default=0),
                       max((s.fps for s in sizes), default=0))
