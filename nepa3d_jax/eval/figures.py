"""What every picture shares: the panel size, headless matplotlib (Agg: no display needed) and
an atomic PNG write (a killed run leaves no half-written picture)."""

from __future__ import annotations

PANEL_PX = 300
DPI = 100


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: str) -> str:
    """The figure as PNG at `path`, through the package's one atomic writer."""
    from nepa3d_jax import atomic_io

    with atomic_io.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")  # exact size: no tight bbox
    return path
