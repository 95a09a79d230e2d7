"""Tests for window features: statistics, slopes, glucose trend and the heart-rate baseline."""

import numpy as np
import pytest

from vigil.signal import glucose_trend_per_minute, heart_rate_baseline, least_squares_slope, level_features
from vigil.signal.features import amount_features

MINUTE = 60.0
HOUR = 3600.0


def test_level_features_of_a_known_ramp():
    times = MINUTE * np.arange(61)
    values = 60.0 + times / HOUR * 12.0  # +12 /min per hour
    features = level_features(times, values)
    assert features["count"] == 61
    assert features["min"] == 60.0 and features["max"] == pytest.approx(72.0)
    assert features["mean"] == pytest.approx(66.0)
    assert features["slope_per_hour"] == pytest.approx(12.0)
    assert features["sd"] == pytest.approx(np.std(values, ddof=1))


@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_slope_sign_follows_the_ramp(direction):
    times = MINUTE * np.arange(30)
    values = 90.0 + direction * 0.5 * np.arange(30) + np.random.default_rng(1).normal(0, 1, 30)
    assert np.sign(level_features(times, values)["slope_per_hour"]) == direction


def test_features_a_window_cannot_support_are_left_out():
    assert level_features(np.empty(0), np.empty(0)) == {}
    single = level_features(np.array([0.0]), np.array([80.0]))
    assert single == {"count": 1.0, "mean": 80.0, "min": 80.0, "max": 80.0}
    assert least_squares_slope(np.array([5.0, 5.0]), np.array([1.0, 2.0])) is None


def test_amount_features_sum_the_window():
    assert amount_features(np.array([10.0, 0.0, 25.0])) == {"count": 3.0, "sum": 35.0}
    assert amount_features(np.empty(0)) == {}


@pytest.mark.parametrize("rate", [2.0, -1.5, 0.0])
def test_glucose_trend_on_a_known_ramp(rate):
    times = 5 * MINUTE * np.arange(24)
    values = 150.0 + rate * times / MINUTE
    assert glucose_trend_per_minute(times, values, end=times[-1]) == pytest.approx(rate)


def test_glucose_trend_uses_only_the_last_twenty_minutes():
    times = 5 * MINUTE * np.arange(24)
    values = np.where(times < times[-1] - 20 * MINUTE, 200.0, 180.0 - 1.0 * (times - times[-1]) / MINUTE)
    assert glucose_trend_per_minute(times, values, end=times[-1]) == pytest.approx(-1.0)


def test_glucose_trend_needs_three_recent_samples():
    times = np.array([0.0, 5 * MINUTE, 40 * MINUTE, 45 * MINUTE])
    assert glucose_trend_per_minute(times, np.array([1.0, 2.0, 3.0, 4.0]), end=45 * MINUTE) is None


def test_heart_rate_baseline_excludes_the_last_half_hour():
    times = MINUTE * np.arange(6 * 60)
    values = np.where(times < times[-1] - 30 * MINUTE, 65.0, 120.0)
    assert heart_rate_baseline(times, values, now=times[-1], max_spacing_seconds=3 * MINUTE) == 65.0


def test_heart_rate_baseline_needs_two_hours_of_data():
    times = MINUTE * np.arange(110) + 60 * MINUTE
    now = times[-1] + 31 * MINUTE
    assert heart_rate_baseline(times, np.full(110, 70.0), now, max_spacing_seconds=3 * MINUTE) is None
    sparse = np.arange(0, 10 * HOUR, 30 * MINUTE)  # spans 10 h but each spacing is a gap
    assert heart_rate_baseline(sparse, np.full(sparse.size, 70.0), sparse[-1] + HOUR, 3 * MINUTE) is None
