"""Causal hourly features of ICU stays, one code path for training on the Challenge data and for live patients.

Input is a long frame with ``stay_id``, ``hour`` and any of the Challenge columns (absent ones count as never
measured), one row per hour of each stay. Every feature of an hour uses only rows of the same stay up to
and including that hour, so appending later hours never changes earlier features. Windows count rows,
i.e. hours. Rolling statistics and trends are taken over the carried-forward values, so a window without a
new measurement still describes the latest known state; they are NaN only before a variable's first
measurement (std also with a single value in the window). Output rows keep the input's index and order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pandas.api.indexers import BaseIndexer

from vigil.datasets.physionet import HOUR, LABS, STAY_ID, VITALS
from vigil.news2_chart import news2_component_points

VARIABLES = VITALS + LABS
PASSED_THROUGH = ("Age", "Gender", "HospAdmTime", "ICULOS")
HOURS_SINCE_CAP = 48.0
NEVER_MEASURED_HOURS = 2 * HOURS_SINCE_CAP
"""``hours_since`` is capped at 48 h; a variable not measured yet in the stay gets this sentinel instead."""
WINDOWS = (6, 12, 24)
WINDOW_STATISTICS = ("mean", "min", "max", "std")
TREND_HOURS = 6

NEWS2_PARAMETERS = {"Resp": "resp_rate", "O2Sat": "spo2", "SBP": "systolic_bp", "HR": "heart_rate", "Temp": "body_temp"}
"""Challenge column -> NEWS2 parameter; SpO2 on scale 1, consciousness and oxygen unknown (scored 0)."""
QSOFA_RESP_RATE_MIN = 22.0
QSOFA_SYSTOLIC_BP_MAX = 100.0
"""qSOFA's measurable criteria (Seymour et al., JAMA 2016); altered mentation is unknown here (scored 0)."""

MONITORED_VITALS = ("HR", "O2Sat", "Temp", "SBP", "DBP", "MAP", "Resp")
"""The vitals that wearables and spot checks give (MAP from the cuff's SBP and DBP); no EtCO2, no labs."""
MONITORED_INPUTS = (*MONITORED_VITALS, "Age", "Gender")
"""Everything a monitored (non-ICU) patient's risk may be computed from: no ICULOS, HospAdmTime, units or labs."""


def _feature_inputs() -> dict[str, tuple[str, ...]]:
    """Each feature of ``causal_features``, in column order, with the Challenge columns it is computed from."""
    inputs: dict[str, tuple[str, ...]] = {}
    for suffix in ("last", "hours_since", "missing"):
        inputs |= {f"{variable}_{suffix}": (variable,) for variable in VARIABLES}
    inputs |= {f"{lab}_count": (lab,) for lab in LABS}
    for hours in WINDOWS:
        for statistic in WINDOW_STATISTICS:
            inputs |= {f"{vital}_{statistic}_{hours}h": (vital,) for vital in VITALS}
    inputs |= {f"{vital}_slope_{TREND_HOURS}h": (vital,) for vital in VITALS}
    inputs |= {f"{vital}_minus_baseline": (vital,) for vital in VITALS}
    inputs |= {f"news2_{parameter}": (column,) for column, parameter in NEWS2_PARAMETERS.items()}
    inputs["news2_total"] = tuple(NEWS2_PARAMETERS)
    inputs |= {"qsofa_resp_rate": ("Resp",), "qsofa_systolic_bp": ("SBP",), "qsofa_total": ("Resp", "SBP")}
    inputs["shock_index"] = ("HR", "SBP")
    inputs |= {column: (column,) for column in PASSED_THROUGH}
    return inputs


FEATURE_INPUTS = _feature_inputs()
"""Feature -> the Challenge columns it is computed from (each feature uses only these)."""
FEATURE_NAMES: list[str] = list(FEATURE_INPUTS)
"""The columns of ``causal_features`` in order (all float32)."""
VITALS_FEATURE_NAMES: list[str] = [
    name for name, inputs in FEATURE_INPUTS.items() if set(inputs) <= set(MONITORED_INPUTS)
]
"""The features computed only from MONITORED_INPUTS: what the vitals-only model sees."""


