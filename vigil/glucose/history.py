"""A patient's recent diabetes data as arrays on one clock (minutes): CGM, announced carbs, boluses, basal rates."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from vigil.glucose.curves import CarbCurve, InsulinCurve, absorbed_between, total_on_board

BASAL_STEP_MIN = 5.0
"""Basal delivery is cut into doses of this many minutes to run through the insulin curve."""


def _empty() -> NDArray[np.float64]:
    return np.zeros(0)


@dataclass
class GlucoseHistory:
    """Time-ordered events in minutes since a reference time; append only, never edited."""

    cgm_minutes: NDArray[np.float64] = field(default_factory=_empty)
    cgm_values: NDArray[np.float64] = field(default_factory=_empty)
    carb_minutes: NDArray[np.float64] = field(default_factory=_empty)
    carb_grams: NDArray[np.float64] = field(default_factory=_empty)
    bolus_minutes: NDArray[np.float64] = field(default_factory=_empty)
    bolus_units: NDArray[np.float64] = field(default_factory=_empty)
    basal_minutes: NDArray[np.float64] = field(default_factory=_empty)
    basal_rates: NDArray[np.float64] = field(default_factory=_empty)
    """Basal rate in U/h set at each time, held until the next one."""

    def add_cgm(self, minute: float, value: float) -> None:
        self.cgm_minutes, self.cgm_values = np.append(self.cgm_minutes, minute), np.append(self.cgm_values, value)

    def add_carbs(self, minute: float, grams: float) -> None:
        self.carb_minutes, self.carb_grams = np.append(self.carb_minutes, minute), np.append(self.carb_grams, grams)

    def add_bolus(self, minute: float, units: float) -> None:
        self.bolus_minutes, self.bolus_units = np.append(self.bolus_minutes, minute), np.append(self.bolus_units, units)

    def set_basal(self, minute: float, rate_u_per_h: float) -> None:
        if len(self.basal_rates) and self.basal_rates[-1] == rate_u_per_h:
            return
        self.basal_minutes = np.append(self.basal_minutes, minute)
        self.basal_rates = np.append(self.basal_rates, rate_u_per_h)

    def recent(self, since: float) -> GlucoseHistory:
        """The events from ``since`` on, with the basal rate already running at ``since``."""
        cgm, carbs, boluses = self.cgm_minutes >= since, self.carb_minutes >= since, self.bolus_minutes >= since
        running = max(int(np.searchsorted(self.basal_minutes, since, side="right")) - 1, 0)
        return GlucoseHistory(
            self.cgm_minutes[cgm],
            self.cgm_values[cgm],
            self.carb_minutes[carbs],
            self.carb_grams[carbs],
            self.bolus_minutes[boluses],
            self.bolus_units[boluses],
            self.basal_minutes[running:],
            self.basal_rates[running:],
        )

    def basal_doses(self, now: float, scheduled_u_per_h: float, since: float) -> tuple[NDArray, NDArray]:
        """Basal delivered above (or, negative, below) the schedule, as doses every ``BASAL_STEP_MIN`` minutes."""
        starts = np.arange(since, now, BASAL_STEP_MIN)
        if len(self.basal_minutes) == 0 or len(starts) == 0:
            return _empty(), _empty()
        index = np.searchsorted(self.basal_minutes, starts, side="right") - 1
        rates = np.where(index >= 0, self.basal_rates[np.maximum(index, 0)], scheduled_u_per_h)
        lengths = np.minimum(BASAL_STEP_MIN, now - starts)
        return starts, (rates - scheduled_u_per_h) * lengths / 60.0

    def insulin_doses(self, now: float, scheduled_u_per_h: float, curve: InsulinCurve) -> tuple[NDArray, NDArray]:
        """Boluses and net basal given within one insulin duration before ``now``."""
        since = now - curve.duration
        recent = (self.bolus_minutes > since) & (self.bolus_minutes <= now)
        basal_times, basal_units = self.basal_doses(now, scheduled_u_per_h, since)
        return (
            np.concatenate([self.bolus_minutes[recent], basal_times]),
            np.concatenate([self.bolus_units[recent], basal_units]),
        )

    def insulin_on_board(self, now: float, scheduled_u_per_h: float, curve: InsulinCurve = InsulinCurve()) -> float:
        """Net insulin still to act (boluses plus basal above the schedule), in units."""
        times, units = self.insulin_doses(now, scheduled_u_per_h, curve)
        return total_on_board(curve, times, units, now)

    def carbs_on_board(self, now: float, curve: CarbCurve = CarbCurve()) -> float:
        """Announced carbohydrate not yet absorbed, in grams."""
        return total_on_board(curve, self.carb_minutes, self.carb_grams, now)

    def insulin_acting(
        self, now: float, start: float, end: float, scheduled_u_per_h: float, curve: InsulinCurve = InsulinCurve()
    ) -> float:
        """Units of the insulin given by ``now`` that act between ``start`` and ``end``."""
        times, units = self.insulin_doses(now, scheduled_u_per_h, curve)
        return absorbed_between(curve, times, units, start, end)

    def carbs_absorbed(self, now: float, start: float, end: float, curve: CarbCurve = CarbCurve()) -> float:
        """Grams of the carbs announced by ``now`` absorbed between ``start`` and ``end``."""
        eaten = self.carb_minutes <= now
        return absorbed_between(curve, self.carb_minutes[eaten], self.carb_grams[eaten], start, end)
