"""The ambulatory glucose profile (AGP) and the international-consensus CGM metrics, from CGM readings.

Battelino et al., "Clinical Targets for Continuous Glucose Monitoring Data Interpretation", Diabetes Care 2019;
Danne et al., Diabetes Care 2017; Bergenstal et al., "Glucose Management Indicator", Diabetes Care 2018; Klonoff
et al., "A Glycemia Risk Index (GRI)", J Diabetes Sci Technol 2022. All glucose is in mg/dL.

- Time in ranges: shares of readings very low (< 54), low (54 to < 70), in range (70-180), high (> 180 to 250)
  and very high (> 250), so that the five add up to 1.
- Mean, SD (sample, ddof=1), CV = SD / mean (target <= 36 %), GMI % = 3.31 + 0.02392 x mean.
- GRI = 3.0 x VLow + 2.4 x Low + 1.6 x VHigh + 0.8 x High (percentages), capped at 100; zones A <= 20 < B <= 40
  < C <= 60 < D <= 80 < E.
- Wear: the share of the period during which the CGM was active (readings times their usual interval).
- The profile: the 5th, 25th, 50th, 75th and 95th percentiles of all readings in each time-of-day bin (15 minutes
  by default) over all days, smoothed by a circular weighted moving average (the day wraps at midnight). A bin
  with readings on fewer than ``MIN_BIN_DAYS`` days is left empty rather than drawn from too little.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

PERCENTILES = (5, 25, 50, 75, 95)
VERY_LOW, LOW, HIGH, VERY_HIGH = 54.0, 70.0, 180.0, 250.0
MIN_BIN_DAYS = 5
"""A time-of-day bin needs readings on at least this many days to have percentiles."""
SMOOTHING = (1.0, 2.0, 4.0, 2.0, 1.0)
"""Weights of the circular moving average over neighbouring bins (centre in the middle)."""
CONSENSUS_DAYS, CONSENSUS_WEAR = 14, 0.70
GRI_ZONES = ((20.0, "A"), (40.0, "B"), (60.0, "C"), (80.0, "D"), (100.0, "E"))
DAY_MIN = 24 * 60


class AgpError(ValueError):
    """The readings cannot make an AGP (none, or malformed)."""


@dataclass(frozen=True)
class RangeShares:
    """Shares of readings (0-1) in the five consensus ranges."""

    very_low: float
    low: float
    in_range: float
    high: float
    very_high: float

    @property
    def below_70(self) -> float:
        return self.very_low + self.low

    @property
    def above_180(self) -> float:
        return self.high + self.very_high


@dataclass(frozen=True)
class Profile:
    """Percentile curves by time of day: ``minutes`` are the bin centres after midnight; NaN where a bin is empty."""

    minutes: np.ndarray
    bands: dict[int, np.ndarray]


@dataclass(frozen=True)
class Agp:
    """An AGP report's numbers: the period, wear, the consensus metrics and the percentile profile."""

    start: datetime
    end: datetime
    readings: int
    wear: float
    mean: float
    sd: float
    cv_percent: float
    gmi_percent: float
    ranges: RangeShares
    gri: float
    gri_zone: str
    profile: Profile | None
    notes: tuple[str, ...] = field(default=())

    @property
    def days(self) -> float:
        return (self.end - self.start) / timedelta(days=1)

    def targets(self) -> dict[str, bool]:
        """Each consensus target (for most adults with type 1 or 2 diabetes) and whether it is met."""
        return consensus_targets(self.ranges, self.cv_percent)


def consensus_targets(ranges: RangeShares, cv_percent: float) -> dict[str, bool]:
    """The consensus targets: > 70 % in range, < 4 % below 70, < 1 % below 54, < 25 % above 180, < 5 % above 250,
    CV <= 36 %."""
    return {
        "in range > 70 %": ranges.in_range > 0.70,
        "below 70 < 4 %": ranges.below_70 < 0.04,
        "below 54 < 1 %": ranges.very_low < 0.01,
        "above 180 < 25 %": ranges.above_180 < 0.25,
        "above 250 < 5 %": ranges.very_high < 0.05,
        "CV <= 36 %": cv_percent <= 36.0,
    }


def range_shares(values: np.ndarray) -> RangeShares:
    """The shares of readings in each consensus range."""
    return RangeShares(
        very_low=float(np.mean(values < VERY_LOW)),
        low=float(np.mean((values >= VERY_LOW) & (values < LOW))),
        in_range=float(np.mean((values >= LOW) & (values <= HIGH))),
        high=float(np.mean((values > HIGH) & (values <= VERY_HIGH))),
        very_high=float(np.mean(values > VERY_HIGH)),
    )


def coefficient_of_variation(values: np.ndarray) -> float:
    """SD / mean in %, with the sample SD; 0 for a single reading."""
    return 100.0 * _sd(values) / float(np.mean(values))


