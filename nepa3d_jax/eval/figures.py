"""What every picture shares: the panel size, headless matplotlib (Agg: no display needed) and
an atomic PNG write (a killed run leaves no half-written picture)."""

from __future__ import annotations

import os

PANEL_PX = 300
DPI = 100


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: str) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp_{os.getpid()}_{os.path.basename(path)}")
    fig.savefig(tmp, dpi=DPI, format="png")  # exact size: no tight bbox
    os.replace(tmp, path)
    return path
