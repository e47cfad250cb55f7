"""The run lock's timing rule, owned below the config layer so that config validation and the
lock (`nepa3d_jax.checkpoint.lock`) read one fact: how often a holder beats and how long a
silent lock must be before another host may take it over."""

from __future__ import annotations

HEARTBEAT_S = 60.0
# A lock on another host counts as stale only after its holder missed several heartbeats
# (the loop refreshes at logged steps, so a beat can come late): `lock_stale_hours` below this
# would let a second run take over the lock of a live one.
MIN_STALE_S = 5 * HEARTBEAT_S


def check_stale_hours(stale_hours: float, field: str = "train.lock_stale_hours") -> str | None:
    """Why `stale_hours` is unusable (None: fine); the message names the config field."""
    if not stale_hours * 3600.0 >= MIN_STALE_S:  # also NaN
        return (f"{field}={stale_hours:g} must be at least {MIN_STALE_S / 3600:.4g} h "
                f"({MIN_STALE_S:.0f} s, {MIN_STALE_S / HEARTBEAT_S:.0f} lock heartbeats of "
                f"{HEARTBEAT_S:.0f} s): a shorter one takes over the lock of a live run")
    return None
