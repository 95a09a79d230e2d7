"""Tests for the pure cleaning functions: range check, windows, rolling median and the Hampel filter."""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.signal import (
    hampel_filter,
    plausible_mask,
    rolling_median,
    sample_windows,
    time_windows,
)

MINUTE = 60.0
HR_MIN_DEVIATION = 5.0


def synthetic_heart_rate(seed: int = 7, minutes: int = 24 * 60) -> tuple[np.ndarray, np.ndarray]:
    """One sample a minute: a 68/min baseline, an 8/min circadian swing and N(0, 2) noise."""
    rng = np.random.default_rng(seed)
    times = 1.8e9 + MINUTE * np.arange(minutes)
    circadian = 8.0 * np.sin(2 * np.pi * (times - 4 * 3600) / 86_400)
    return times, 68.0 + circadian + rng.normal(0.0, 2.0, minutes)


def inject_spikes(values: np.ndarray, count: int, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Add +/-25..60 /min spikes at isolated random positions; returns the new values and their indices."""
    rng = np.random.default_rng(seed)
    candidates = np.arange(10, values.size - 10, 12)  # spikes at least 12 samples apart
    indices = np.sort(rng.choice(candidates, size=count, replace=False))
    spiked = values.copy()
    spiked[indices] += rng.choice([-1.0, 1.0], count) * rng.uniform(25.0, 60.0, count)
    return spiked, indices


def test_plausible_mask_uses_catalogue_limits_and_quality_flags():
    values = np.array([24.0, 25.0, 250.0, 251.0, np.nan, 80.0])
    flagged = np.array([False, False, False, False, False, True])
    assert plausible_mask("heart_rate", values).tolist() == [False, True, True, False, False, True]
    assert plausible_mask("heart_rate", values, flagged).tolist() == [False, True, True, False, False, False]


def test_time_windows_cover_samples_within_half_width():
    times = np.array([0.0, 60.0, 120.0, 400.0, 460.0])
    windows = time_windows(times, half_width_seconds=90.0)
    assert windows.starts.tolist() == [0, 0, 1, 3, 3]
    assert windows.stops.tolist() == [2, 3, 3, 5, 5]


def test_sample_windows_are_truncated_at_the_ends():
    windows = sample_windows(5, half_width=1)
    assert windows.starts.tolist() == [0, 0, 1, 2, 3]
    assert windows.stops.tolist() == [2, 3, 4, 5, 5]


def test_rolling_median_matches_pandas_centred_rolling_median():
    _, values = synthetic_heart_rate(minutes=300)
    expected = pd.Series(values).rolling(11, center=True, min_periods=1).median().to_numpy()
    np.testing.assert_allclose(rolling_median(values, sample_windows(values.size, 5)), expected)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(30, 200, allow_nan=False), min_size=1, max_size=40),
    half_width=st.integers(0, 6),
)
def test_rolling_median_equals_median_of_each_window(values, half_width):
    array = np.array(values)
    windows = sample_windows(array.size, half_width)
    expected = [np.median(array[start:stop]) for start, stop in zip(windows.starts, windows.stops, strict=True)]
    np.testing.assert_allclose(rolling_median(array, windows), expected)


def test_rolling_median_smooths_an_isolated_spike_away():
    values = np.array([70.0, 71.0, 70.0, 160.0, 71.0, 70.0, 71.0])
    smoothed = rolling_median(values, sample_windows(values.size, 2))
    assert smoothed.max() <= 71.0


def test_hampel_finds_injected_spikes_with_few_false_positives():
    times, clean = synthetic_heart_rate()
    spiked, spike_indices = inject_spikes(clean, count=60)
    result = hampel_filter(spiked, time_windows(times, 5 * MINUTE), min_deviation=HR_MIN_DEVIATION)
    found = result.outliers[spike_indices].mean()
    false_positives = np.delete(result.outliers, spike_indices).sum()
    assert found >= 0.95
    assert false_positives <= 0.01 * clean.size
    assert np.abs(result.values[spike_indices] - clean[spike_indices]).max() < 10.0


def test_hampel_over_a_sample_window_finds_the_same_spikes():
    _, clean = synthetic_heart_rate(seed=3)
    spiked, spike_indices = inject_spikes(clean, count=60, seed=5)
    result = hampel_filter(spiked, sample_windows(spiked.size, 5), min_deviation=HR_MIN_DEVIATION)
    assert result.outliers[spike_indices].mean() >= 0.95
    assert np.delete(result.outliers, spike_indices).sum() <= 0.01 * clean.size


def test_hampel_leaves_a_steady_ramp_untouched():
    values = 100.0 + 3.0 * np.arange(40)  # a fast but genuine change, e.g. falling glucose reversed
    result = hampel_filter(values, sample_windows(values.size, 3), min_deviation=15.0)
    assert not result.outliers.any()
    np.testing.assert_array_equal(result.values, values)


def test_hampel_min_deviation_stops_quantised_flat_signal_from_flagging_small_steps():
    values = np.array([97.0] * 10 + [96.0] + [97.0] * 10)
    assert hampel_filter(values, sample_windows(values.size, 5)).outliers.sum() == 1  # MAD is zero
    assert not hampel_filter(values, sample_windows(values.size, 5), min_deviation=2.0).outliers.any()


def test_hampel_handles_empty_input():
    result = hampel_filter(np.empty(0), sample_windows(0, 3))
    assert result.values.size == 0 and result.outliers.size == 0
