"""Glucose forecasting 30 and 60 minutes ahead: persistence, linear trend and a per-patient ARX (ridge) model.

Every forecaster reads a ``PatientSeries`` (the CGM's 5-minute grid with the insulin and carb effects known at each
time, all in mg/dL) and follows one interface: ``fit(windows)`` on training days, ``personalised(window)`` for one
patient's own training days, and ``predict(series, now_minutes, horizon_minutes)`` for many forecast times at once.
A forecast at ``now`` uses only data up to ``now``; announced carbs and given insulin act into the future, and
their effect over the horizon (from the action curves) is part of what is known at ``now``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from vigil.glucose.body import Prescription
from vigil.glucose.clarke import clarke_ab_share
from vigil.glucose.history import GlucoseHistory

HORIZONS = (30, 60)
STEP_MIN = 5.0
LAG_STEPS = 6
"""Forecasts look back this many CGM steps (30 minutes) of glucose."""
RECENT_MIN = 30.0


@dataclass(frozen=True)
class PatientSeries:
    """One patient's days on the CGM's regular grid: glucose, and at each time the insulin and carb effects in mg/dL
    (insulin units times the correction factor; carb grams times correction factor over carb ratio)."""

    name: str
    history: GlucoseHistory
    prescription: Prescription
    minutes: NDArray[np.float64]
    glucose: NDArray[np.float64]
    effects: dict[str, NDArray[np.float64]] = field(repr=False)

    @classmethod
    def from_history(cls, name: str, history: GlucoseHistory, prescription: Prescription) -> PatientSeries:
        """Raises ValueError when the CGM samples are not every ``STEP_MIN`` minutes without gaps."""
        minutes = history.cgm_minutes
        if len(minutes) < 2 or not np.allclose(np.diff(minutes), STEP_MIN):
            raise ValueError(f"history: CGM samples must be every {STEP_MIN:g} minutes without gaps")
        return cls(name, history, prescription, minutes, history.cgm_values, _effects(history, prescription, minutes))

    def index_of(self, now_minutes: ArrayLike) -> NDArray[np.int64]:
        """Grid positions of ``now_minutes``; raises ValueError for times off the grid or without enough past."""
        now = np.asarray(now_minutes, dtype=float)
        index = np.rint((now - self.minutes[0]) / STEP_MIN).astype(np.int64)
        inside = (index >= LAG_STEPS) & (index < len(self.minutes))
        if not inside.all() or not np.allclose(self.minutes[np.clip(index, 0, len(self.minutes) - 1)], now):
            raise ValueError(f"now_minutes: every forecast time must be a CGM time with {LAG_STEPS} earlier samples")
        return index

    def glucose_at(self, minutes: ArrayLike) -> NDArray[np.float64]:
        return self.glucose[self.index_of(minutes)]


def _effects(history: GlucoseHistory, prescription: Prescription, minutes: NDArray) -> dict[str, NDArray]:
    insulin_scale = prescription.chart_correction_factor
    carb_scale = prescription.chart_correction_factor / prescription.chart_carb_ratio
    basal = prescription.basal_u_per_h

    def insulin(now: float, start: float, end: float) -> float:
        return insulin_scale * history.insulin_acting(now, start, end, basal)

    def carbs(now: float, start: float, end: float) -> float:
        return carb_scale * history.carbs_absorbed(now, start, end)

    columns = {
        "insulin_on_board": [insulin_scale * history.insulin_on_board(t, basal) for t in minutes],
        "carbs_on_board": [carb_scale * history.carbs_on_board(t) for t in minutes],
        "insulin_recent": [insulin(t, t - RECENT_MIN, t) for t in minutes],
        "carbs_recent": [carbs(t, t - RECENT_MIN, t) for t in minutes],
        **{f"insulin_next_{h}": [insulin(t, t, t + h) for t in minutes] for h in HORIZONS},
        **{f"carbs_next_{h}": [carbs(t, t, t + h) for t in minutes] for h in HORIZONS},
    }
    return {name: np.asarray(values, dtype=float) for name, values in columns.items()}


@dataclass(frozen=True)
class DaysWindow:
    """The forecast times of ``series`` from ``start`` to ``end`` minutes (e.g. the training or the held-out days)."""

    series: PatientSeries
    start: float
    end: float

    def origins(self, horizon_minutes: int) -> NDArray[np.float64]:
        """Forecast times whose target (``horizon_minutes`` later) is still inside the window."""
        minutes = self.series.minutes
        first = minutes[0] + LAG_STEPS * STEP_MIN
        return minutes[(minutes >= max(self.start, first)) & (minutes + horizon_minutes < self.end)]

    def targets(self, horizon_minutes: int) -> NDArray[np.float64]:
        return self.series.glucose_at(self.origins(horizon_minutes) + horizon_minutes)


class GlucoseForecaster(Protocol):
    """What the evaluation needs of a forecaster."""

    def fit(self, windows: Sequence[DaysWindow]) -> Self: ...

    def personalised(self, window: DaysWindow) -> GlucoseForecaster: ...

    def predict(self, series: PatientSeries, now_minutes: ArrayLike, horizon_minutes: int) -> NDArray[np.float64]: ...


def check_horizon(horizon_minutes: int) -> None:
    if horizon_minutes not in HORIZONS:
        raise ValueError(f"horizon_minutes: {horizon_minutes} is not one of {HORIZONS}")


class Persistence:
    """Glucose stays where it is now."""

    def fit(self, windows: Sequence[DaysWindow]) -> Self:
        return self

    def personalised(self, window: DaysWindow) -> Persistence:
        return self

    def predict(self, series: PatientSeries, now_minutes: ArrayLike, horizon_minutes: int) -> NDArray[np.float64]:
        check_horizon(horizon_minutes)
        return series.glucose_at(now_minutes)


@dataclass
class LinearTrend:
    """A straight line fitted by least squares to the last ``lookback_minutes`` of CGM, extended to the horizon."""

    lookback_minutes: float = 25.0

    def fit(self, windows: Sequence[DaysWindow]) -> Self:
        return self

    def personalised(self, window: DaysWindow) -> LinearTrend:
        return self

    def predict(self, series: PatientSeries, now_minutes: ArrayLike, horizon_minutes: int) -> NDArray[np.float64]:
        check_horizon(horizon_minutes)
        steps = int(self.lookback_minutes // STEP_MIN)
        if not 1 <= steps <= LAG_STEPS:
            raise ValueError(f"lookback_minutes: must be {STEP_MIN:g} to {LAG_STEPS * STEP_MIN:g}")
        index = series.index_of(now_minutes)
        offsets = -STEP_MIN * np.arange(steps, -1, -1)
        window = series.glucose[index[:, None] + np.arange(-steps, 1)]
        slope, intercept = np.polyfit(offsets, window.T, 1)
        return intercept + slope * horizon_minutes


def arx_features(series: PatientSeries, now_minutes: ArrayLike, horizon_minutes: int) -> NDArray[np.float64]:
    """Per forecast time: glucose, its changes over the last 30 minutes, insulin and carbs on board, their recent
    action and their action over the horizon (all mg/dL)."""
    index = series.index_of(now_minutes)
    glucose = series.glucose[index]
    changes = glucose[:, None] - series.glucose[index[:, None] - np.arange(1, LAG_STEPS + 1)]
    names = (
        "insulin_on_board",
        "carbs_on_board",
        "insulin_recent",
        "carbs_recent",
        f"insulin_next_{horizon_minutes}",
        f"carbs_next_{horizon_minutes}",
    )
    effects = np.column_stack([series.effects[name][index] for name in names])
    return np.column_stack([glucose, changes, effects])


@dataclass
class RidgeARX:
    """Ridge regression of the glucose change over the horizon on ``arx_features``. ``personalised`` fits a second
    ridge on one patient's own training days to what this model leaves unexplained, so the patient's model starts
    from the population's and moves away from it only as far as ``patient_alpha`` lets the patient's data pull."""

    alpha: float = 1.0
    patient_alpha: float = 1.0
    prior: RidgeARX | None = field(default=None, repr=False)
    models: dict[int, Pipeline] = field(default_factory=dict, repr=False)

    def fit(self, windows: Sequence[DaysWindow]) -> Self:
        if not windows:
            raise ValueError("windows: no training days to fit on")
        for horizon in HORIZONS:
            origins = [(w.series, w.origins(horizon)) for w in windows]
            features = np.vstack([arx_features(series, now, horizon) for series, now in origins])
            unexplained = np.concatenate(
                [
                    series.glucose_at(now + horizon) - self._prior_forecast(series, now, horizon)
                    for series, now in origins
                ]
            )
            self.models[horizon] = make_pipeline(StandardScaler(), Ridge(alpha=self.alpha)).fit(features, unexplained)
        return self

    def personalised(self, window: DaysWindow) -> RidgeARX:
        if not self.models:
            raise RuntimeError("RidgeARX is not fitted: call fit first")
        return RidgeARX(alpha=self.patient_alpha, prior=self).fit([window])

    def predict(self, series: PatientSeries, now_minutes: ArrayLike, horizon_minutes: int) -> NDArray[np.float64]:
        check_horizon(horizon_minutes)
        if horizon_minutes not in self.models:
            raise RuntimeError("RidgeARX is not fitted: call fit first")
        features = arx_features(series, now_minutes, horizon_minutes)
        return self._prior_forecast(series, now_minutes, horizon_minutes) + self.models[horizon_minutes].predict(
            features
        )

    def _prior_forecast(
        self, series: PatientSeries, now_minutes: ArrayLike, horizon_minutes: int
    ) -> NDArray[np.float64]:
        """The prior model's forecast, or glucose now when there is no prior."""
        if self.prior is None:
            return series.glucose_at(now_minutes)
        return self.prior.predict(series, now_minutes, horizon_minutes)


def forecast_metrics(reference: ArrayLike, predicted: ArrayLike) -> dict[str, float]:
    """RMSE and MAE in mg/dL, and the Clarke error grid's A+B share, of forecasts against the CGM that followed."""
    truth, guess = np.asarray(reference, dtype=float), np.asarray(predicted, dtype=float)
    error = guess - truth
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "clarke_ab": clarke_ab_share(truth, guess),
        "n": len(truth),
    }
