"""Training metrics: TensorBoard event files, a JSON-lines log and the loss-curve PNG.

Only process 0 writes. `metrics/loss.jsonl` survives restarts (appended); rows of steps that
were re-run after a resume replace the earlier ones when the curve is drawn.
"""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any, Mapping

import jax

from nepa3d_jax import atomic_io


class MetricsLog:
    def __init__(self, workdir: str | pathlib.Path):
        self.folder = pathlib.Path(workdir) / "metrics"
        self.primary = jax.process_index() == 0
        self.writer = None
        if self.primary:
            from tensorboardX import SummaryWriter

            self.folder.mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(str(self.folder))

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        if not self.primary:
            return
        for name, value in scalars.items():
            self.writer.add_scalar(f"train/{name}", float(value), int(step))
        atomic_io.append_json_line(self.folder / "loss.jsonl",
                            {"step": int(step), **{k: float(v) for k, v in scalars.items()}})

    def text(self, tag: str, text: str) -> None:
        if self.primary:
            self.writer.add_text(tag, text, 0)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None

    def history(self) -> list[dict[str, Any]]:
        """All logged rows, one per step (the latest write wins)."""
        path = self.folder / "loss.jsonl"
        rows: dict[int, dict[str, Any]] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    rows[int(row["step"])] = row
        return [rows[s] for s in sorted(rows)]

    def plot_loss(self, title: str = "") -> str | None:
        """`metrics/loss_curve.png` of the whole run; returns its path (None if nothing logged)."""
        if not self.primary:
            return None
        rows = self.history()
        if not rows:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        steps, losses = loss_series(rows, "loss")
        ax.plot(steps, losses, lw=1.2, label="loss")
        ref_steps, ref = loss_series(rows, "typepos_only_loss")
        if ref_steps:  # README: the level type and position alone reach (the key diagnostic)
            ax.plot(ref_steps, ref, "--", color="tab:red", lw=1.0,
                    label="typepos_only_loss (type + position alone)")
        if any(v > 0 for v in losses + ref):
            ax.set_yscale("log")  # the loss falls by decades; a linear axis shows a flat line
        ax.set_xlabel("step")
        ax.set_ylabel("loss (log scale)" if ax.get_yscale() == "log" else "loss")
        ax.set_title(title or "pretraining loss")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = self.folder / "loss_curve.png"
        fig.savefig(path)
        plt.close(fig)
        return str(path)


def loss_series(rows: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of `key` over the logged rows that have a finite, positive value (what
    a log axis can show)."""
    pairs = [(int(r["step"]), float(r[key])) for r in rows if r.get(key) is not None]
    pairs = [(st, v) for st, v in pairs if math.isfinite(v) and v > 0]
    return [st for st, _ in pairs], [v for _, v in pairs]