def inputs_of(feature_names: list[str]) -> list[str]:
    """The Challenge columns these features are computed from, in the order they first appear."""
    return list(dict.fromkeys(column for name in feature_names for column in FEATURE_INPUTS[name]))


FEATURE_SETS: dict[str, list[str]] = {"full": FEATURE_NAMES, "vitals": VITALS_FEATURE_NAMES}
"""``--features`` choices: every Challenge column (ICU stays), or the monitored vitals, age and sex only."""

IntArray = NDArray[np.int64]


class StayWindow(BaseIndexer):
    """Rolling window bounds over rows sorted by stay: the last ``hours`` rows, never before the stay's first."""

    def __init__(self, stay_starts: IntArray, hours: int | None) -> None:
        super().__init__(stay_starts=stay_starts, hours=hours)

    def get_window_bounds(
        self,
        num_values: int = 0,
        min_periods: int | None = None,
        center: bool | None = None,
        closed: str | None = None,
        step: int | None = None,
    ) -> tuple[IntArray, IntArray]:
        end = np.arange(1, num_values + 1, dtype=np.int64)
        start = self.stay_starts if self.hours is None else np.maximum(end - self.hours, self.stay_starts)
        return start.astype(np.int64), end


@dataclass(frozen=True)
class Stays:
    """The input sorted by stay and hour: every Challenge variable (NaN when absent) and where each stay starts."""

    values: pd.DataFrame
    hours: NDArray[np.float64]
    stay_starts: IntArray
    order: IntArray

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Stays:
        missing = [column for column in (STAY_ID, HOUR) if column not in frame.columns]
        if missing:
            raise ValueError(f"the frame needs the columns {', '.join(missing)}")
        stay_codes = pd.factorize(frame[STAY_ID])[0]
        hours = frame[HOUR].to_numpy(dtype=np.float64)
        order = np.lexsort((hours, stay_codes))
        values = frame.reindex(columns=[*VARIABLES, *PASSED_THROUGH]).iloc[order].astype(np.float64)
        first_rows = np.diff(stay_codes[order], prepend=-1) != 0
        starts = np.maximum.accumulate(np.where(first_rows, np.arange(len(order)), 0))
        return cls(values.reset_index(drop=True), hours[order], starts.astype(np.int64), order)

    def window(self, hours: int | None) -> StayWindow:
        """The last ``hours`` rows of the stay (the whole stay so far for None)."""
        return StayWindow(self.stay_starts, hours)

    def restore(self, table: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
        """Put rows computed in sorted order back into the input's order and index."""
        restored = table.iloc[np.argsort(self.order)]
        restored.index = index
        return restored


def causal_features(frame: pd.DataFrame) -> pd.DataFrame:
    """One row of FEATURE_NAMES (float32) per input row, from that stay's rows up to that hour only."""
    stays = Stays.of(frame)
    history = _measurement_history(stays)
    last, vitals = history.last, history.last[list(VITALS)]
    blocks = [
        last.add_suffix("_last"),
        history.hours_since.add_suffix("_hours_since"),
        stays.values[list(VARIABLES)].isna().add_suffix("_missing"),
        history.counts[list(LABS)].add_suffix("_count"),
        *(_window_statistics(vitals, stays.window(hours), hours) for hours in WINDOWS),
        _slopes(vitals, stays).add_suffix(f"_slope_{TREND_HOURS}h"),
        (vitals - _baselines(stays)).add_suffix("_minus_baseline"),
        _news2_points(last),
        _qsofa_points(last),
        (last["HR"] / last["SBP"]).rename("shock_index").to_frame(),
        stays.values[list(PASSED_THROUGH)],
    ]
    features = pd.concat([block.astype(np.float32) for block in blocks], axis=1)
    return stays.restore(features, frame.index)


def feature_matrix(frame: pd.DataFrame) -> NDArray[np.float32]:
    """``causal_features`` as an array of shape (rows, len(FEATURE_NAMES))."""
    return causal_features(frame).to_numpy(dtype=np.float32)


def news2_total(frame: pd.DataFrame) -> pd.Series:
    """Each hour's NEWS2 total from the carried-forward vitals (the rule baseline's score), in input order."""
    return _hourly_score(frame, _news2_points, "news2_total")


def qsofa_total(frame: pd.DataFrame) -> pd.Series:
    """Each hour's partial qSOFA (respiration and systolic BP) from the carried-forward vitals, in input order."""
    return _hourly_score(frame, _qsofa_points, "qsofa_total")


def _hourly_score(frame: pd.DataFrame, points: Callable[[pd.DataFrame], pd.DataFrame], total: str) -> pd.Series:
    stays = Stays.of(frame)
    last = _measurement_history(stays).last
    return stays.restore(points(last)[[total]], frame.index)[total].astype(np.int64)


@dataclass(frozen=True)
class MeasurementHistory:
    """Per variable and row: the last value so far, hours since it was measured (capped), how many measurements."""

    last: pd.DataFrame
    hours_since: pd.DataFrame
    counts: pd.DataFrame


def _measurement_history(stays: Stays) -> MeasurementHistory:
    raw = stays.values[list(VARIABLES)].to_numpy()
    observed = ~np.isnan(raw)
    rows = np.arange(len(raw))[:, None]
    latest = np.maximum.accumulate(np.where(observed, rows, -1), axis=0)
    seen = latest >= stays.stay_starts[:, None]
    latest = np.maximum(latest, 0)
    last = np.where(seen, np.take_along_axis(raw, latest, axis=0), np.nan)
    since = stays.hours[:, None] - stays.hours[latest]
    hours_since = np.where(seen, np.minimum(since, HOURS_SINCE_CAP), NEVER_MEASURED_HOURS)
    cumulative = np.cumsum(observed, axis=0)
    counts = cumulative - np.where(stays.stay_starts[:, None] > 0, cumulative[stays.stay_starts - 1], 0)
    as_frame = partial(pd.DataFrame, columns=list(VARIABLES))
    return MeasurementHistory(as_frame(last), as_frame(hours_since), as_frame(counts))


def _window_statistics(vitals: pd.DataFrame, window: StayWindow, hours: int) -> pd.DataFrame:
    rolling = vitals.rolling(window, min_periods=1)
    return pd.concat(
        [getattr(rolling, statistic)().add_suffix(f"_{statistic}_{hours}h") for statistic in WINDOW_STATISTICS],
        axis=1,
    )


def _slopes(vitals: pd.DataFrame, stays: Stays) -> pd.DataFrame:
    """Least-squares slope per hour of each vital over the last TREND_HOURS rows (NaN from fewer than 2 values)."""
    y = vitals.to_numpy()
    x = np.where(np.isnan(y), np.nan, stays.hours[:, None])
    window = stays.window(TREND_HOURS)

    def rolling_sum(values: np.ndarray) -> np.ndarray:
        return pd.DataFrame(values).rolling(window, min_periods=1).sum().to_numpy()

    n = rolling_sum(~np.isnan(y))
    sum_x, sum_y, sum_xy, sum_xx = rolling_sum(x), rolling_sum(y), rolling_sum(x * y), rolling_sum(x * x)
    spread = n * sum_xx - sum_x**2
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where((n >= 2) & (spread > 0), (n * sum_xy - sum_x * sum_y) / spread, np.nan)
    return pd.DataFrame(slope, columns=vitals.columns)


def _baselines(stays: Stays) -> pd.DataFrame:
    """Each vital's median over the stay's measurements so far (its own baseline)."""
    return stays.values[list(VITALS)].rolling(stays.window(None), min_periods=1).median()


def _news2_points(last: pd.DataFrame) -> pd.DataFrame:
    points = pd.DataFrame(
        {
            f"news2_{name}": news2_component_points(name, last[column].to_numpy())
            for column, name in NEWS2_PARAMETERS.items()
        }
    )
    points["news2_total"] = points.sum(axis=1)
    return points


def _qsofa_points(last: pd.DataFrame) -> pd.DataFrame:
    points = pd.DataFrame(
        {
            "qsofa_resp_rate": (last["Resp"] >= QSOFA_RESP_RATE_MIN).astype(np.int8),
            "qsofa_systolic_bp": (last["SBP"] <= QSOFA_SYSTOLIC_BP_MAX).astype(np.int8),
        }
    )
    points["qsofa_total"] = points.sum(axis=1)
    return points
