"""Host side of classification: read every shape of a split once, pad its pools to fixed
sizes and stack them, so batches are plain array slices and tokenization runs on device.

Per sample (a leading N in front of each): `pt_xyz (P,3) f32`, `pt_dist (P,) f32`,
`pt_count i32`, `pt_fps_order (K,) i32`, `fps_count i32` (0 = compute FPS on the fly),
`ray_o, ray_d, ray_n (R,3) f32`, `ray_hit, ray_t (R,) f32`, `ray_count i32`,
`ray_available bool`, plus `label i32` and `seed u32` (the original's per-path eval seed
`md5(path)[:8] + eval_seed`, from which the MC resample keys are derived).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from nepa3d_jax.data import records
from nepa3d_jax.data.paths import label_from_path, path_seed
from nepa3d_jax.data.records import pad_rows
from nepa3d_jax.data.schema import CacheError

RAY_VEC = ("ray_o", "ray_d", "ray_n")
RAY_SCALAR = ("ray_hit", "ray_t")


@dataclasses.dataclass(frozen=True)
class PoolOptions:
    """Which cached arrays feed the point / ray tokens (the original's dataset options)."""
    backend: str
    pt_xyz_key: str = "pt_xyz_pool"
    pt_dist_key: str = "pt_dist_pool"
    pt_fps_key: str = "auto"
    ablate_point_dist: bool = False
    force_missing_ray: bool = False
    keep_rays: bool = True   # False (n_ray == 0): store a 1-ray placeholder, saving memory


def read_sample(path: str, opts: PoolOptions) -> dict:
    """Unpadded pools of one cache file (`records.read_pools`, the training reader); CacheError
    naming the file (and key) when unusable."""
    pools = records.read_pools(path, records.SampleOptions(
        backend=opts.backend, pt_xyz_key=opts.pt_xyz_key, pt_dist_key=opts.pt_dist_key,
        pt_fps_key=opts.pt_fps_key, ablate_point_dist=opts.ablate_point_dist,
        force_missing_ray=opts.force_missing_ray))
    xyz = np.asarray(pools["pt_xyz"], np.float32)
    if xyz.ndim != 2 or xyz.shape[1] != 3 or xyz.shape[0] == 0:
        raise CacheError(f"{path} [{opts.pt_xyz_key}]: point pool has shape {xyz.shape}, "
                         "expected (P>0, 3)")
    if not np.isfinite(xyz).all():
        raise CacheError(f"{path} [{opts.pt_xyz_key}]: NaN/Inf values")
    return pools


def stack_samples(samples: Sequence[dict], *, pt_pad: int, fps_pad: int, ray_pad: int,
                  keep_rays: bool = True) -> dict[str, np.ndarray]:
    """Pad each sample's pools to the given sizes (`records.pad_rows`: a pool longer than its
    pad is an error) and stack them; FPS orders are cut to `fps_pad` (a prefix is an order)."""
    out: dict[str, list] = {k: [] for k in (
        "pt_xyz", "pt_dist", "pt_count", "pt_fps_order", "fps_count", *RAY_VEC, *RAY_SCALAR,
        "ray_count", "ray_available")}
    for s in samples:
        n = s["pt_xyz"].shape[0]
        out["pt_xyz"].append(pad_rows(np.asarray(s["pt_xyz"]), pt_pad, np.float32, "point pool"))
        out["pt_dist"].append(pad_rows(np.asarray(s["pt_dist"]).reshape(n), pt_pad, np.float32,
                                       "point distances"))
        out["pt_count"].append(n)
        order = s.get("pt_fps_order")
        if order is None:
            out["pt_fps_order"].append(np.zeros((fps_pad,), np.int32))
            out["fps_count"].append(0)
        else:
            order = np.asarray(order, np.int32)[:fps_pad]
            out["pt_fps_order"].append(pad_rows(order, fps_pad, np.int32, "fps order"))
            out["fps_count"].append(min(order.shape[0], fps_pad))
        r = s["ray_o"].shape[0] if keep_rays else 0
        for k in RAY_VEC:
            src = np.asarray(s[k], np.float32).reshape(-1, 3) if keep_rays else np.zeros((0, 3))
            out[k].append(pad_rows(src, ray_pad, np.float32, "ray pool"))
        for k in RAY_SCALAR:
            src = np.asarray(s[k], np.float32).reshape(-1) if keep_rays else np.zeros((0,))
            out[k].append(pad_rows(src, ray_pad, np.float32, "ray pool"))
        out["ray_count"].append(r)
        out["ray_available"].append(bool(s["ray_available"]))
    arrays = {k: np.stack(v) if k not in ("pt_count", "fps_count", "ray_count", "ray_available")
              else np.asarray(v) for k, v in out.items()}
    for k in ("pt_count", "fps_count", "ray_count"):
        arrays[k] = arrays[k].astype(np.int32)
    arrays["ray_available"] = arrays["ray_available"].astype(bool)
    return arrays


def load_splits(files: dict[str, list[str]], label_map: dict[str, int],
                opts: PoolOptions | dict[str, PoolOptions], *, eval_seed: int = 0,
                show_progress: bool = True) -> dict[str, dict]:
    """Reads and stacks every split in `files` (e.g. train/val/test) with shared pad sizes,
    so one compiled step serves them all. `opts` may differ per split (train vs eval
    backend); `keep_rays` must not."""
    by_split = opts if isinstance(opts, dict) else {name: opts for name in files}
    keep_rays = {o.keep_rays for o in by_split.values()}
    if len(keep_rays) != 1:
        raise ValueError("keep_rays must be the same for every split")
    keep_rays = keep_rays.pop()
    raw: dict[str, list[dict]] = {}
    total = sum(len(v) for v in files.values())
    bar = tqdm(total=total, desc="reading caches", disable=not show_progress, leave=False)
    for name, paths in files.items():
        raw[name] = []
        for p in paths:
            raw[name].append(read_sample(p, by_split[name]))
            bar.update(1)
    bar.close()
    every = [s for v in raw.values() for s in v]
    if not every:
        raise ValueError("no samples to load")
    pt_pad = max(s["pt_xyz"].shape[0] for s in every)
    fps_pad = max([np.size(s["pt_fps_order"]) for s in every
                   if s.get("pt_fps_order") is not None] or [1])
    ray_pad = max(s["ray_o"].shape[0] for s in every) if keep_rays else 1
    out = {}
    for name, samples in raw.items():
        arrays = stack_samples(samples, pt_pad=pt_pad, fps_pad=fps_pad, ray_pad=max(ray_pad, 1),
                               keep_rays=keep_rays) if samples else None
        paths = files[name]
        out[name] = dict(
            arrays=arrays, paths=list(paths),
            label=np.asarray([label_map[label_from_path(p)] for p in paths], np.int32),
            seed=np.asarray([path_seed(p, eval_seed) for p in paths], np.uint32))
    return out
