"""The forecast Vigil acts on: glucose now, plus the modelled effects of insulin and carbs on board, plus the recent
change they do not explain (retrospective correction, fading over an hour) — Loop's effects model, per patient."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from vigil.glucose.curves import CarbCurve, InsulinCurve
from vigil.glucose.history import GlucoseHistory
from vigil.glucose.therapy import TherapyProfile

RETROSPECTIVE_WINDOW_MIN = 30.0
CORRECTION_FADE_MIN = 60.0
TREND_SAMPLES_MIN = 15.0
HORIZONS = np.arange(5.0, 365.0, 5.0)
"""Every 5 minutes up to the end of insulin action (6 h)."""


@dataclass(frozen=True)
class EffectsForecaster:
    """Predicted glucose at ``now + h`` from the patient's therapy profile and the data up to ``now``."""

    profile: TherapyProfile
    insulin: InsulinCurve = field(default_factory=InsulinCurve)
    carbs: CarbCurve = field(default_factory=CarbCurve)

    def modelled_change(self, history: GlucoseHistory, now: float, start: float, end: float) -> float:
        """Glucose change between ``start`` and ``end`` that the insulin and carbs given by ``now`` explain."""
        p = self.profile
        insulin = history.insulin_acting(now, start, end, p.basal_u_per_h, self.insulin)
        carbs = history.carbs_absorbed(now, start, end, self.carbs)
        return p.isf * (carbs / p.carb_ratio - insulin)

    def unexplained_rate(self, history: GlucoseHistory, now: float) -> float:
        """mg/dL per minute over the last half hour that insulin and carbs do not explain (0 without enough CGM)."""
        start = now - RETROSPECTIVE_WINDOW_MIN
        seen = (history.cgm_minutes >= start - 1e-9) & (history.cgm_minutes <= now)
        if seen.sum() < 4:
            return 0.0
        slope = np.polyfit(history.cgm_minutes[seen], history.cgm_values[seen], 1)[0]
        return float(slope - self.modelled_change(history, now, start, now) / RETROSPECTIVE_WINDOW_MIN)

    def trajectory(self, history: GlucoseHistory, now: float, horizons: NDArray = HORIZONS) -> NDArray[np.float64]:
        """Predicted glucose at each horizon (minutes after ``now``), unclipped; NaN without a recent CGM value."""
        glucose = self.current_glucose(history, now)
        if glucose is None:
            return np.full(len(horizons), np.nan)
        p = self.profile
        ends = now + np.asarray(horizons, dtype=float)
        insulin_times, insulin_units = history.insulin_doses(now, p.basal_u_per_h, self.insulin)
        eaten = history.carb_minutes <= now
        acted = _acted(self.insulin, insulin_times, insulin_units, now, ends)
        absorbed = _acted(self.carbs, history.carb_minutes[eaten], history.carb_grams[eaten], now, ends)
        fade = np.minimum(horizons, CORRECTION_FADE_MIN)
        correction = self.unexplained_rate(history, now) * (fade - fade**2 / (2 * CORRECTION_FADE_MIN))
        return glucose + p.isf * (absorbed / p.carb_ratio - acted) + correction

    def predict(self, history: GlucoseHistory, now: float, horizon: float) -> float:
        return float(self.trajectory(history, now, np.array([horizon]))[0])

    @staticmethod
    def current_glucose(history: GlucoseHistory, now: float) -> float | None:
        """Glucose now from a line through the last 15 minutes of CGM (less sensor noise, no lag); the last value
        if there are fewer than three; None if there is none in the last 10 minutes."""
        recent = (history.cgm_minutes > now - 10.0) & (history.cgm_minutes <= now)
        if not recent.any():
            return None
        window = (history.cgm_minutes > now - TREND_SAMPLES_MIN - 1e-9) & (history.cgm_minutes <= now)
        if window.sum() < 3:
            return float(history.cgm_values[recent][-1])
        _slope, intercept = np.polyfit(history.cgm_minutes[window] - now, history.cgm_values[window], 1)
        return float(intercept)


def _acted(curve: InsulinCurve | CarbCurve, times: NDArray, amounts: NDArray, now: float, ends: NDArray) -> NDArray:
    """Amount acting between ``now`` and each end, for all doses at once."""
    if len(times) == 0:
        return np.zeros(len(ends))
    on_board_now = curve.on_board(now - times)
    later = curve.on_board(ends[:, None] - times[None, :])
    return (amounts[None, :] * (on_board_now[None, :] - later)).sum(axis=1)
