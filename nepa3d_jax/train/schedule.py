"""Epoch schedules of the original pretrainer: n_point / n_ray curricula and dual-mask ramps.

Schedule strings (`n_point_schedule="0:256,10:512"`) are parsed by `nepa3d_jax.config.schedule`.
A change of (n_point, n_ray) is a new
static sequence length, i.e. a second compiled step. The dual-mask window is stated in token
distance for the epoch-0 sizes and scales linearly with the current query count, and the mask
probabilities ramp linearly from 0 over the first `dual_mask_warmup_frac` of all steps.
"""

from __future__ import annotations

import dataclasses

import ml_collections

from nepa3d_jax.config.schedule import parse_schedule, schedule_value

__all__ = ["EpochSchedule", "Sizes", "dual_mask_warmup_steps", "parse_schedule", "scaled_window",
           "schedule_value"]


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Static per-epoch sizes of the tokenizer and the dual mask."""
    n_point: int
    n_ray: int
    dual_mask_window: int


class EpochSchedule:
    """Sizes per epoch from `config.data` / `config.train` (the original's rules)."""

    def __init__(self, config: ml_collections.ConfigDict):
        data, train = config.data, config.train
        self.points = parse_schedule(data.n_point_schedule, "data.n_point_schedule")
        self.rays = parse_schedule(data.n_ray_schedule, "data.n_ray_schedule")
        self.n_point = int(data.n_point)
        self.n_ray = int(data.n_ray)
        first = self.sizes_points_rays(0)
        self.ref_total = max(1, first[0] + first[1])
        self.window = int(train.dual_mask_window)

    def sizes_points_rays(self, epoch: int) -> tuple[int, int]:
        return (schedule_value(self.points, epoch, self.n_point),
                schedule_value(self.rays, epoch, self.n_ray))

    def at(self, epoch: int) -> Sizes:
        n_point, n_ray = self.sizes_points_rays(epoch)
        return Sizes(n_point, n_ray, scaled_window(self.window, n_point + n_ray, self.ref_total))


def scaled_window(base: int, cur_total: int, ref_total: int) -> int:
    """Linear window scaling with the query count (the original's default mode)."""
    if base <= 0:
        return int(base)
    return max(1, int(round(base * float(cur_total) / float(max(1, ref_total)))))


def dual_mask_warmup_steps(warmup_frac: float, total_steps: int) -> int:
    return max(1, int(float(warmup_frac) * int(total_steps)))
