"""Pictures of what the study compares (headless: matplotlib Agg, no display needed).

  python -m nepa3d_jax.eval.render tokens --cache data/demo/cache/train/box/box_000.npz \
      --out tokens.png [--n_point 64 --n_ray 32]
      one panel per point order (morton, fps, random): the query points of the token
      sequence coloured by their position in it, joined in sequence order, rays drawn from
      their origin to the hit (or 0.3 long when they miss): what Runs A and C differ by.
  python -m nepa3d_jax.main --config configs/cpac_udf.py --config.ckpt=RUN \
      --config.render_png=cpac_sheet.png [--config.render_shapes=4]
      the CPAC job draws a sheet: per shape (across classes), the true surface and the
      surfaces predicted from the pretrained and the random-init model and by nn_copy, each
      with its mae, then their z = 0 UDF slices with a colour bar
      (`nepa3d_jax.eval.cpac.sheet`).

Pictures are PANEL_PX pixels per panel, so a sheet of r rows and c columns is
(c * PANEL_PX) x (r * PANEL_PX + bands) pixels, the bands holding titles, legends and colour
bars (LEGEND_PX below the token panels; the CPAC sheet's HEAD_PX and BAR_PX).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Sequence

import numpy as np

from nepa3d_jax.eval.figures import DPI, PANEL_PX, pyplot as _plt, save_png as _save

ORDERS = ("morton", "fps", "random")
LEGEND_PX = 90  # the token picture's band below the panels: legend and colour bar


def cpac_sheet(path: str, rows: Sequence[dict[str, Any]], level: float, title: str = "") -> str:
    """rows: {"name", "gt": (G,G,G), "grids": {label: (G,G,G)}, optional "cls", "mae"} -> the
    PNG sheet at `path` (`nepa3d_jax.eval.cpac.sheet`, which also assembles the rows)."""
    from nepa3d_jax.eval.cpac import sheet

    return sheet.draw(path, rows, level, title)


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


def _surface_points(cache_path: str, n: int = 4000) -> np.ndarray | None:
    """The shape's surface samples (`pc_xyz`), drawn faintly so the shape is recognisable."""
    from nepa3d_jax.data.npz import Npz

    z = Npz(cache_path)
    try:
        return np.asarray(z["pc_xyz"])[:n] if "pc_xyz" in z.files else None
    finally:
        z.close()


def _equal_axes(ax, pts: np.ndarray) -> None:
    """Same scale on x, y, z (a torus stays round), framed on the drawn points."""
    lo, hi = pts.min(0), pts.max(0)
    mid, half = (lo + hi) / 2, float(np.max(hi - lo)) / 2 * 1.05 + 1e-6
    ax.set_xlim(mid[0] - half, mid[0] + half)
    ax.set_ylim(mid[1] - half, mid[1] + half)
    ax.set_zlim(mid[2] - half, mid[2] + half)
    ax.set_box_aspect((1, 1, 1))


def token_sheet(cache_path: str, path: str, n_point: int = 64, n_ray: int = 32,
                orders: Sequence[str] = ORDERS) -> str:
    """One 3D panel per point order, same view and scale; a legend and a colour bar below."""
    from matplotlib.lines import Line2D

    plt = _plt()
    legend_px = LEGEND_PX
    fig = plt.figure(figsize=(len(orders) * PANEL_PX / DPI, (PANEL_PX + legend_px) / DPI),
                     dpi=DPI)
    surface = _surface_points(cache_path)
    bottom = legend_px / (PANEL_PX + legend_px)
    scat = None
    for i, order in enumerate(orders):
        tok = token_points(cache_path, order, n_point, n_ray)
        ax = fig.add_axes((i / len(orders), bottom, 1 / len(orders), 0.88 - bottom),
                          projection="3d")
        p = tok["points"]
        if surface is not None:
            ax.scatter(surface[:, 0], surface[:, 1], surface[:, 2], color="tab:blue", s=2,
                       alpha=0.45, depthshade=False)
        ax.plot(p[:, 0], p[:, 1], p[:, 2], color="0.35", lw=0.6)
        scat = ax.scatter(p[:, 0], p[:, 1], p[:, 2], c=np.arange(len(p)), cmap="plasma",
                          s=10, depthshade=False)
        for o, d, n in zip(tok["ray_o"], tok["ray_d"], tok["ray_len"]):
            end = o + n * d
            ax.plot([o[0], end[0]], [o[1], end[1]], [o[2], end[2]], color="tab:green", lw=0.4)
        _equal_axes(ax, p if surface is None else np.concatenate([p, surface]))
        ax.view_init(elev=60, azim=-60)
        ax.set_title(f"point order: {order}\n({len(p)} points, {len(tok['ray_o'])} rays)",
                     fontsize=8)
        ax.set_axis_off()
    handles = [Line2D([], [], color="tab:blue", marker=".", ls="",
                      label="shape surface (the cache's pc_xyz)"),
               Line2D([], [], color="0.35", lw=0.8, label="query points, joined in sequence order"),
               Line2D([], [], color="tab:green", lw=0.8, label="ray: origin to hit (0.3 if missed)")]
    fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.01, 0.0), fontsize=7,
               frameon=False)
    if scat is not None:
        cax = fig.add_axes((0.62, 0.12 * bottom + 0.08, 0.34, 0.05))
        bar = fig.colorbar(scat, cax=cax, orientation="horizontal")
        bar.set_label("query point's position in the sequence (first -> last)", fontsize=7)
        bar.ax.tick_params(labelsize=7)
    out = _save(fig, path)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from nepa3d_jax import cli

    ap = cli.ArgumentParser(prog="python -m nepa3d_jax.eval.render", description="Pictures of token sequences (CPAC surface sheets "
                                 "come from the CPAC job's render_png).")
    sub = ap.add_subparsers(dest="what", required=True)
    t = sub.add_parser("tokens", help="query points by order, rays drawn")
    t.add_argument("--cache", required=True, help="one cache .npz")
    t.add_argument("--out", required=True, help="PNG path")
    t.add_argument("--n_point", type=int, default=64, help="query points drawn")
    t.add_argument("--n_ray", type=int, default=32, help="rays drawn")
    args = ap.parse_args(argv)
    if not os.path.isfile(args.cache):
        ap.error(f"--cache {args.cache}: no such file")
    print(token_sheet(args.cache, args.out, args.n_point, args.n_ray))
    return 0


if __name__ == "__main__":
    sys.exit(main())
