"""How each metric is sampled and cleaned: expected interval, freshness, feature window, Hampel settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vigil.metrics import MetricName

MINUTE = 60.0
HOUR = 60 * MINUTE

MAX_IMPUTABLE_INTERVALS = 3
"""A gap of at most this many expected sampling intervals may be filled by linear interpolation."""

GAP_FACTOR = 2.0
"""Consecutive samples further apart than this many expected intervals bracket a gap (a missed sample)."""

SeriesKind = Literal["level", "amount"]
"""``level``: a physiological level or rate setting (cleaned, reported as a robust recent value);
``amount``: a quantity per reading such as steps, carbohydrate or an insulin bolus (summed, never filtered)."""


@dataclass(frozen=True)
class MetricProfile:
    """How one metric is sampled and cleaned, and how long its latest value stays usable."""

    kind: SeriesKind
    freshness_seconds: float
    feature_window_seconds: float = HOUR
    expected_interval_seconds: float | None = None  # None: sporadic (BP cuff, insulin), no gap concept
    hampel_half_window_seconds: float | None = None  # None: no outlier filter
    hampel_min_deviation: float = 0.0  # deviations below this are never outliers (in the metric's unit)
    never_filtered_below: float | None = None  # values below this are dangerous: the outlier filter keeps them
    value_window_seconds: float = 0.0  # the reported value is the median of cleaned samples this recent

    @property
    def max_imputable_gap_seconds(self) -> float | None:
        """The longest gap filled by interpolation, or None when the metric has no sampling rhythm."""
        if self.expected_interval_seconds is None:
            return None
        return MAX_IMPUTABLE_INTERVALS * self.expected_interval_seconds


def _wearable_vital(min_deviation: float) -> MetricProfile:
    return MetricProfile(
        kind="level",
        freshness_seconds=HOUR,
        expected_interval_seconds=MINUTE,
        hampel_half_window_seconds=5 * MINUTE,
        hampel_min_deviation=min_deviation,
        value_window_seconds=5 * MINUTE,
    )


def _cuff_pressure() -> MetricProfile:
    return MetricProfile(kind="level", freshness_seconds=24 * HOUR, feature_window_seconds=24 * HOUR)


def _meal_or_bolus() -> MetricProfile:
    return MetricProfile(kind="amount", freshness_seconds=4 * HOUR, feature_window_seconds=4 * HOUR)


METRIC_PROFILES: dict[str, MetricProfile] = {
    MetricName.HEART_RATE: _wearable_vital(min_deviation=5.0),
    MetricName.SPO2: _wearable_vital(min_deviation=2.0),
    MetricName.RESP_RATE: _wearable_vital(min_deviation=3.0),
    MetricName.BODY_TEMP: MetricProfile(
        kind="level",
        freshness_seconds=HOUR,
        expected_interval_seconds=15 * MINUTE,
        hampel_half_window_seconds=45 * MINUTE,
        hampel_min_deviation=0.5,
        value_window_seconds=15 * MINUTE,
    ),
    MetricName.SYSTOLIC_BP: _cuff_pressure(),
    MetricName.DIASTOLIC_BP: _cuff_pressure(),
    MetricName.GLUCOSE: MetricProfile(
        kind="level",
        freshness_seconds=30 * MINUTE,
        expected_interval_seconds=5 * MINUTE,
        hampel_half_window_seconds=15 * MINUTE,
        hampel_min_deviation=15.0,
        never_filtered_below=70.0,  # a low is never hidden as a spike: a false alarm is safer than a missed low
    ),
    MetricName.HRV_RMSSD: MetricProfile(kind="level", freshness_seconds=HOUR),
    MetricName.INSULIN_BASAL: MetricProfile(kind="level", freshness_seconds=24 * HOUR),
    MetricName.OXYGEN_FLOW: MetricProfile(kind="level", freshness_seconds=12 * HOUR),
    MetricName.STEPS: MetricProfile(kind="amount", freshness_seconds=HOUR),
    MetricName.CARBS: _meal_or_bolus(),
    MetricName.INSULIN_BOLUS: _meal_or_bolus(),
}
