"""Pure per-metric summaries for a snapshot: the cleaned recent value, window features and gap state."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vigil.metrics import MetricName
from vigil.signal.cleaning import FloatArray, hampel_filter, time_windows
from vigil.signal.features import (
    RECENT_HEART_RATE_WINDOW_SECONDS,
    amount_features,
    glucose_trend_per_minute,
    in_window,
    level_features,
    recent_median,
)
from vigil.signal.gaps import coverage_fraction, regular_grid
from vigil.signal.profiles import HOUR, MetricProfile


@dataclass(frozen=True)
class LatestValue:
    """A metric's robust recent value and the time of the latest sample behind it."""

    value: float
    time: float


@dataclass(frozen=True)
class MetricSummary:
    """What a snapshot reports for one metric; ``latest`` is None when the latest sample is stale."""

    latest: LatestValue | None = None
    features: dict[str, float] = field(default_factory=dict)
    in_gap: bool | None = None  # None: the metric has no sampling rhythm, so no gap concept


def context_start(profile: MetricProfile, now: float) -> float:
    """The earliest sample time a summary at ``now`` needs, including the outlier filter's margin."""
    lookback = max(
        profile.feature_window_seconds,
        profile.freshness_seconds + profile.value_window_seconds,
        RECENT_HEART_RATE_WINDOW_SECONDS,
    )
    return now - lookback - (profile.hampel_half_window_seconds or 0.0)


def clean_levels(times: FloatArray, values: FloatArray, profile: MetricProfile) -> FloatArray:
    """The values with Hampel outliers replaced by their window median (unchanged if the profile has no filter),
    except values below the profile's ``never_filtered_below``, which are always kept."""
    if profile.hampel_half_window_seconds is None:
        return values
    windows = time_windows(times, profile.hampel_half_window_seconds)
    filtered = hampel_filter(values, windows, min_deviation=profile.hampel_min_deviation)
    if profile.never_filtered_below is None:
        return filtered.values
    return np.where(values < profile.never_filtered_below, values, filtered.values)


def previous_value(times: FloatArray, cleaned: FloatArray, profile: MetricProfile) -> float | None:
    """The cleaned sample before the latest one, if it is no more than the longest imputable gap before it."""
    max_gap = profile.max_imputable_gap_seconds
    if times.size < 2 or max_gap is None or times[-1] - times[-2] > max_gap:
        return None
    return float(cleaned[-2])


def robust_latest(times: FloatArray, cleaned: FloatArray, now: float, profile: MetricProfile) -> LatestValue | None:
    """The median of the cleaned values in the latest sample's value window, timed at that sample.

    None when there are no samples or the latest one is older than the freshness limit.
    """
    if times.size == 0 or now - times[-1] > profile.freshness_seconds:
        return None
    latest_time = float(times[-1])
    value = recent_median(times, cleaned, latest_time, profile.value_window_seconds)
    return None if value is None else LatestValue(value, latest_time)


def in_gap(times: FloatArray, now: float, profile: MetricProfile) -> bool | None:
    """Whether the silence since the last sample is longer than the longest gap we would impute."""
    max_gap = profile.max_imputable_gap_seconds
    if max_gap is None:
        return None
    return times.size == 0 or now - float(times[-1]) > max_gap


def window_coverage(times: FloatArray, now: float, profile: MetricProfile) -> float | None:
    """The share of the feature window's expected samples that are measured or safely imputable."""
    interval, max_gap = profile.expected_interval_seconds, profile.max_imputable_gap_seconds
    if interval is None or max_gap is None:
        return None
    grid = regular_grid(now - profile.feature_window_seconds, now, interval)
    return coverage_fraction(times, grid, max_gap)


def metric_specific_features(
    metric: str, times: FloatArray, cleaned: FloatArray, now: float, profile: MetricProfile
) -> dict[str, float]:
    """Features only some metrics have: the glucose trend and previous reading, the recent heart-rate median."""
    extra: dict[str, float | None] = {}
    if metric == MetricName.GLUCOSE:
        extra["trend_per_min"] = glucose_trend_per_minute(times, cleaned, now)
        extra["previous"] = previous_value(times, cleaned, profile)
    if metric == MetricName.HEART_RATE:
        extra["recent_median"] = recent_median(times, cleaned, now, RECENT_HEART_RATE_WINDOW_SECONDS)
    return {name: value for name, value in extra.items() if value is not None}


def window_features(
    metric: str, times: FloatArray, values: FloatArray, now: float, profile: MetricProfile
) -> dict[str, float]:
    """The metric's features over its feature window ending at ``now``; empty when the window is empty."""
    window_times, window_values = in_window(times, values, now - profile.feature_window_seconds, now)
    if profile.kind == "amount":
        features = amount_features(window_values)
    else:
        features = level_features(window_times, window_values)
        features.update(metric_specific_features(metric, times, values, now, profile))
    coverage = window_coverage(times, now, profile)
    if features and coverage is not None:
        features["coverage"] = coverage
    if features:
        features["window_hours"] = profile.feature_window_seconds / HOUR
    return features


def summarise_metric(
    metric: str, times: FloatArray, values: FloatArray, now: float, profile: MetricProfile
) -> MetricSummary:
    """Clean one metric's samples (levels only) and summarise them as of ``now``."""
    cleaned = values if profile.kind == "amount" else clean_levels(times, values, profile)
    return MetricSummary(
        latest=robust_latest(times, cleaned, now, profile),
        features=window_features(metric, times, cleaned, now, profile),
        in_gap=in_gap(times, now, profile),
    )
