"""Tests for gap detection, coverage and the short-gap-only imputation."""

import numpy as np

from vigil.signal import Gap, coverage_fraction, find_gaps, impute_short_gaps, regular_grid
from vigil.signal.gaps import observed_duration

FIVE_MINUTES = 300.0
MAX_CGM_GAP = 3 * FIVE_MINUTES


def cgm_with_short_and_long_gap() -> tuple[np.ndarray, np.ndarray]:
    """A 5-minute CGM ramp (100 + 1 mg/dL per minute) missing two samples, then a whole hour."""
    grid = FIVE_MINUTES * np.arange(40)
    missing = {6, 7} | set(range(20, 32))
    keep = np.array([i not in missing for i in range(grid.size)])
    times = grid[keep]
    return times, 100.0 + times / 60.0


def test_find_gaps_reports_short_and_long_gaps():
    times, _ = cgm_with_short_and_long_gap()
    gaps = find_gaps(times, FIVE_MINUTES)
    assert gaps == [Gap(5 * FIVE_MINUTES, 8 * FIVE_MINUTES), Gap(19 * FIVE_MINUTES, 32 * FIVE_MINUTES)]
    assert [gap.duration_seconds for gap in gaps] == [900.0, 3900.0]


def test_find_gaps_tolerates_sampling_jitter():
    times = np.cumsum(np.full(50, 60.0) + np.random.default_rng(0).uniform(-15, 15, 50))
    assert find_gaps(times, 60.0) == []


def test_impute_fills_the_short_gap_and_leaves_the_long_gap_missing():
    times, values = cgm_with_short_and_long_gap()
    grid = regular_grid(0.0, 39 * FIVE_MINUTES, FIVE_MINUTES)
    filled = impute_short_gaps(times, values, grid, MAX_CGM_GAP)
    expected = 100.0 + grid / 60.0
    short_gap = [6, 7]
    long_gap = list(range(20, 32))
    np.testing.assert_allclose(filled[short_gap], expected[short_gap])
    assert np.isnan(filled[long_gap]).all()
    measured = np.setdiff1d(np.arange(grid.size), long_gap)
    np.testing.assert_allclose(filled[measured], expected[measured])


def test_impute_never_extrapolates_beyond_the_samples():
    times = np.array([600.0, 900.0])
    filled = impute_short_gaps(times, np.array([1.0, 2.0]), regular_grid(300.0, 1200.0, 300.0), MAX_CGM_GAP)
    assert np.isnan(filled[[0, 3]]).all()
    assert filled[1:3].tolist() == [1.0, 2.0]


def test_impute_on_no_samples_is_all_missing():
    assert np.isnan(impute_short_gaps(np.empty(0), np.empty(0), np.arange(3.0), 10.0)).all()


def test_coverage_counts_measured_and_imputable_points():
    times, _ = cgm_with_short_and_long_gap()
    grid = regular_grid(0.0, 39 * FIVE_MINUTES, FIVE_MINUTES)
    assert coverage_fraction(times, grid, MAX_CGM_GAP) == 28 / 40


def test_coverage_does_not_penalise_a_sample_that_is_not_due_yet():
    times = FIVE_MINUTES * np.arange(12)
    grid = regular_grid(60.0, 11 * FIVE_MINUTES + 240.0, FIVE_MINUTES)
    assert coverage_fraction(times, grid, MAX_CGM_GAP) == 1.0
    overdue_grid = regular_grid(60.0, 11 * FIVE_MINUTES + 3600.0, FIVE_MINUTES)
    assert coverage_fraction(times, overdue_grid, MAX_CGM_GAP) == 14 / 23  # covered until 15 min after the last sample
    assert coverage_fraction(times, np.empty(0), MAX_CGM_GAP) == 0.0


def test_observed_duration_ignores_long_spacings():
    times = np.array([0.0, 60.0, 120.0, 3720.0, 3780.0])
    assert observed_duration(times, max_spacing_seconds=180.0) == 180.0


def test_regular_grid_includes_an_end_on_the_grid():
    assert regular_grid(0.0, 900.0, 300.0).tolist() == [0.0, 300.0, 600.0, 900.0]
    assert regular_grid(0.0, 899.0, 300.0).tolist() == [0.0, 300.0, 600.0]
