"""The metric catalogue: each measured quantity's LOINC code, UCUM unit, accepted units and limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

GLUCOSE_MG_DL_PER_MMOL_L = 18.016  # molar mass of glucose 180.16 g/mol


class MetricName(StrEnum):
    """Every quantity a device may send, by the name it sends (`"metric": "heart_rate"`)."""

    HEART_RATE = "heart_rate"
    SPO2 = "spo2"
    SYSTOLIC_BP = "systolic_bp"
    DIASTOLIC_BP = "diastolic_bp"
    RESP_RATE = "resp_rate"
    BODY_TEMP = "body_temp"
    GLUCOSE = "glucose"
    STEPS = "steps"
    HRV_RMSSD = "hrv_rmssd"
    CARBS = "carbs"
    INSULIN_BOLUS = "insulin_bolus"
    INSULIN_BASAL = "insulin_basal"
    OXYGEN_FLOW = "oxygen_flow"


def _identity(value: float) -> float:
    return value


def _fahrenheit_to_celsius(value: float) -> float:
    return (value - 32.0) * 5.0 / 9.0


def _mmol_to_mg_dl(value: float) -> float:
    return value * GLUCOSE_MG_DL_PER_MMOL_L


@dataclass(frozen=True)
class Metric:
    """One measured quantity: how it is coded, which units it accepts, and its limits.

    Values outside ``hard_limits`` are physiologically impossible and rejected; values
    outside ``plausible_limits`` are stored with the quality flag ``implausible``.
    """

    name: MetricName
    loinc: str
    unit: str
    display: str
    hard_limits: tuple[float, float]
    plausible_limits: tuple[float, float]
    unit_aliases: dict[str, Callable[[float], float]] = field(default_factory=dict)
    unit_required: bool = False

    def accepted_units(self) -> dict[str, Callable[[float], float]]:
        """Every unit this metric accepts, mapped to its converter into the canonical unit."""
        return {self.unit: _identity, **self.unit_aliases}


def _metric(name, loinc, unit, display, hard, plausible, aliases=None, unit_required=False) -> Metric:
    return Metric(name, loinc, unit, display, hard, plausible, aliases or {}, unit_required)


_PER_MIN = {"bpm": _identity, "1/min": _identity, "{beats}/min": _identity, "{breaths}/min": _identity}
_MM_HG = {"mmHg": _identity, "mm Hg": _identity}

METRICS: dict[str, Metric] = {  # keyed by MetricName; a reading's metric is looked up as the str it is
    m.name: m
    for m in [
        _metric(MetricName.HEART_RATE, "8867-4", "/min", "Heart rate", (0, 350), (25, 250), _PER_MIN),
        _metric(MetricName.SPO2, "59408-5", "%", "SpO2", (0, 100), (50, 100)),
        _metric(MetricName.SYSTOLIC_BP, "8480-6", "mm[Hg]", "Systolic BP", (10, 350), (50, 260), _MM_HG),
        _metric(MetricName.DIASTOLIC_BP, "8462-4", "mm[Hg]", "Diastolic BP", (5, 250), (25, 160), _MM_HG),
        _metric(MetricName.RESP_RATE, "9279-1", "/min", "Respiratory rate", (0, 100), (4, 60), _PER_MIN),
        _metric(
            MetricName.BODY_TEMP,
            "8310-5",
            "Cel",
            "Body temperature",
            (10, 46),
            (33, 42),
            {"degC": _identity, "[degF]": _fahrenheit_to_celsius, "degF": _fahrenheit_to_celsius},
        ),
        _metric(
            MetricName.GLUCOSE,
            "2339-0",
            "mg/dL",
            "Glucose",
            (0, 2700),
            (20, 600),
            {"mmol/L": _mmol_to_mg_dl},
        ),
        _metric(MetricName.STEPS, "55423-8", "{steps}", "Steps", (0, 100_000), (0, 20_000), {"steps": _identity}),
        _metric(MetricName.HRV_RMSSD, "80404-7", "ms", "HRV (RMSSD)", (0, 3000), (3, 300)),
        _metric(MetricName.CARBS, "9059-7", "g", "Carbohydrate intake", (0, 1000), (0, 300)),
        _metric(MetricName.INSULIN_BOLUS, "", "U", "Insulin bolus", (0, 100), (0, 25), {"[iU]": _identity}, True),
        _metric(
            MetricName.INSULIN_BASAL, "", "U/h", "Insulin basal rate", (0, 50), (0, 5), {"[iU]/h": _identity}, True
        ),
        _metric(
            MetricName.OXYGEN_FLOW,
            "3151-8",
            "L/min",
            "Inhaled oxygen flow rate",
            (0, 100),
            (0, 60),
            {"l/min": _identity, "LPM": _identity},
        ),
    ]
}

VITAL_SIGNS = (
    MetricName.HEART_RATE,
    MetricName.SPO2,
    MetricName.SYSTOLIC_BP,
    MetricName.DIASTOLIC_BP,
    MetricName.RESP_RATE,
    MetricName.BODY_TEMP,
)
