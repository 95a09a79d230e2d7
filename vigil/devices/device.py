"""The common shape of a simulated device: a seeded measuring step on a fixed grid of clock minutes."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter
from typing import Any, ClassVar

import numpy as np

from vigil.devices.physiology import Physiology
from vigil.devices.seeding import rng_for


def next_grid_time(time: datetime, step_minutes: int) -> datetime:
    """The first whole multiple of `step_minutes` since the epoch at or after `time` (UTC)."""
    step_seconds = 60 * step_minutes
    return datetime.fromtimestamp(math.ceil(time.timestamp() / step_seconds) * step_seconds, UTC)


class SimulatedDevice(ABC):
    """A device that measures its patient every `step_minutes` on the clock grid and remembers how far it got,
    so that advancing in any number of pieces produces the same readings."""

    kind: ClassVar[str]
    step_minutes: ClassVar[int] = 1

    def __init__(self, physiology: Physiology, start: datetime, seed_parts: tuple[int | str, ...]):
        self.physiology = physiology
        self.profile = physiology.profile
        self.rng = rng_for(*seed_parts)
        self._seed_parts = seed_parts
        self._next_time = next_grid_time(start, self.step_minutes)

    def advance(self, until: datetime) -> list[dict[str, Any]]:
        """Every reading measured after the previous call, up to and including `until`, in seq order."""
        readings: list[dict[str, Any]] = []
        while self._next_time <= until:
            readings += sorted(self.measure(self._next_time), key=itemgetter("seq"))
            self._next_time += timedelta(minutes=self.step_minutes)
        return readings

    def daily_rng(self, day: date) -> np.random.Generator:
        """A random stream of its own for one calendar day (schedules), independent of how far we advanced."""
        return rng_for(*self._seed_parts, "day", day.toordinal())

    @abstractmethod
    def measure(self, time: datetime) -> list[dict[str, Any]]:
        """The readings this device produces at one step of its grid (often none)."""
