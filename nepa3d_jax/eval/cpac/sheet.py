"""The CPAC sheet (`render_png`): per shape, the true surface and each predictor's, then the
z = 0 slices of the unsigned distance they predict, on one colour scale with a colour bar.

What keeps the picture honest:
- shapes are picked across classes (`pick_shapes`), not the first few alphabetically;
- every surface is the iso-surface at one level the grid resolves (`display_level`: at least a
  voxel), so the truth is a closed shell, not the sponge a 0.03 level gives on a 24^3 grid;
- `nn_copy` is drawn as what it predicts (each voxel copies its nearest context point's
  distance, `metrics.nn_copy_predict`), so its surface matches its score; `nn_dist` (distance
  to the context points, the mesh evaluation's predictor) is a different thing;
- each panel names the shape's CPAC mae of that predictor (first evaluation seed) when given.
`study` assembles the rows with `sheet_samples` and `sheet_rows`; `draw` writes the PNG.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Sequence

import numpy as np

log = logging.getLogger(__name__)
ORDER = ("pretrained", "random-init", "nn_copy", "nn_dist")
HEAD_PX, BAR_PX = 70, 70  # title band above the panels, colour-bar band below


def display_level(level: float, grid_res: int) -> float:
    """The iso level drawn: `level`, or one voxel (2 / G) when the grid cannot resolve it."""
    return max(float(level), 2.0 / max(int(grid_res), 1))


def shape_class(path: str) -> str:
    """A cache's class: its parent folder (`<root>/<split>/<class>/<id>.npz`)."""
    return os.path.basename(os.path.dirname(os.path.abspath(path))) or "?"


def pick_shapes(paths: Sequence[str], n: int) -> list[int]:
    """Indices of up to `n` shapes taking one per class in turn (classes in order of first
    appearance), so a sheet of n rows shows min(n, classes) different classes."""
    by_class: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        by_class.setdefault(shape_class(p), []).append(i)
    picks: list[int] = []
    queues = [list(v) for v in by_class.values()]
    while len(picks) < min(int(n), len(paths)):
        for q in queues:
            if q and len(picks) < n:
                picks.append(q.pop(0))
    return picks


def sheet_samples(samples: Sequence[Any], n: int, keep_all: bool = False) -> list[Any]:
    """The picked samples first; with `keep_all` (the mesh evaluation needs every shape) the
    others follow in their order."""
    picks = pick_shapes([s.path for s in samples], n)
    if picks:
        log.info("rendering: the CPAC sheet's %d shapes (%s); predicting their grids",
                 len(picks), ", ".join(shape_class(samples[i].path) for i in picks))
    rest = [s for i, s in enumerate(samples) if i not in set(picks)] if keep_all else []
    return [samples[i] for i in picks] + rest


def nn_copy_grid(sample: Any, grid_res: int) -> np.ndarray:
    """(G, G, G): the `nn_copy` baseline at the voxel centres (its prediction, not a distance
    to the context points)."""
    from nepa3d_jax.data.grids import grid_centers
    from nepa3d_jax.eval.cpac.metrics import nn_copy_predict

    q = grid_centers(grid_res).reshape(-1, 3)
    return nn_copy_predict(sample.ctx_xyz, sample.ctx_dist, q).reshape((grid_res,) * 3)


def _shape_mae(run: dict[str, Any] | None, name: str, path: str) -> float | None:
    per = (run or {}).get("_per_shape") or {}
    if name not in per or path not in per.get("paths", []):
        return None
    return float(per[name]["abs_err"][per["paths"].index(path)])


def sheet_rows(grids: Sequence[dict[str, Any]], rnd_grids: Sequence[dict[str, Any]],
               first: dict[str, Any], random_first: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Rows for `draw` from `mesh_eval.run`'s `grids_out` (pretrained pass and random-init
    pass) and the first seed's passes (`udf.run_single` results: samples, per-shape stats)."""
    samples = {os.path.splitext(os.path.basename(s.path))[0]: s for s in first["_samples"]}
    rows = []
    for i, row in enumerate(grids):
        sample = samples.get(row["name"])
        path = sample.path if sample is not None else ""
        labelled: dict[str, np.ndarray] = {}
        mae: dict[str, float] = {}
        if "probe" in row["grids"]:
            labelled["pretrained"] = row["grids"]["probe"]
            mae["pretrained"] = _shape_mae(first, "probe", path)
        if i < len(rnd_grids) and "probe" in rnd_grids[i]["grids"]:
            labelled["random-init"] = rnd_grids[i]["grids"]["probe"]
            mae["random-init"] = _shape_mae(random_first, "probe", path)
        if sample is not None:
            labelled["nn_copy"] = nn_copy_grid(sample, row["gt"].shape[0])
            mae["nn_copy"] = _shape_mae(first, "nn_copy", path)
        elif "nn_dist" in row["grids"]:
            labelled["nn_dist"] = row["grids"]["nn_dist"]
        rows.append({"name": row["name"], "cls": shape_class(path) if path else "",
                     "gt": row["gt"], "grids": labelled,
                     "mae": {k: v for k, v in mae.items() if v is not None}})
    return rows


