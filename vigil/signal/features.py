"""Pure window features on cleaned samples: summary statistics, trends, and the heart-rate baseline.

Times are float seconds since the Unix epoch, sorted ascending. Features that a window cannot
support (a slope from one sample, a baseline from too little data) are left out, never NaN.
"""

from __future__ import annotations

import numpy as np

from vigil.signal.cleaning import FloatArray
from vigil.signal.gaps import observed_duration
from vigil.signal.profiles import HOUR, MINUTE

GLUCOSE_TREND_WINDOW_SECONDS = 20 * MINUTE
GLUCOSE_TREND_MIN_SAMPLES = 3

BASELINE_WINDOW_SECONDS = 24 * HOUR
BASELINE_EXCLUDES_LAST_SECONDS = 30 * MINUTE
BASELINE_MIN_OBSERVED_SECONDS = 2 * HOUR
RECENT_HEART_RATE_WINDOW_SECONDS = 15 * MINUTE


def in_window(times: FloatArray, values: FloatArray, start: float, end: float) -> tuple[FloatArray, FloatArray]:
    """The samples with ``start <= time <= end``."""
    first = np.searchsorted(times, start, side="left")
    last = np.searchsorted(times, end, side="right")
    return times[first:last], values[first:last]


def least_squares_slope(times: FloatArray, values: FloatArray) -> float | None:
    """The least-squares slope in value units per second, or None with fewer than two distinct times."""
    if times.size < 2:
        return None
    centred = times - times.mean()
    spread = float(np.dot(centred, centred))
    if spread == 0.0:
        return None
    return float(np.dot(centred, values - values.mean()) / spread)


def level_features(times: FloatArray, values: FloatArray) -> dict[str, float]:
    """Mean, min, max, standard deviation, least-squares slope per hour and count of a window."""
    if values.size == 0:
        return {}
    features = {
        "count": float(values.size),
        "mean": float(values.mean()),
        "min": float(values.min()),
        "max": float(values.max()),
    }
    if values.size >= 2:
        features["sd"] = float(values.std(ddof=1))
    slope = least_squares_slope(times, values)
    if slope is not None:
        features["slope_per_hour"] = slope * HOUR
    return features


def amount_features(values: FloatArray) -> dict[str, float]:
    """Total and count of per-reading amounts (steps, grams of carbohydrate, insulin units)."""
    if values.size == 0:
        return {}
    return {"count": float(values.size), "sum": float(values.sum())}


def trend_per_minute(
    times: FloatArray, values: FloatArray, end: float, window_seconds: float, min_samples: int
) -> float | None:
    """The least-squares slope per minute over the last ``window_seconds`` before ``end``."""
    recent_times, recent_values = in_window(times, values, end - window_seconds, end)
    if recent_times.size < min_samples:
        return None
    slope = least_squares_slope(recent_times, recent_values)
    return None if slope is None else slope * MINUTE


def glucose_trend_per_minute(times: FloatArray, values: FloatArray, end: float) -> float | None:
    """Glucose rate of change in mg/dL per minute over the last 20 minutes (at least 3 samples)."""
    return trend_per_minute(times, values, end, GLUCOSE_TREND_WINDOW_SECONDS, GLUCOSE_TREND_MIN_SAMPLES)


def recent_median(times: FloatArray, values: FloatArray, end: float, window_seconds: float) -> float | None:
    """The median of the samples in the last ``window_seconds`` before ``end``, or None if there are none."""
    _, recent_values = in_window(times, values, end - window_seconds, end)
    return float(np.median(recent_values)) if recent_values.size else None


def heart_rate_baseline(times: FloatArray, values: FloatArray, now: float, max_spacing_seconds: float) -> float | None:
    """Median heart rate over the 24 h before ``now`` excluding the last 30 min.

    None unless the samples cover at least 2 h (spacings above ``max_spacing_seconds`` do not count).
    """
    window_times, window_values = in_window(
        times, values, now - BASELINE_WINDOW_SECONDS, now - BASELINE_EXCLUDES_LAST_SECONDS
    )
    if observed_duration(window_times, max_spacing_seconds) < BASELINE_MIN_OBSERVED_SECONDS:
        return None
    return float(np.median(window_values))
