"""Pure cleaning functions on one metric's samples: range check, rolling median, Hampel outlier filter.

Times are float seconds since the Unix epoch, sorted ascending; values are finite floats of the same length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vigil.metrics import METRICS

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]

MAD_TO_SIGMA = 1.4826
"""Scale factor making the median absolute deviation a consistent estimator of a normal sigma."""


@dataclass(frozen=True)
class Windows:
    """One window per sample: sample ``i`` looks at ``values[starts[i]:stops[i]]``."""

    starts: IntArray
    stops: IntArray


@dataclass(frozen=True)
class HampelResult:
    """Hampel filter output: values with outliers replaced by their window median, and the outlier mask."""

    values: FloatArray
    outliers: BoolArray


def plausible_mask(metric: str, values: npt.ArrayLike, flagged_implausible: npt.ArrayLike | None = None) -> BoolArray:
    """True where a value is finite, inside the metric's plausible limits and not flagged implausible."""
    low, high = METRICS[metric].plausible_limits
    array = np.asarray(values, dtype=float)
    mask: BoolArray = np.isfinite(array) & (array >= low) & (array <= high)
    if flagged_implausible is not None:
        mask &= ~np.asarray(flagged_implausible, dtype=bool)
    return mask


def time_windows(times: FloatArray, half_width_seconds: float) -> Windows:
    """Windows holding every sample within ``half_width_seconds`` of each sample's time."""
    starts = np.searchsorted(times, times - half_width_seconds, side="left")
    stops = np.searchsorted(times, times + half_width_seconds, side="right")
    return Windows(starts, stops)


def sample_windows(count: int, half_width: int) -> Windows:
    """Windows of ``half_width`` samples on each side of each sample, truncated at the ends."""
    positions = np.arange(count)
    return Windows(np.maximum(positions - half_width, 0), np.minimum(positions + half_width + 1, count))


def _window_matrix(values: FloatArray, windows: Windows) -> FloatArray:
    """One row per window holding its values, padded with NaN to the longest window."""
    widths = windows.stops - windows.starts
    offsets = np.arange(int(widths.max(initial=0)))
    indices = windows.starts[:, None] + offsets[None, :]
    inside = offsets[None, :] < widths[:, None]
    return np.where(inside, values[np.minimum(indices, values.size - 1)], np.nan)


def _row_medians(matrix: FloatArray, widths: IntArray) -> FloatArray:
    """The median of each row's first ``widths[i]`` entries (NaN padding sorts to the end)."""
    ordered = np.sort(matrix, axis=1)
    rows = np.arange(matrix.shape[0])
    return (ordered[rows, (widths - 1) // 2] + ordered[rows, widths // 2]) / 2.0


def rolling_median(values: FloatArray, windows: Windows) -> FloatArray:
    """The median of each sample's window (a smoothing that ignores isolated spikes)."""
    if values.size == 0:
        return np.empty(0)
    return _row_medians(_window_matrix(values, windows), windows.stops - windows.starts)


def hampel_filter(
    values: FloatArray, windows: Windows, n_sigmas: float = 3.0, min_deviation: float = 0.0
) -> HampelResult:
    """Flag samples further than ``n_sigmas`` robust sigmas (1.4826 x MAD) from their window median.

    ``min_deviation`` is a floor on the threshold so that quantised, nearly constant signals
    (a MAD of zero) do not turn every small change into an outlier. Outliers are replaced by
    their window median.
    """
    if values.size == 0:
        return HampelResult(np.empty(0), np.zeros(0, dtype=bool))
    widths = windows.stops - windows.starts
    matrix = _window_matrix(values, windows)
    medians = _row_medians(matrix, widths)
    mads = _row_medians(np.abs(matrix - medians[:, None]), widths)
    thresholds = np.maximum(n_sigmas * MAD_TO_SIGMA * mads, min_deviation)
    outliers = np.abs(values - medians) > thresholds
    return HampelResult(np.where(outliers, medians, values), outliers)
