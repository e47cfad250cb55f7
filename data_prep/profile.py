"""Per-shape cache profile: pool sizes and grid settings, with the original's defaults.

The command-line flags keep the original preprocessors' names so existing job scripts read
the same (`--pc_points 2048 --pt_pool 20000 --ray_pool 8000 ...`).
"""

from __future__ import annotations

import argparse
import dataclasses


@dataclasses.dataclass(frozen=True)
class Profile:
    pc_points: int = 2048
    pt_pool: int = 20000
    ray_pool: int = 8000
    n_views: int = 20
    rays_per_view: int = 400
    pc_grid: int = 64            # occupancy grid of the point-cloud DDA rays
    pc_dilate: int = 1
    pc_max_steps: int = 0        # 0 = 3 * pc_grid
    pc_rays: bool = True         # False: ray_*_pc_pool are zeros
    df_grid: int = 64            # UDF grid side (0 disables the UDF)
    df_dilate: int = 1
    udf: bool = True
    pt_surface_ratio: float = 0.5
    pt_surface_sigma: float = 0.02
    pt_dist_mode: str = "mesh"   # "mesh" (exact) | "kdtree" (nearest surface sample)
    dist_ref_points: int = 8192
    pt_query_chunk: int = 2048
    ray_query_chunk: int = 2048

    def __post_init__(self):
        for name in ("pc_points", "pt_pool", "ray_pool", "n_views"):
            if getattr(self, name) <= 0:
                raise ValueError(f"profile field {name} must be positive, got {getattr(self, name)}")
        if self.pc_rays and self.pc_grid <= 0:
            raise ValueError(f"profile field pc_grid must be positive, got {self.pc_grid}")
        if not 0.0 <= self.pt_surface_ratio <= 1.0:
            raise ValueError(f"profile field pt_surface_ratio must be in [0, 1], "
                             f"got {self.pt_surface_ratio}")
        if self.pt_dist_mode not in ("mesh", "kdtree"):
            raise ValueError(f"profile field pt_dist_mode must be 'mesh' or 'kdtree', "
                             f"got {self.pt_dist_mode!r}")


SMALL = Profile(pc_points=512, pt_pool=2048, ray_pool=512, n_views=8, rays_per_view=64,
                pc_grid=32, df_grid=32)


def add_profile_args(ap: argparse.ArgumentParser, defaults: Profile = Profile()) -> None:
    g = ap.add_argument_group("profile (per-shape cache contents)")
    g.add_argument("--pc_points", type=int, default=defaults.pc_points)
    g.add_argument("--pt_pool", type=int, default=defaults.pt_pool)
    g.add_argument("--ray_pool", type=int, default=defaults.ray_pool)
    g.add_argument("--n_views", type=int, default=defaults.n_views)
    g.add_argument("--rays_per_view", type=int, default=defaults.rays_per_view)
    g.add_argument("--pc_grid", type=int, default=defaults.pc_grid,
                   help="occupancy grid side for point-cloud ray marching")
    g.add_argument("--pc_dilate", type=int, default=defaults.pc_dilate)
    g.add_argument("--pc_max_steps", type=int, default=defaults.pc_max_steps,
                   help="max DDA steps (0 = 3 * pc_grid)")
    g.add_argument("--no_pc_rays", action="store_true", help="write zero point-cloud ray pools")
    g.add_argument("--df_grid", type=int, default=defaults.df_grid,
                   help="UDF grid side (0 disables the UDF)")
    g.add_argument("--df_dilate", type=int, default=defaults.df_dilate)
    g.add_argument("--no_udf", action="store_true", help="skip udf_grid / pt_dist_udf_pool")
    g.add_argument("--pt_surface_ratio", type=float, default=defaults.pt_surface_ratio)
    g.add_argument("--pt_surface_sigma", type=float, default=defaults.pt_surface_sigma)
    g.add_argument("--pt_dist_mode", choices=("mesh", "kdtree"), default=None,
                   help="exact point-to-mesh distance or KD-tree to surface samples "
                        "(default: mesh for modelnet, kdtree for shapenet)")
    g.add_argument("--dist_ref_points", type=int, default=defaults.dist_ref_points)
    g.add_argument("--pt_query_chunk", type=int, default=defaults.pt_query_chunk)
    g.add_argument("--ray_query_chunk", type=int, default=defaults.ray_query_chunk)


def profile_from_args(args: argparse.Namespace, pt_dist_mode_default: str = "mesh") -> Profile:
    return Profile(
        pc_points=args.pc_points, pt_pool=args.pt_pool, ray_pool=args.ray_pool,
        n_views=args.n_views, rays_per_view=args.rays_per_view, pc_grid=args.pc_grid,
        pc_dilate=args.pc_dilate, pc_max_steps=args.pc_max_steps, pc_rays=not args.no_pc_rays,
        df_grid=args.df_grid, df_dilate=args.df_dilate, udf=not args.no_udf,
        pt_surface_ratio=args.pt_surface_ratio, pt_surface_sigma=args.pt_surface_sigma,
        pt_dist_mode=args.pt_dist_mode or pt_dist_mode_default,
        dist_ref_points=args.dist_ref_points, pt_query_chunk=args.pt_query_chunk,
        ray_query_chunk=args.ray_query_chunk)