def _sd(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def gmi(mean_mg_dl: float) -> float:
    """Glucose management indicator (%), Bergenstal 2018."""
    return 3.31 + 0.02392 * mean_mg_dl


def glycaemia_risk_index(ranges: RangeShares) -> float:
    """Klonoff 2022: 3.0 x VLow + 2.4 x Low + 1.6 x VHigh + 0.8 x High, in percentage points, capped at 100."""
    score = 100.0 * (3.0 * ranges.very_low + 2.4 * ranges.low + 1.6 * ranges.very_high + 0.8 * ranges.high)
    return min(100.0, score)


def gri_zone(gri: float) -> str:
    """The GRI zone: A (0-20, the lowest risk) to E (over 80)."""
    return next(zone for limit, zone in GRI_ZONES if gri <= limit)


def sampling_interval(times: pd.DatetimeIndex) -> timedelta:
    """The CGM's usual interval: the median gap between consecutive readings (5 minutes for one reading)."""
    gaps = np.diff(times.as_unit("s").asi8)
    gaps = gaps[gaps > 0]
    if len(gaps) == 0:
        return timedelta(minutes=5)
    return timedelta(seconds=float(np.median(gaps)))


def wear(times: pd.DatetimeIndex, start: datetime, end: datetime) -> float:
    """The share of [start, end) during which the CGM was active: readings at distinct times times their interval."""
    covered = times.unique().size * sampling_interval(times)
    return float(min(1.0, covered / max(end - start, sampling_interval(times))))


def profile(
    times: pd.DatetimeIndex, values: np.ndarray, bin_minutes: int = 15, smoothing: Sequence[float] = SMOOTHING
) -> Profile | None:
    """The percentile curves by time of day (wall-clock time of ``times``); None if no bin has enough days."""
    if DAY_MIN % bin_minutes:
        raise AgpError(f"bin_minutes: {bin_minutes} does not divide a day")
    minute = times.hour * 60 + times.minute + times.second / 60
    frame = pd.DataFrame({"bin": (minute // bin_minutes).astype(int), "day": times.normalize(), "value": values})
    grouped = frame.groupby("bin")
    enough = grouped["day"].nunique() >= MIN_BIN_DAYS
    if not enough.any():
        return None
    index = np.arange(DAY_MIN // bin_minutes)
    raw = {p: grouped["value"].quantile(p / 100).where(enough).reindex(index).to_numpy() for p in PERCENTILES}
    minutes = (index + 0.5) * bin_minutes
    return Profile(minutes, {p: circular_smooth(curve, smoothing) for p, curve in raw.items()})


def circular_smooth(curve: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """A weighted moving average that wraps around midnight; empty (NaN) bins stay empty and are not averaged in."""
    weights_ = np.asarray(weights, dtype=float)
    half = len(weights_) // 2
    present = ~np.isnan(curve)
    filled = np.where(present, curve, 0.0)
    total = sum(w * np.roll(filled, k - half) for k, w in enumerate(weights_))
    norm = sum(w * np.roll(present.astype(float), k - half) for k, w in enumerate(weights_))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(present, total / norm, np.nan)


def ambulatory_glucose_profile(
    times: Sequence[datetime] | pd.DatetimeIndex,
    values: Sequence[float] | np.ndarray,
    start: datetime | None = None,
    end: datetime | None = None,
    bin_minutes: int = 15,
) -> Agp:
    """The AGP of CGM readings (mg/dL) over [start, end) (default: from the first reading to one interval after the
    last, so that N readings cover N intervals); gaps allowed.

    Time of day is the wall-clock time of ``times`` as given: pass them in the patient's time zone."""
    index, glucose = _checked(times, values)
    start = start or index[0].to_pydatetime()
    end = end or index[-1].to_pydatetime() + sampling_interval(index)
    if end <= start:
        raise AgpError("end: must be after start")
    ranges = range_shares(glucose)
    gri = glycaemia_risk_index(ranges)
    mean = float(np.mean(glucose))
    result = Agp(
        start=start,
        end=end,
        readings=len(glucose),
        wear=wear(index, start, end),
        mean=mean,
        sd=_sd(glucose),
        cv_percent=coefficient_of_variation(glucose),
        gmi_percent=gmi(mean),
        ranges=ranges,
        gri=gri,
        gri_zone=gri_zone(gri),
        profile=profile(index, glucose, bin_minutes),
    )
    return _with_notes(result)


def _checked(times: Sequence[datetime] | pd.DatetimeIndex, values: Sequence[float] | np.ndarray) -> tuple:
    """The readings as a sorted DatetimeIndex and a float array; AgpError for none, a length mismatch or bad values."""
    glucose = np.asarray(values, dtype=float)
    if len(glucose) == 0:
        raise AgpError("no glucose readings in the period")
    if len(times) != len(glucose):
        raise AgpError(f"times and values differ in length ({len(times)} and {len(glucose)})")
    if not np.all(np.isfinite(glucose)) or np.any(glucose <= 0):
        raise AgpError("values: every glucose reading must be a positive number of mg/dL")
    index = pd.DatetimeIndex(times)
    order = np.argsort(index.as_unit("ns").asi8, kind="stable")
    return index[order], glucose[order]


def _with_notes(result: Agp) -> Agp:
    """The report with what limits it: too few days, too little wear, no profile."""
    notes = []
    if result.days < CONSENSUS_DAYS:
        notes.append(f"{result.days:.1f} days of data: the consensus asks for {CONSENSUS_DAYS}")
    if result.wear < CONSENSUS_WEAR:
        notes.append(f"CGM active {result.wear:.0%} of the time: the consensus asks for at least 70 %")
    if result.profile is None:
        notes.append(f"no percentile profile: each time of day needs readings on at least {MIN_BIN_DAYS} days")
    return replace(result, notes=tuple(notes))
