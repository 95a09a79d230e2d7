"""Explanations in clinical words: TreeSHAP contributions summed per input (vital sign), with its value and change.

Each feature is computed from one or a few Challenge columns (``features.FEATURE_INPUTS``); its contribution goes to
those columns, shared equally when there are several (NEWS2 total, shock index). The words name the input, its
value now (carried forward) and, for a vital sign, where it was ``TREND_HOURS`` earlier:
"respiration 30/min, up from 18 over 6 h".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from vigil.models.features import FEATURE_INPUTS


@dataclass(frozen=True)
class ClinicalInput:
    """How an input is named and written: label, unit, decimals."""

    label: str
    unit: str = ""
    decimals: int = 0


CLINICAL_INPUTS: dict[str, ClinicalInput] = {
    "HR": ClinicalInput("heart rate", "/min"),
    "O2Sat": ClinicalInput("SpO2", " %"),
    "Temp": ClinicalInput("temperature", " °C", 1),
    "SBP": ClinicalInput("systolic BP", " mmHg"),
    "DBP": ClinicalInput("diastolic BP", " mmHg"),
    "MAP": ClinicalInput("mean arterial pressure", " mmHg"),
    "Resp": ClinicalInput("respiration", "/min"),
    "EtCO2": ClinicalInput("end-tidal CO2", " mmHg"),
    "Age": ClinicalInput("age", " years"),
    "HospAdmTime": ClinicalInput("hours from hospital to ICU admission", " h", 1),
    "ICULOS": ClinicalInput("hours in the ICU", " h"),
}
"""Labels of the vitals and demographics; a lab is named by its Challenge column (``Lactate 4.1``)."""
TRENDED = frozenset({"HR", "O2Sat", "Temp", "SBP", "DBP", "MAP", "Resp", "EtCO2"})
"""Inputs whose change over the window is told."""


@dataclass(frozen=True)
class Reason:
    """One input's share of an hour's risk (log-odds of the uncalibrated model) and what it is now, in words."""

    input: str
    text: str
    value: float | None
    earlier: float | None
    contribution: float


def contributions_by_input(feature_names: Sequence[str], contributions: NDArray[np.float64]) -> dict[str, float]:
    """One row's feature contributions summed per Challenge column (a feature of several inputs shared equally)."""
    totals: dict[str, float] = {}
    for name, contribution in zip(feature_names, contributions):
        inputs = FEATURE_INPUTS[name]
        for column in inputs:
            totals[column] = totals.get(column, 0.0) + float(contribution) / len(inputs)
    return totals


def describe(column: str, value: float | None, earlier: float | None, hours: int) -> str:
    """``respiration 30/min, up from 18 over 6 h``; ``SpO2 90 %``; ``male``; ``Lactate not measured``."""
    clinical = CLINICAL_INPUTS.get(column, ClinicalInput(column))
    if value is None:
        return f"{clinical.label} not measured"
    if column == "Gender":
        return "male" if value == 1 else "female"
    now = f"{value:.{clinical.decimals}f}"
    text = f"{clinical.label} {now}{clinical.unit}"
    if column in TRENDED and earlier is not None and hours > 0 and f"{earlier:.{clinical.decimals}f}" != now:
        direction = "up" if value > earlier else "down"
        text += f", {direction} from {earlier:.{clinical.decimals}f} over {hours} h"
    return text


def reasons(
    totals: dict[str, float], now: dict[str, float | None], earlier: dict[str, float | None], hours: int, top: int
) -> list[Reason]:
    """The ``top`` inputs with the largest summed contributions (either sign), each in clinical words."""
    ranked = sorted(totals, key=lambda column: -abs(totals[column]))[:top]
    return [
        Reason(
            column,
            describe(column, now.get(column), earlier.get(column), hours),
            now.get(column),
            earlier.get(column),
            round(totals[column], 4),
        )
        for column in ranked
    ]
