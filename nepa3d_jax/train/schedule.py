"""Epoch schedules of the original pretrainer: n_point / n_ray curricula and dual-mask ramps.

`n_point_schedule="0:256,10:512"` means 256 points from epoch 0 and 512 from epoch 10 on (the
config's `n_point` applies before the first entry). A change of (n_point, n_ray) is a new
static sequence length, i.e. a second compiled step. The dual-mask window is stated in token
distance for the epoch-0 sizes and scales linearly with the current query count, and the mask
probabilities ramp linearly from 0 over the first `dual_mask_warmup_frac` of all steps.
"""

from __future__ import annotations

import dataclasses

import ml_collections


def parse_schedule(text: str, field: str = "schedule") -> list[tuple[int, int]]:
    """[(epoch, value), ...] sorted by epoch; ValueError naming `field` on a bad item."""
    items = []
    for part in filter(None, (p.strip() for p in str(text or "").split(","))):
        epoch, sep, value = part.partition(":")
        try:
            if not sep:
                raise ValueError(part)
            items.append((int(epoch), int(value)))
        except ValueError as err:
            raise ValueError(f"{field}: bad item {part!r}, expected 'epoch:value' "
                             "(e.g. '0:256,10:512')") from err
    return sorted(items)


def schedule_value(items: list[tuple[int, int]], epoch: int, default: int) -> int:
    value = int(default)
    for start, v in items:
        if epoch >= start:
            value = int(v)
        else:
            break
    return value


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
        self.points = parse_schedule(data.get("n_point_schedule", ""), "data.n_point_schedule")
        self.rays = parse_schedule(data.get("n_ray_schedule", ""), "data.n_ray_schedule")
        self.n_point = int(data.n_point)
        self.n_ray = int(data.n_ray)
        first = self.sizes_points_rays(0)
        self.ref_total = max(1, first[0] + first[1])
        self.window = int(train.get("dual_mask_window", 0))

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
