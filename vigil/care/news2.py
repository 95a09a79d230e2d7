"""NEWS2, the Royal College of Physicians' National Early Warning Score 2 (2017), and its clinical response.

Inputs are rounded to the chart's resolution first (whole numbers; temperature to 0.1 degC), half up,
then scored with the official chart bands (``vigil.news2_chart``). A vital sign that was not measured
contributes nothing and is listed in ``missing``. Supplemental oxygen defaults to "on air" and consciousness to "Alert"
when not given (a remote-monitoring patient is usually at home, on air, and awake); such defaults are
listed in ``assumed`` so that a reader knows which parts of the score were not observed.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal, get_args

from vigil.news2_chart import SCORING_RESOLUTION, SpO2Scale, band_score, parameter_bands

Consciousness = Literal["alert", "confusion", "voice", "pain", "unresponsive"]
"""ACVPU; "confusion" means new confusion (or new delirium / worsening confusion)."""

RiskBand = Literal["low", "low-medium", "medium", "high"]

CONSCIOUSNESS_LEVELS: tuple[Consciousness, ...] = get_args(Consciousness)

MEASURED_PARAMETERS = ("resp_rate", "spo2", "systolic_bp", "heart_rate", "body_temp")
"""The NEWS2 parameters a device measures, named as in the metric catalogue."""

RED_SCORE = 3
MEDIUM_RISK_TOTAL = 5
HIGH_RISK_TOTAL = 7

SUPPLEMENTAL_OXYGEN_SCORE = 2

PARAMETER_LABELS = {
    "resp_rate": ("Respiration rate", "/min"),
    "spo2": ("SpO2", "%"),
    "supplemental_oxygen": ("Supplemental oxygen", ""),
    "systolic_bp": ("Systolic BP", " mmHg"),
    "heart_rate": ("Pulse", "/min"),
    "consciousness": ("Consciousness", ""),
    "body_temp": ("Temperature", " °C"),
}


ASSUMED_WORDS = {"supplemental_oxygen": "on air", "consciousness": "Alert"}


@dataclass(frozen=True)
class ClinicalResponse:
    """The RCP's recommended monitoring frequency and clinical response for a NEWS2 result."""

    trigger: str
    monitoring: str
    action: str


RESPONSE_ROUTINE = ClinicalResponse("NEWS2 0", "Minimum 12-hourly", "Continue routine NEWS2 monitoring.")
RESPONSE_LOW = ClinicalResponse(
    "NEWS2 1-4 (low)",
    "Minimum 4-6-hourly",
    "Inform a registered nurse, who must assess the patient and decide whether increased "
    "frequency of monitoring and/or escalation of care is required.",
)
RESPONSE_LOW_MEDIUM = ClinicalResponse(
    "Score of 3 in a single parameter (low-medium)",
    "Minimum 1-hourly",
    "A registered nurse informs the medical team caring for the patient, who will review and "
    "decide whether escalation of care is necessary.",
)
RESPONSE_MEDIUM = ClinicalResponse(
    "NEWS2 5-6 (medium): urgent response threshold",
    "Minimum 1-hourly",
    "Inform the medical team caring for the patient immediately; urgent review by a clinician or "
    "team competent in the care of acutely ill patients; provide care in an environment with "
    "monitoring facilities.",
)
RESPONSE_HIGH = ClinicalResponse(
    "NEWS2 7 or more (high): emergency response threshold",
    "Continuous monitoring of vital signs",
    "Inform the medical team immediately (at least specialist registrar level); emergency assessment "
    "by a team with critical-care competencies, including advanced airway skills; consider transfer "
    "to a level 2 or 3 care facility (HDU or ICU).",
)
RESPONSE_BY_BAND: dict[RiskBand, ClinicalResponse] = {
    "low": RESPONSE_LOW,
    "low-medium": RESPONSE_LOW_MEDIUM,
    "medium": RESPONSE_MEDIUM,
    "high": RESPONSE_HIGH,
}


@dataclass(frozen=True)
class News2Score:
    """A NEWS2 result: the total, each parameter's score, the (rounded) values scored, and what was missing."""

    total: int
    components: dict[str, int]
    values: dict[str, float | bool | str]
    missing: tuple[str, ...]
    assumed: tuple[str, ...]
    band: RiskBand
    spo2_scale: SpO2Scale

    @property
    def complete(self) -> bool:
        """True when all five measured vital signs were present."""
        return not self.missing

    @property
    def red_parameters(self) -> tuple[str, ...]:
        """The parameters scoring 3 on their own."""
        return tuple(name for name, score in self.components.items() if score == RED_SCORE)

    @property
    def response(self) -> ClinicalResponse:
        """The RCP's recommended monitoring frequency and response for this result."""
        return RESPONSE_ROUTINE if self.total == 0 else RESPONSE_BY_BAND[self.band]

    def details(self) -> dict[str, Any]:
        """A JSON-ready description, as stored with the score."""
        return {
            "total": self.total,
            "components": dict(self.components),
            "values": dict(self.values),
            "band": self.band,
            "missing": list(self.missing),
            "assumed": list(self.assumed),
            "complete": self.complete,
            "measured_count": len(MEASURED_PARAMETERS) - len(self.missing),
            "parameter_count": len(MEASURED_PARAMETERS),
            "spo2_scale": self.spo2_scale,
            "monitoring": self.response.monitoring,
            "response": self.response.action,
        }


