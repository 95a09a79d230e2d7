"""The signal stage: per-patient streaming cleaning (range check, Hampel filter, gaps) and window features."""

from vigil.signal.cleaning import (
    HampelResult,
    Windows,
    hampel_filter,
    plausible_mask,
    rolling_median,
    sample_windows,
    time_windows,
)
from vigil.signal.features import (
    glucose_trend_per_minute,
    heart_rate_baseline,
    least_squares_slope,
    level_features,
)
from vigil.signal.gaps import Gap, coverage_fraction, find_gaps, impute_short_gaps, regular_grid
from vigil.signal.profiles import METRIC_PROFILES, MetricProfile
from vigil.signal.state import MetricBuffer, PatientSignalState, SignalProcessor

__all__ = [
    "METRIC_PROFILES",
    "Gap",
    "HampelResult",
    "MetricBuffer",
    "MetricProfile",
    "PatientSignalState",
    "SignalProcessor",
    "Windows",
    "coverage_fraction",
    "find_gaps",
    "glucose_trend_per_minute",
    "hampel_filter",
    "heart_rate_baseline",
    "impute_short_gaps",
    "least_squares_slope",
    "level_features",
    "plausible_mask",
    "regular_grid",
    "rolling_median",
    "sample_windows",
    "time_windows",
]
