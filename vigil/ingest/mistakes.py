"""The likely mistake behind a value outside a metric's limits, so that a device integrator learns what to fix."""

from __future__ import annotations

from collections.abc import Callable

from vigil.metrics import GLUCOSE_MG_DL_PER_MMOL_L, METRICS, MetricName

KPA_TO_MM_HG = 7.50062
Hint = Callable[[float], str | None]


def _spo2(value: float) -> str | None:
    if 0 < value <= 1:
        return f"looks like a fraction; % expected ({value:g} = {100 * value:g} %)"
    return None


def _glucose(value: float) -> str | None:
    if 1 <= value <= 40:
        converted = value * GLUCOSE_MG_DL_PER_MMOL_L
        return f'looks like mmol/L; send "unit": "mmol/L" or mg/dL ({value:g} mmol/L = {converted:.0f} mg/dL)'
    return None


def _temperature(value: float) -> str | None:
    if 86 <= value <= 113:
        celsius = (value - 32) * 5 / 9
        return f'looks like degrees Fahrenheit; send "unit": "[degF]" or Cel ({value:g} degF = {celsius:.1f} Cel)'
    return None


def _pressure(value: float) -> str | None:
    if 2 <= value <= 35:
        return f"looks like kPa; mm[Hg] expected ({value:g} kPa = {value * KPA_TO_MM_HG:.0f} mm[Hg])"
    return None


def _heart_rate(value: float) -> str | None:
    if value > METRICS[MetricName.HEART_RATE].plausible_limits[1]:
        return "above 250/min: a doubled count (motion artefact) or a value in another unit?"
    return None


def _steps(value: float) -> str | None:
    return "more steps than one reading's interval holds: a cumulative day count sent instead of the increment?"


def _hrv(value: float) -> str | None:
    if 0 < value < 1:
        return f"looks like seconds; ms expected ({value:g} s = {1000 * value:g} ms)"
    return None


def _basal(value: float) -> str | None:
    return f"above 5 U/h: a daily total (U/day) sent as a rate? ({value:g} U/day = {value / 24:.2f} U/h)"


def _carbs(value: float) -> str | None:
    return "more than 300 g at once: kcal or kJ sent instead of grams?"


def _bolus(value: float) -> str | None:
    return "more than 25 U at once: check the unit (U) and the device's decimal point"


def _oxygen_flow(value: float) -> str | None:
    return "above 60 L/min (the most high-flow nasal oxygen gives): mL/min sent instead of L/min?"


HINTS: dict[str, Hint] = {
    MetricName.SPO2: _spo2,
    MetricName.GLUCOSE: _glucose,
    MetricName.BODY_TEMP: _temperature,
    MetricName.SYSTOLIC_BP: _pressure,
    MetricName.DIASTOLIC_BP: _pressure,
    MetricName.HEART_RATE: _heart_rate,
    MetricName.STEPS: _steps,
    MetricName.HRV_RMSSD: _hrv,
    MetricName.INSULIN_BASAL: _basal,
    MetricName.CARBS: _carbs,
    MetricName.INSULIN_BOLUS: _bolus,
    MetricName.OXYGEN_FLOW: _oxygen_flow,
}


def likely_mistake(metric: str, value: float) -> str | None:
    """What probably went wrong with this value of this metric, or None when nothing obvious."""
    hint = HINTS.get(metric)
    return hint(value) if hint else None


def implausible_warning(metric: str, value: float) -> str:
    """The warning for a reading stored as implausible: the likely mistake first, then the plausible range."""
    spec = METRICS[metric]
    low, high = spec.plausible_limits
    mistake = likely_mistake(metric, value) or "outside the plausible range"
    return f"{metric} {value:g}: {mistake}. Stored as implausible (plausible {low:g}-{high:g} {spec.unit})"
