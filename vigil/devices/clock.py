"""Simulated time: runs `speed` times faster than the wall clock from a start, but never ahead of it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from vigil.timeutil import utc_now


class SimClock:
    """sim_time = start + speed x wall time elapsed, clamped to the wall clock (ingest rejects future readings).
    A start in the past at a high speed catches up with real time, then continues live."""

    def __init__(self, start: datetime, speed: float = 1.0, wall_clock: Callable[[], datetime] = utc_now):
        if speed <= 0:
            raise ValueError("speed: must be positive")
        self.start = start
        self.speed = speed
        self.wall_clock = wall_clock
        self._wall_start = wall_clock()

    def now(self) -> datetime:
        wall_now = self.wall_clock()
        return min(self.start + self.speed * (wall_now - self._wall_start), wall_now)
