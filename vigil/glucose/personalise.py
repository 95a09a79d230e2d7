"""Personalised therapy settings: insulin sensitivity, carb ratio and basal need estimated from the patient's own
CGM, carbs and insulin by Bayesian linear regression that starts at the population defaults, with uncertainty,
and moves each setting at most a safe step per day.

Over each hour with CGM at both ends, the glucose change is modelled as
``-ISF * insulin acting + (ISF / CR) * carbs absorbed + drift``, where the insulin is counted against the
programmed basal, so the drift measures how far the basal need is from it. Hours the model explains worst
(unannounced meals, sensor faults) are down-weighted before the final fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from vigil.glucose.curves import CarbCurve, InsulinCurve
from vigil.glucose.history import GlucoseHistory
from vigil.glucose.therapy import TherapyProfile

WINDOW_MIN = 60.0
LOOKBACK_MIN = 3 * 24 * 60.0
MIN_WINDOWS = 12
CARB_SLOPE_WIDENING = 1.5
"""The prior on ISF / CR is this much wider (relatively) than the one on CR: it inherits the ISF's doubt too."""
ROBUST_CUTOFF = 2.5
"""Windows with a residual beyond this many robust standard deviations get a weight that shrinks with the excess."""


@dataclass(frozen=True)
class Windows:
    """Per window: insulin acting (U, against the programmed basal), carbs absorbed (g) and the glucose change."""

    insulin: NDArray[np.float64]
    carbs: NDArray[np.float64]
    change: NDArray[np.float64]


def observation_windows(
    history: GlucoseHistory,
    start: float,
    end: float,
    programmed_basal: float,
    insulin: InsulinCurve = InsulinCurve(),
    carbs: CarbCurve = CarbCurve(),
) -> Windows:
    """Consecutive windows between ``start`` and ``end`` with a CGM value within 5 minutes of both ends."""
    rows = []
    for left in np.arange(start, end - WINDOW_MIN + 1e-9, WINDOW_MIN):
        right = left + WINDOW_MIN
        first, last = _glucose_near(history, left), _glucose_near(history, right)
        if first is None or last is None:
            continue
        rows.append(
            (
                history.insulin_acting(right, left, right, programmed_basal, insulin),
                history.carbs_absorbed(right, left, right, carbs),
                last - first,
            )
        )
    values = np.array(rows, dtype=float).reshape(-1, 3)
    return Windows(values[:, 0], values[:, 1], values[:, 2])


def _glucose_near(history: GlucoseHistory, minute: float, tolerance: float = 5.0) -> float | None:
    close = np.abs(history.cgm_minutes - minute) <= tolerance
    return float(history.cgm_values[close].mean()) if close.any() else None


@dataclass(frozen=True)
class Posterior:
    mean: NDArray[np.float64]
    covariance: NDArray[np.float64]


def bayesian_fit(
    design: NDArray, target: NDArray, prior_mean: NDArray, prior_sd: NDArray, noise_sd: float, weights: NDArray
) -> Posterior:
    """Gaussian prior, Gaussian noise: the posterior of the coefficients."""
    precision = np.diag(1 / prior_sd**2) + (design.T * weights) @ design / noise_sd**2
    covariance = np.linalg.inv(precision)
    mean = covariance @ (np.diag(1 / prior_sd**2) @ prior_mean + (design.T * weights) @ target / noise_sd**2)
    return Posterior(mean, covariance)


def robust_weights(residuals: NDArray) -> tuple[float, NDArray]:
    """A robust noise scale (from the median absolute residual) and Huber-style weights."""
    scale = max(1.4826 * float(np.median(np.abs(residuals))), 5.0)
    excess = np.abs(residuals) / (ROBUST_CUTOFF * scale)
    return scale, np.where(excess <= 1, 1.0, 1 / np.maximum(excess, 1e-9))


def estimate_profile(windows: Windows, prior: TherapyProfile, programmed_basal: float) -> TherapyProfile:
    """Posterior ISF, carb ratio and basal need (with standard deviations) from the windows and the prior."""
    if len(windows.change) == 0:
        return prior
    design = np.column_stack([-windows.insulin, windows.carbs, np.full(len(windows.change), WINDOW_MIN / 60)])
    prior_mean = np.array(
        [prior.isf, prior.isf / prior.carb_ratio, prior.isf * (prior.basal_u_per_h - programmed_basal)]
    )
    carb_slope_relative_sd = CARB_SLOPE_WIDENING * prior.carb_ratio_sd / prior.carb_ratio
    prior_sd = np.array(
        [prior.isf_sd, prior.isf / prior.carb_ratio * carb_slope_relative_sd, prior.isf * prior.basal_sd]
    )
    first = bayesian_fit(design, windows.change, prior_mean, prior_sd, 20.0, np.ones(len(windows.change)))
    noise, weights = robust_weights(windows.change - design @ first.mean)
    post = bayesian_fit(design, windows.change, prior_mean, prior_sd, noise, weights)
    (isf, carb_slope, drift), cov = post.mean, post.covariance
    isf, carb_slope = max(isf, prior.isf * 0.2), max(carb_slope, 1e-3)
    carb_ratio = isf / carb_slope
    cr_relative_var = cov[0, 0] / isf**2 + cov[1, 1] / carb_slope**2 - 2 * cov[0, 1] / (isf * carb_slope)
    return TherapyProfile(
        isf,
        carb_ratio,
        max(programmed_basal + drift / isf, 0.0),
        prior.target,
        float(np.sqrt(cov[0, 0])),
        float(carb_ratio * np.sqrt(max(cr_relative_var, 0.0))),
        float(np.sqrt(cov[2, 2]) / isf),
    )


def bounded_step(current: TherapyProfile, proposed: TherapyProfile, max_change: float) -> TherapyProfile:
    """Move each setting towards the proposal by at most ``max_change`` of its current value."""

    def step(old: float, new: float) -> float:
        return float(np.clip(new, old * (1 - max_change), old * (1 + max_change)))

    return proposed.with_values(
        isf=step(current.isf, proposed.isf),
        carb_ratio=step(current.carb_ratio, proposed.carb_ratio),
        basal_u_per_h=step(current.basal_u_per_h, proposed.basal_u_per_h),
    )


@dataclass
class Personaliser:
    """Keeps the population prior (with its standard deviations) and the current settings; ``update`` once a day."""

    prior: TherapyProfile
    max_daily_change: float = 0.10
    """A setting never moves more than this share of its value in a day."""

    def __post_init__(self) -> None:
        self.current = self.prior
        self.programmed_basal = self.prior.basal_u_per_h

    def update(self, history: GlucoseHistory, now: float) -> TherapyProfile:
        windows = observation_windows(history, max(0.0, now - LOOKBACK_MIN), now, self.programmed_basal)
        if len(windows.change) < MIN_WINDOWS:
            return self.current
        proposed = estimate_profile(windows, self.prior, self.programmed_basal)
        self.current = bounded_step(self.current, proposed, self.max_daily_change)
        return self.current
