"""Pure functions for missing data: finding gaps, measuring coverage, and filling only short gaps.

Times are float seconds since the Unix epoch, sorted ascending.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vigil.signal.cleaning import BoolArray, FloatArray
from vigil.signal.profiles import GAP_FACTOR


@dataclass(frozen=True)
class Gap:
    """A stretch without samples: from the last sample before it to the first sample after it."""

    start: float
    end: float

    @property
    def duration_seconds(self) -> float:
        return self.end - self.start


def find_gaps(times: FloatArray, expected_interval_seconds: float, gap_factor: float = GAP_FACTOR) -> list[Gap]:
    """Every spacing between consecutive samples longer than ``gap_factor`` expected intervals."""
    spacings = np.diff(times)
    starts = np.flatnonzero(spacings > gap_factor * expected_interval_seconds)
    return [Gap(float(times[i]), float(times[i + 1])) for i in starts]


def observed_duration(times: FloatArray, max_spacing_seconds: float) -> float:
    """Seconds covered by samples: the sum of spacings no longer than ``max_spacing_seconds``."""
    spacings = np.diff(times)
    return float(spacings[spacings <= max_spacing_seconds].sum())


def regular_grid(start: float, end: float, interval_seconds: float) -> FloatArray:
    """Equally spaced times from ``start`` up to and including ``end`` (when it falls on the grid)."""
    count = int(np.floor((end - start) / interval_seconds + 1e-9)) + 1
    return start + interval_seconds * np.arange(max(count, 0), dtype=np.float64)


def _fillable(times: FloatArray, grid: FloatArray, max_gap_seconds: float) -> BoolArray:
    """True where a grid point falls on a sample or between samples at most ``max_gap_seconds`` apart."""
    if times.size == 0:
        return np.zeros(grid.shape, dtype=bool)
    after = np.searchsorted(times, grid, side="left")
    safe_after = np.minimum(after, times.size - 1)
    on_sample = times[safe_after] == grid
    bracketed = (after > 0) & (after < times.size)
    spacing = times[safe_after] - times[np.maximum(after - 1, 0)]
    fillable: BoolArray = on_sample | (bracketed & (spacing <= max_gap_seconds))
    return fillable


def impute_short_gaps(times: FloatArray, values: FloatArray, grid: FloatArray, max_gap_seconds: float) -> FloatArray:
    """Values on ``grid``: linear interpolation between samples at most ``max_gap_seconds`` apart.

    Grid points inside a longer gap, or before the first / after the last sample, stay NaN:
    a long gap is reported as missing, never invented.
    """
    if times.size == 0:
        return np.full(grid.shape, np.nan)
    interpolated = np.interp(grid, times, values)
    return np.where(_fillable(times, grid, max_gap_seconds), interpolated, np.nan)


def coverage_fraction(times: FloatArray, grid: FloatArray, max_gap_seconds: float) -> float:
    """The share of ``grid`` points that are measured, safely imputable, or not yet overdue.

    A grid point after the last sample counts as covered while it is within ``max_gap_seconds``
    of that sample: the next sample is simply not due yet. An empty grid has coverage 0.
    """
    if grid.size == 0:
        return 0.0
    covered = _fillable(times, grid, max_gap_seconds)
    if times.size:
        covered |= (grid > times[-1]) & (grid - times[-1] <= max_gap_seconds)
    return float(covered.mean())
