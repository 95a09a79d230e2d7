"""The NEWS2 chart (RCP 2017): each measured vital sign's bands and resolution, and the points a value scores there.

Shared by the care stage's NEWS2 score and the sepsis models' NEWS2 features.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

SpO2Scale = Literal[1, 2]

SCORING_RESOLUTION = {"resp_rate": 0, "spo2": 0, "systolic_bp": 0, "heart_rate": 0, "body_temp": 1}
"""Decimal places each measured parameter is rounded to before scoring."""

Bands = tuple[tuple[float, int], ...]
"""(inclusive upper limit, score) pairs in ascending order; the first limit the value fits gives its score."""

INF = math.inf
RESP_RATE_BANDS: Bands = ((8, 3), (11, 1), (20, 0), (24, 2), (INF, 3))
SPO2_SCALE_1_BANDS: Bands = ((91, 3), (93, 2), (95, 1), (INF, 0))
SPO2_SCALE_2_ON_AIR_BANDS: Bands = ((83, 3), (85, 2), (87, 1), (INF, 0))
SPO2_SCALE_2_ON_OXYGEN_BANDS: Bands = ((83, 3), (85, 2), (87, 1), (92, 0), (94, 1), (96, 2), (INF, 3))
SYSTOLIC_BP_BANDS: Bands = ((90, 3), (100, 2), (110, 1), (219, 0), (INF, 3))
PULSE_BANDS: Bands = ((40, 3), (50, 1), (90, 0), (110, 1), (130, 2), (INF, 3))
TEMPERATURE_BANDS: Bands = ((35.0, 3), (36.0, 1), (38.0, 0), (39.0, 1), (INF, 2))


def band_score(value: float, bands: Bands) -> int:
    """The score of the first band whose inclusive upper limit holds ``value``."""
    return next(score for upper, score in bands if value <= upper)


def spo2_bands(scale: SpO2Scale, on_oxygen: bool) -> Bands:
    """Scale 1, or scale 2 (prescribed 88-92 % target in hypercapnic respiratory failure) on air or oxygen."""
    if scale == 1:
        return SPO2_SCALE_1_BANDS
    return SPO2_SCALE_2_ON_OXYGEN_BANDS if on_oxygen else SPO2_SCALE_2_ON_AIR_BANDS


def parameter_bands(parameter: str, spo2_scale: SpO2Scale = 1, on_oxygen: bool = False) -> Bands:
    """The chart bands of one measured parameter (SpO2 by scale and oxygen)."""
    bands = {
        "resp_rate": RESP_RATE_BANDS,
        "spo2": spo2_bands(spo2_scale, on_oxygen),
        "systolic_bp": SYSTOLIC_BP_BANDS,
        "heart_rate": PULSE_BANDS,
        "body_temp": TEMPERATURE_BANDS,
    }
    return bands[parameter]


def news2_component_points(
    parameter: str, values: np.ndarray, spo2_scale: SpO2Scale = 1, on_oxygen: bool = False
) -> np.ndarray:
    """Each value's points (int8) for one parameter, 0 where it is NaN: ``vigil.care.news2.score_measured`` vectorised.

    Values are rounded half up to the chart's resolution like ``vigil.care.news2.round_half_up``; rounding to 9 decimal
    places first absorbs binary representation error (38.05 * 10 = 380.49999999999994 counts as 380.5).
    """
    scale = 10.0 ** SCORING_RESOLUTION[parameter]
    values = np.asarray(values, dtype=np.float64)
    rounded = np.floor(np.round(values * scale, 9) + 0.5) / scale
    bands = parameter_bands(parameter, spo2_scale, on_oxygen)
    limits = np.array([upper for upper, _ in bands])
    points = np.array([score for _, score in bands], dtype=np.int8)
    band_index = np.searchsorted(limits, np.nan_to_num(rounded, nan=-INF), side="left")
    return np.where(np.isnan(rounded), 0, points[band_index]).astype(np.int8)
