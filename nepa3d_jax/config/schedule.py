"""The original's epoch-schedule strings, parsed in one place: `"0:256,10:512"`.

`n_point_schedule="0:256,10:512"` means 256 from epoch 0 and 512 from epoch 10 on (the config's
`n_point` applies before the first entry). Derived values, validation, the training loop's
epoch sizes and the `.pt` import all read schedules through these functions.

`LR_SCHEDULES` lists the learning-rate schedules `train.lr_schedule` accepts (the optimizer
builds them, validation checks the field against this list).
"""

from __future__ import annotations

LR_SCHEDULES = ("constant", "cosine")


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
    """The value in force at `epoch` (`default` before the first entry)."""
    value = int(default)
    for start, v in items:
        if epoch >= start:
            value = int(v)
        else:
            break
    return value


def schedule_max(text: str, default: int, field: str = "schedule") -> int:
    """Largest value the schedule ever asks for (`default` included: it applies first)."""
    return max([int(default)] + [v for _, v in parse_schedule(text, field)])
