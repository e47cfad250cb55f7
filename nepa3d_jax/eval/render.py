"""Pictures of what the study compares (headless: matplotlib Agg, no display needed).

  python -m nepa3d_jax.eval.render tokens --cache data/demo/cache/train/box/box_000.npz \
      --out tokens.png [--n-point 64 --n-ray 32]
      one panel per point order (morton, fps, random): the query points of the token
      sequence coloured by their position in it, joined in sequence order, rays drawn from
      their origin to the hit (or 0.3 long when they miss): what Runs A and C differ by.
  python -m nepa3d_jax.main --config configs/cpac_udf.py --config.ckpt=RUN \
      --config.render_png=cpac_sheet.png [--config.render_shapes=4]
      the CPAC job draws a sheet: per shape, the true surface, the probe's surface (marching
      cubes at mesh_mc_level) for the pretrained and the random-init model, and the z = 0
      slices of the true and predicted UDF (`cpac_sheet` below).

Sheets are PANEL_PX pixels per panel, so a sheet of r rows and c columns is
(c * PANEL_PX) x (r * PANEL_PX) pixels.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

import numpy as np

from nepa3d_jax import atomic_io

PANEL_PX = 300
DPI = 100
ORDERS = ("morton", "fps", "random")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> str:
    with atomic_io.atomic_path(path) as tmp:  # the package's writer: temp file, then rename
        fig.savefig(tmp, dpi=DPI, format="png")  # exact size: no tight bbox
    return path


def _mesh_axis(ax, mesh, title: str) -> None:
    ax.set_title(title, fontsize=8)
    ax.set_xlim(-1, 1), ax.set_ylim(-1, 1), ax.set_zlim(-1, 1)
    ax.set_axis_off()
    if mesh is None:
        ax.text2D(0.5, 0.5, "no surface", ha="center", transform=ax.transAxes, fontsize=8)
        return
    verts, faces = mesh
    ax.plot_trisurf(verts[:, 0], verts[:, 1], faces, verts[:, 2], color="#8fb3d9",
                    linewidth=0, antialiased=False, shade=True)


def cpac_sheet(path: str, rows: Sequence[dict[str, Any]], level: float) -> str:
    """rows: {"name", "gt": (G,G,G), "grids": {label: (G,G,G)}} -> PNG sheet at `path`."""
    from nepa3d_jax.eval.cpac import mesh as mesh_lib

    plt = _plt()
    labels = list(rows[0]["grids"]) if rows else []
    n_cols = 1 + len(labels) + 2
    fig = plt.figure(figsize=(n_cols * PANEL_PX / DPI, max(1, len(rows)) * PANEL_PX / DPI),
                     dpi=DPI)
    for r, row in enumerate(rows):
        panels = [("truth", row["gt"])] + [(k, row["grids"][k]) for k in labels]
        for c, (label, grid) in enumerate(panels):
            ax = fig.add_subplot(len(rows), n_cols, r * n_cols + c + 1, projection="3d")
            try:
                m = mesh_lib.marching_cubes(grid, level)
            except ValueError:
                m = None
            _mesh_axis(ax, m, f"{row['name']}: {label}" if c == 0 else label)
        g = row["gt"].shape[0] // 2
        vmax = float(np.max(row["gt"][:, :, g]))
        first = row["grids"][labels[0]] if labels else row["gt"]
        for c, (label, img) in enumerate((("true UDF z=0", row["gt"][:, :, g]),
                                          (f"{labels[0] if labels else ''} UDF z=0",
                                           first[:, :, g])), start=len(panels)):
            ax = fig.add_subplot(len(rows), n_cols, r * n_cols + c + 1)
            ax.imshow(img.T, origin="lower", extent=(-1, 1, -1, 1), vmin=0, vmax=vmax,
                      cmap="viridis")
            ax.contour(np.linspace(-1, 1, img.shape[0]), np.linspace(-1, 1, img.shape[1]),
                       img.T, levels=[level], colors="white", linewidths=0.8)
            ax.set_title(label, fontsize=8)
            ax.set_xticks([]), ax.set_yticks([])
    fig.subplots_adjust(left=0.01, right=0.99, top=0.94, bottom=0.01, wspace=0.05, hspace=0.15)
    out = _save(fig, path)
    plt.close(fig)
    return out


def token_points(cache_path: str, order: str, n_point: int, n_ray: int, seed: int = 0
                 ) -> dict[str, np.ndarray]:
    """Query points (in sequence order) and rays of one shape's token sequence."""
    import jax

    from nepa3d_jax.data.npz import Npz
    from nepa3d_jax.tokenizer import TYPE_A_RAY, TYPE_Q_POINT, TYPE_Q_RAY, build_sequence

    z = Npz(cache_path)
    try:
        pools = {k: np.asarray(z[k]) for k in ("pt_xyz_pool", "pt_dist_pool") if k in z.files}
        ray_keys = ("ray_o_pool", "ray_d_pool", "ray_hit_pool", "ray_t_pool", "ray_n_pool")
        rays = [np.asarray(z[k]) if (n_ray and k in z.files) else None for k in ray_keys]
    finally:
        z.close()
    if "pt_xyz_pool" not in pools or "pt_dist_pool" not in pools:
        raise ValueError(f"{cache_path}: needs pt_xyz_pool and pt_dist_pool to draw tokens")
    n_ray = n_ray if all(r is not None for r in rays) else 0
    feat, tid = build_sequence(pools["pt_xyz_pool"], pools["pt_dist_pool"], *rays,
                               n_point=n_point, n_ray=n_ray, qa_tokens=True,
                               pt_sample_mode="fps", point_order_mode=order,
                               key=jax.random.key(seed))
    feat, tid = np.asarray(feat), np.asarray(tid)
    rq, ra = feat[tid == TYPE_Q_RAY], feat[tid == TYPE_A_RAY]
    length = np.full(len(rq), 0.3, np.float32)
    if len(ra) == len(rq):  # answers: t (slot 9) where the ray hits (slot 11)
        length = np.where(ra[:, 11] > 0.5, ra[:, 9], length)
    return {"points": feat[tid == TYPE_Q_POINT, 0:3], "ray_o": rq[:, 3:6], "ray_d": rq[:, 6:9],
            "ray_len": length}


