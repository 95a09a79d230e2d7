"""Insulin-on-board and carbs-on-board: the standard action curves, as pure functions of minutes since a dose.

Insulin follows the exponential model used by Loop and OpenAPS for rapid-acting analogues (activity rises to a
peak at ``peak`` minutes and ends at ``duration``); carbohydrate is absorbed at a constant rate over
``absorption`` minutes (Loop's linear model), after a short ``delay``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

INSULIN_DURATION_MIN = 360.0
INSULIN_PEAK_MIN = 75.0
CARB_ABSORPTION_MIN = 180.0
CARB_DELAY_MIN = 10.0


@dataclass(frozen=True)
class InsulinCurve:
    """The exponential insulin action curve (fraction of a unit still to act, and acting per minute)."""

    duration: float = INSULIN_DURATION_MIN
    peak: float = INSULIN_PEAK_MIN

    def _shape(self) -> tuple[float, float, float]:
        tau = self.peak * (1 - self.peak / self.duration) / (1 - 2 * self.peak / self.duration)
        a = 2 * tau / self.duration
        s = 1 / (1 - a + (1 + a) * np.exp(-self.duration / tau))
        return tau, a, s

    def on_board(self, minutes: ArrayLike) -> NDArray[np.float64]:
        """Fraction of a dose given ``minutes`` ago that has not acted yet (1 at 0, 0 from ``duration`` on)."""
        t = np.asarray(minutes, dtype=float)
        tau, a, s = self._shape()
        inside = 1 - s * (1 - a) * ((t**2 / (tau * self.duration * (1 - a)) - t / tau - 1) * np.exp(-t / tau) + 1)
        return np.where(t <= 0, 1.0, np.where(t >= self.duration, 0.0, inside))

    def activity(self, minutes: ArrayLike) -> NDArray[np.float64]:
        """Fraction of a dose acting per minute, ``minutes`` after it was given."""
        t = np.asarray(minutes, dtype=float)
        tau, _, s = self._shape()
        inside = s / tau**2 * t * (1 - t / self.duration) * np.exp(-t / tau)
        return np.where((t <= 0) | (t >= self.duration), 0.0, inside)


@dataclass(frozen=True)
class CarbCurve:
    """Linear carbohydrate absorption after a delay."""

    absorption: float = CARB_ABSORPTION_MIN
    delay: float = CARB_DELAY_MIN

    def on_board(self, minutes: ArrayLike) -> NDArray[np.float64]:
        """Fraction of a meal eaten ``minutes`` ago not yet absorbed."""
        t = np.asarray(minutes, dtype=float)
        return np.clip(1 - (t - self.delay) / self.absorption, 0.0, 1.0)


def total_on_board(curve: InsulinCurve | CarbCurve, dose_minutes: ArrayLike, amounts: ArrayLike, now: float) -> float:
    """Sum of every dose's amount still on board at ``now`` (doses given at ``dose_minutes``, in the same clock)."""
    times, sizes = np.asarray(dose_minutes, dtype=float), np.asarray(amounts, dtype=float)
    given = times <= now
    return float(np.sum(sizes[given] * curve.on_board(now - times[given])))


def absorbed_between(
    curve: InsulinCurve | CarbCurve, dose_minutes: ArrayLike, amounts: ArrayLike, start: float, end: float
) -> float:
    """Amount that acts (insulin) or is absorbed (carbs) between ``start`` and ``end`` from the doses given by ``end``."""
    times, sizes = np.asarray(dose_minutes, dtype=float), np.asarray(amounts, dtype=float)
    given = times <= end
    times, sizes = times[given], sizes[given]
    before = curve.on_board(np.maximum(start - times, 0.0))
    after = curve.on_board(end - times)
    return float(np.sum(sizes * (before - after)))