def round_half_up(value: float, decimals: int = 0) -> float:
    """Round as the chart reads: 38.05 -> 38.1 and 90.5 -> 91 (decimal half up, not banker's rounding)."""
    quantum = Decimal(1).scaleb(-decimals)
    return float(Decimal(str(value)).quantize(quantum, rounding=ROUND_HALF_UP))


def risk_band(total: int, components: dict[str, int]) -> RiskBand:
    """Clinical risk: high >= 7, medium 5-6, low-medium for a single red parameter below 5, else low."""
    if total >= HIGH_RISK_TOTAL:
        return "high"
    if total >= MEDIUM_RISK_TOTAL:
        return "medium"
    return "low-medium" if RED_SCORE in components.values() else "low"


def describe_parameter(name: str, value: float | bool | str) -> str:
    """A parameter and its value in plain words, e.g. "Pulse 112/min"."""
    label, unit = PARAMETER_LABELS[name]
    if isinstance(value, bool):
        return f"{label}: {'yes' if value else 'no (air)'}"
    if isinstance(value, str):
        return f"{label}: {value}"
    shown = f"{value:.1f}" if name == "body_temp" else f"{value:.0f}"
    return f"{label} {shown}{unit}"


def score_measured(
    measurements: dict[str, float | None], spo2_scale: SpO2Scale, on_oxygen: bool
) -> dict[str, tuple[float, int]]:
    """(rounded value, score) of every measured parameter that is present."""
    scored = {}
    for name, raw in measurements.items():
        if raw is not None:
            rounded = round_half_up(raw, SCORING_RESOLUTION[name])
            scored[name] = (rounded, band_score(rounded, parameter_bands(name, spo2_scale, on_oxygen)))
    return scored


def news2_score(
    *,
    resp_rate: float | None = None,
    spo2: float | None = None,
    systolic_bp: float | None = None,
    heart_rate: float | None = None,
    body_temp: float | None = None,
    supplemental_oxygen: bool | None = None,
    consciousness: Consciousness | None = None,
    spo2_scale: SpO2Scale = 1,
) -> News2Score:
    """Score NEWS2 from whatever vital signs are available (see the module docstring for defaults)."""
    if consciousness is not None and consciousness not in CONSCIOUSNESS_LEVELS:
        raise ValueError(f"consciousness must be one of {CONSCIOUSNESS_LEVELS}, not {consciousness!r}")
    if spo2_scale not in (1, 2):
        raise ValueError(f"spo2_scale must be 1 or 2, not {spo2_scale!r}")
    on_oxygen, level = bool(supplemental_oxygen), consciousness or "alert"
    measurements = {
        "resp_rate": resp_rate,
        "spo2": spo2,
        "systolic_bp": systolic_bp,
        "heart_rate": heart_rate,
        "body_temp": body_temp,
    }
    scored = score_measured(measurements, spo2_scale, on_oxygen)
    values: dict[str, float | bool | str] = {name: value for name, (value, _) in scored.items()}
    components = {name: score for name, (_, score) in scored.items()}
    values |= {"supplemental_oxygen": on_oxygen, "consciousness": level}
    components |= {
        "supplemental_oxygen": SUPPLEMENTAL_OXYGEN_SCORE if on_oxygen else 0,
        "consciousness": 0 if level == "alert" else RED_SCORE,
    }
    total = sum(components.values())
    defaults = {"supplemental_oxygen": supplemental_oxygen, "consciousness": consciousness}
    return News2Score(
        total=total,
        components=components,
        values=values,
        missing=tuple(name for name in MEASURED_PARAMETERS if name not in scored),
        assumed=tuple(name for name, given in defaults.items() if given is None),
        band=risk_band(total, components),
        spo2_scale=spo2_scale,
    )


def explain(score: News2Score) -> str:
    """Why the score is what it is, in plain words: each scoring parameter and what was not measured."""
    scoring = [
        f"{describe_parameter(name, score.values[name])} scores {points}"
        for name, points in score.components.items()
        if points > 0
    ]
    measured = len(MEASURED_PARAMETERS) - len(score.missing)
    if score.missing:
        text = f"NEWS2 is at least {score.total} (partial: {measured} of {len(MEASURED_PARAMETERS)} measured"
        text += f", {score.band} clinical risk on those)"
    else:
        text = f"NEWS2 is {score.total} ({score.band} clinical risk)"
    if scoring:
        text += ": " + ", ".join(scoring)
    if score.missing:
        not_measured = ", ".join(PARAMETER_LABELS[name][0] for name in score.missing)
        text += f". Not measured: {not_measured}, so the true score may be higher"
    if score.assumed:
        assumed = ", ".join(ASSUMED_WORDS[name] for name in score.assumed)
        text += f". Assumed, not recorded: {assumed}"
    return text + "."