def token_sheet(cache_path: str, path: str, n_point: int = 64, n_ray: int = 32,
                orders: Sequence[str] = ORDERS) -> str:
    plt = _plt()
    fig = plt.figure(figsize=(len(orders) * PANEL_PX / DPI, PANEL_PX / DPI), dpi=DPI)
    for i, order in enumerate(orders):
        tok = token_points(cache_path, order, n_point, n_ray)
        ax = fig.add_subplot(1, len(orders), i + 1, projection="3d")
        p = tok["points"]
        ax.plot(p[:, 0], p[:, 1], p[:, 2], color="0.6", lw=0.5)
        ax.scatter(p[:, 0], p[:, 1], p[:, 2], c=np.arange(len(p)), cmap="plasma", s=6)
        for o, d, n in zip(tok["ray_o"], tok["ray_d"], tok["ray_len"]):
            end = o + n * d
            ax.plot([o[0], end[0]], [o[1], end[1]], [o[2], end[2]], color="tab:green", lw=0.4)
        ax.set_title(f"point order: {order}\n({len(p)} points, {len(tok['ray_o'])} rays)",
                     fontsize=8)
        ax.set_axis_off()
    fig.subplots_adjust(left=0.0, right=1.0, top=0.85, bottom=0.0, wspace=0.0)
    out = _save(fig, path)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Pictures of token sequences (CPAC surface sheets "
                                 "come from the CPAC job's render_png).")
    sub = ap.add_subparsers(dest="what", required=True)
    t = sub.add_parser("tokens", help="query points by order, rays drawn")
    t.add_argument("--cache", required=True, help="one cache .npz")
    t.add_argument("--out", required=True, help="PNG path")
    t.add_argument("--n-point", type=int, default=64)
    t.add_argument("--n-ray", type=int, default=32)
    args = ap.parse_args(argv)
    if not os.path.isfile(args.cache):
        ap.error(f"--cache {args.cache}: no such file")
    print(token_sheet(args.cache, args.out, args.n_point, args.n_ray))
    return 0


if __name__ == "__main__":
    sys.exit(main())
