"""Builders the tests share: synthetic caches, tiny pretraining configs, `main` command lines.

Imported as `from helpers import ...` (pytest puts tests/ on the import path: the folder has no
`__init__.py`); no test edits sys.path.
"""

import os
import pathlib
import subprocess
import sys

import ml_collections
import numpy as np

from nepa3d_jax.config import load_config
from nepa3d_jax.config.loading import fill_defaults

REPO = pathlib.Path(__file__).resolve().parents[1]
CLASSES = ("box", "ball")
STEPS = 4  # steps of `reference_config` runs


# --- caches ------------------------------------------------------------------------------------
def make_arrays(seed=0, P=48, R=12, N=32, G=4, fps=True, pc_rays=True):
    """A small, valid mesh-style cache (every key the original writes)."""
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.uniform(-0.9, 0.9, s).astype(np.float32)  # noqa: E731
    d = dict(
        pc_xyz=f(N, 3), pc_n=f(N, 3), pc_fps_order=rng.permutation(N).astype(np.int32),
        pt_xyz_pool=f(P, 3), pt_dist_pool=np.abs(f(P)), pt_dist_pc_pool=np.abs(f(P)),
        pt_dist_udf_pool=np.abs(f(P)), udf_grid=np.abs(f(G, G, G)).astype(np.float16),
        occ_grid=(rng.random((G, G, G)) > 0.5).astype(np.uint8),
        df_grid=np.array([G], np.int32), df_dilate=np.array([1], np.int32),
        ray_o_pool=f(R, 3), ray_d_pool=f(R, 3), ray_hit_pool=(rng.random(R) > 0.5).astype(
            np.float32), ray_t_pool=np.abs(f(R)), ray_n_pool=f(R, 3))
    if pc_rays:
        d.update(ray_hit_pc_pool=(rng.random(R) > 0.5).astype(np.float32),
                 ray_t_pc_pool=np.abs(f(R)), ray_n_pc_pool=f(R, 3))
    if fps:
        d["pt_fps_order"] = rng.permutation(P)[: P // 2].astype(np.int32)
    return d


def write_cache(path, **kw):
    """Write a synthetic cache; keyword `arrays` replaces the generated dict."""
    arrays = kw.pop("arrays", None) or make_arrays(**kw)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return str(path)


def write_tiny_cache(root: pathlib.Path, per_class: int = 3, pool: int = 48, rays: int = 24,
                     seed: int = 0) -> None:
    """Caches with every key the mesh / udfgrid / pointcloud_noray backends read."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(CLASSES):
        folder = root / "train" / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pc = rng.uniform(-0.5, 0.5, (64, 3)).astype(np.float32)
            pt = rng.uniform(-0.6, 0.6, (pool, 3)).astype(np.float32)
            dist = np.linalg.norm(pt[:, None] - pc[None], axis=-1).min(1).astype(np.float32)
            ray_d = rng.normal(size=(rays, 3)).astype(np.float32)
            ray_d /= np.linalg.norm(ray_d, axis=1, keepdims=True)
            hit = (rng.uniform(size=rays) < 0.6).astype(np.float32)
            normals = rng.normal(size=(rays, 3)).astype(np.float32)
            np.savez(folder / f"{name}_{i}.npz",
                     pc_xyz=pc, pc_n=rng.normal(size=(64, 3)).astype(np.float32),
                     pt_xyz_pool=pt, pt_dist_pool=dist, pt_dist_pc_pool=dist * 1.01,
                     pt_dist_udf_pool=dist * 0.99,
                     ray_o_pool=(-1.5 * ray_d).astype(np.float32), ray_d_pool=ray_d,
                     ray_hit_pool=hit, ray_t_pool=(1.2 * hit).astype(np.float32),
                     ray_n_pool=normals, ray_hit_pc_pool=hit,
                     ray_t_pc_pool=(1.1 * hit).astype(np.float32), ray_n_pc_pool=normals)


# --- configs -------------------------------------------------------------------------------------
def data_cfg(**kw):
    """`config.data` of a loaded pretraining config (every default filled) with small-test values
    and `kw` set; `mix` replaces the defaults' components (never merged with them)."""
    fields = dict(mix={}, mix_config="", mix_num_samples=24, mix_seed=3, replacement=True,
                  pt_xyz_key="pt_xyz_pool", pt_dist_key="pt_dist_pool", pt_fps_key="auto",
                  ablate_point_dist=0, force_missing_ray=False, pt_pool_pad=0, ray_pool_pad=0,
                  validate=True, prefetch=2)
    fields.update(kw)
    return fill_defaults(ml_collections.ConfigDict(dict(data=fields))).data


def sample_options(backend="mesh", **data):
    """The per-sample options pretraining reads `backend` with, from `data_cfg(**data)`."""
    from nepa3d_jax.data import records

    d = data_cfg(**data)
    return records.SampleOptions(
        backend=backend, pt_xyz_key=d.pt_xyz_key, pt_dist_key=d.pt_dist_key or None,
        pt_fps_key=d.pt_fps_key, ablate_point_dist=bool(d.ablate_point_dist),
        force_missing_ray=bool(d.force_missing_ray), voxel_grid=d.voxel_grid,
        voxel_dilate=d.voxel_dilate, voxel_max_steps=d.voxel_max_steps)


def comp(root, backend, weight, split="train"):
    return dict(cache_root=str(root), split=split, backend=backend, weight=weight)


def tiny_config(cache_root, workdir, **train):
    c = load_config(str(REPO / "configs" / "base.py"))
    c.workdir = str(workdir)
    c.data.mix = {
        "mesh": {"cache_root": str(cache_root), "split": "train", "backend": "mesh", "weight": 0.34},
        "udf": {"cache_root": str(cache_root), "split": "train", "backend": "udfgrid", "weight": 0.33},
        "scan": {"cache_root": str(cache_root), "split": "train", "backend": "pointcloud_noray",
                 "weight": 0.33},
    }
    c.data.mix_num_samples = 32
    c.data.n_point, c.data.n_ray, c.data.max_len = 8, 8, -1
    c.data.prefetch = 0
    c.model.d_model, c.model.layers, c.model.heads = 32, 1, 2
    c.train.update(dict(batch_per_device=1, num_steps=3, log_every_steps=1, base_lr=1e-3,
                        lr_scale=False, checkpoint_every_steps=0), **train)
    return fill_defaults(c)  # the components set above get their optional fields


def reference_config(reference_dir, workdir, batch_per_device=1):
    c = load_config(str(REPO / "configs" / "base.py"))
    c.workdir = str(workdir)
    c.data.mix_config = str(reference_dir / "mixA.yaml")  # cache + scan_cache
    c.data.mix_num_samples = 40  # as the YAML (> 0 here overrides the YAML's value)
    c.data.n_point, c.data.n_ray, c.data.max_len = 16, 16, -1
    c.data.prefetch = 0
    c.model.d_model, c.model.layers, c.model.heads = 32, 1, 2
    c.train.update(dict(batch_per_device=batch_per_device, num_steps=STEPS, log_every_steps=1,
                        base_lr=1e-3, lr_scale=False, checkpoint_every_steps=3,
                        keep_checkpoints=2))
    return c


# --- the command line ----------------------------------------------------------------------------
def tiny_pretrain_args(reference_dir, workdir, **train):
    """`main` command line for a tiny pretraining on the reference caches (8 CPU devices)."""
    fields = dict(workdir=workdir, **{
        "data.mix_config": reference_dir / "mixA.yaml", "data.mix_num_samples": 40,
        "data.n_point": 16, "data.n_ray": 16, "data.max_len": -1, "data.prefetch": 0,
        "model.d_model": 32, "model.layers": 1, "model.heads": 2,
        "train.batch_per_device": 1, "train.lr_scale": False},
        **{f"train.{k}": v for k, v in train.items()})
    return ["-m", "nepa3d_jax.main", "--config", "configs/base.py",
            *[f"--config.{k}={v}" for k, v in fields.items()]]


def run_main(args, timeout=420):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=8")
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)