def _surface(ax, grid: np.ndarray, level: float, colour: str) -> None:
    from nepa3d_jax.eval.cpac import mesh as mesh_lib

    ax.set_xlim(-1, 1), ax.set_ylim(-1, 1), ax.set_zlim(-1, 1)
    ax.set_box_aspect((1, 1, 1))
    ax.set_axis_off()
    try:
        verts, faces = mesh_lib.marching_cubes(grid, level)
    except ValueError:
        ax.text2D(0.5, 0.5, f"no surface\n(nowhere <= {level:.3g})", ha="center", va="center",
                  transform=ax.transAxes, fontsize=8)
        return
    ax.plot_trisurf(verts[:, 0], verts[:, 1], faces, verts[:, 2], color=colour,
                    linewidth=0, antialiased=False, shade=True)


def draw(path: str, rows: Sequence[dict[str, Any]], level: float, title: str = "") -> str:
    """rows: {"name", "gt": (G,G,G), "grids": {label: (G,G,G)}, optional "cls", "mae":
    {label: float}} -> the PNG at `path`: surfaces, then slices, one colour bar."""
    from nepa3d_jax.eval.figures import DPI, PANEL_PX, pyplot as _plt, save_png as _save

    plt = _plt()
    labels = [k for k in ORDER if any(k in r["grids"] for r in rows)]
    labels += [k for r in rows for k in r["grids"] if k not in labels]
    g = rows[0]["gt"].shape[0] if rows else 2
    shown = display_level(level, g)
    n_cols, n_rows = 2 * (1 + len(labels)), max(1, len(rows))
    head_px, bar_px = HEAD_PX, BAR_PX
    fig = plt.figure(figsize=(n_cols * PANEL_PX / DPI, (n_rows * PANEL_PX + head_px + bar_px)
                              / DPI), dpi=DPI)
    height = n_rows * PANEL_PX + head_px + bar_px
    cell_h, cell_w = PANEL_PX / height, 1.0 / n_cols
    vmax = max([float(np.percentile(r["gt"], 99)) for r in rows] or [1.0])
    image = None
    for r, row in enumerate(rows):
        bottom = 1 - (head_px + (r + 1) * PANEL_PX) / height
        panels = [("truth", row["gt"])] + [(k, row["grids"].get(k)) for k in labels]
        name = f"{row['name']} ({row['cls']})" if row.get("cls") else row["name"]
        for c, (label, grid) in enumerate(panels):
            mae = (row.get("mae") or {}).get(label)
            text = f"{name}\ntruth" if c == 0 else (
                f"{label}\nmae {mae:.4f}" if mae is not None else label)
            ax = fig.add_axes((c * cell_w, bottom, cell_w, cell_h * 0.86), projection="3d")
            if grid is None:
                ax.set_axis_off()
                continue
            _surface(ax, grid, shown, "#c9a26b" if c == 0 else "#8fb3d9")
            ax.set_title(text, fontsize=8)
            ax2 = fig.add_axes(((len(panels) + c) * cell_w + 0.1 * cell_w, bottom + 0.08 * cell_h,
                                0.8 * cell_w, 0.7 * cell_h))
            sl = grid[:, :, grid.shape[2] // 2]
            image = ax2.imshow(sl.T, origin="lower", extent=(-1, 1, -1, 1), vmin=0, vmax=vmax,
                               cmap="viridis")
            ax2.contour(np.linspace(-1, 1, sl.shape[0]), np.linspace(-1, 1, sl.shape[1]), sl.T,
                        levels=[shown], colors="white", linewidths=0.8)
            ax2.set_title(f"{'truth' if c == 0 else label}: UDF at z = 0", fontsize=8)
            ax2.set_xticks([]), ax2.set_yticks([])
    if image is not None:
        cax = fig.add_axes((0.3, 0.55 * bar_px / height, 0.4, 0.2 * bar_px / height))
        bar = fig.colorbar(image, cax=cax, orientation="horizontal")
        bar.set_label("unsigned distance (slices; white line: the drawn level)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    fig.suptitle(
        (title or "CPAC-UDF: true and predicted unsigned distance per shape") +
        f"\nsurfaces: iso-level {shown:.3g} on a {g}^3 grid"
        + (f" (mesh_mc_level {level:.3g} is finer than a voxel)" if shown > level else "")
        + "; mae: the shape's CPAC mae, first evaluation seed", fontsize=10,
        y=1 - 0.08 * head_px / height, va="top")
    out = _save(fig, path)
    plt.close(fig)
    log.info("rendering: wrote %s", out)
    return out
