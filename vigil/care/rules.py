"""Alert rules: pure functions from a snapshot (and its NEWS2 score) to a verdict on one condition.

A rule returns None when it cannot judge (the data it needs is missing or stale), a verdict of
level 0 when its condition is absent, and a level of 1 or more while the condition holds; a higher
level is a more severe stage of the same condition (e.g. NEWS2 going from medium to high).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vigil.care.news2 import (
    HIGH_RISK_TOTAL,
    MEDIUM_RISK_TOTAL,
    News2Score,
    describe_parameter,
    explain,
)
from vigil.domain import AlertRule, RecommendationKind, Severity, VitalsSnapshot
from vigil.metrics import GLUCOSE_MG_DL_PER_MMOL_L, METRICS, MetricName

HR_RISE_MIN_ABSOLUTE = 30.0
"""A heart-rate rise alert needs the recent median at least this many beats/min above baseline..."""
HR_RISE_MIN_FRACTION = 0.30
"""...and at least this fraction of the baseline."""

HYPOGLYCAEMIA_LEVEL_1 = 70.0  # mg/dL, below this: level 1 hypoglycaemia (warning)
HYPOGLYCAEMIA_LEVEL_2 = 54.0  # mg/dL, below this: level 2 hypoglycaemia (emergency)
HYPERGLYCAEMIA = 250.0  # mg/dL, above this: marked hyperglycaemia (warning)


@dataclass(frozen=True)
class RuleVerdict:
    """A rule's view of its condition now; level 0 means the condition is absent. The care engine also tracks
    escalation advice as a verdict, under its recommendation kind."""

    rule: AlertRule | RecommendationKind
    level: int
    severity: Severity = Severity.INFO
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def news2_escalation_level(score: News2Score) -> int:
    """0 below the urgent response threshold, 1 for medium risk (5-6), 2 for high risk (>= 7)."""
    if score.total >= HIGH_RISK_TOTAL:
        return 2
    return 1 if score.total >= MEDIUM_RISK_TOTAL else 0


def news2_urgent(score: News2Score | None) -> RuleVerdict | None:
    """NEWS2 of 5 or more: an urgent (5-6) or emergency (>= 7) response is needed.

    The level rises with the total (5 is level 1), so each higher score updates the open alert.
    """
    if score is None:
        return None
    if score.total < MEDIUM_RISK_TOTAL:
        return RuleVerdict(AlertRule.NEWS2_URGENT, 0)
    severity = Severity.EMERGENCY if score.total >= HIGH_RISK_TOTAL else Severity.URGENT
    level = score.total - MEDIUM_RISK_TOTAL + 1
    message = f"{explain(score)} {score.response.trigger}: {score.response.action}"
    return RuleVerdict(AlertRule.NEWS2_URGENT, level, severity, message, score.details())


def news2_single_red(score: News2Score | None) -> RuleVerdict | None:
    """Any single NEWS2 parameter scoring 3: the medical team should review (urgent when NEWS2 >= 5)."""
    if score is None:
        return None
    red = score.red_parameters
    if not red:
        return RuleVerdict(AlertRule.NEWS2_SINGLE_RED, 0)
    severity = Severity.URGENT if score.total >= MEDIUM_RISK_TOTAL else Severity.WARNING
    described = ", ".join(describe_parameter(name, score.values[name]) for name in red)
    message = (
        f"{described} scores 3 on its own (NEWS2 total {score.total}): the medical team should "
        "review the patient and decide whether to escalate care."
    )
    data = {"red_parameters": list(red), **score.details()}
    return RuleVerdict(AlertRule.NEWS2_SINGLE_RED, 1, severity, message, data)


def heart_rate_rise(snapshot: VitalsSnapshot) -> RuleVerdict | None:
    """The 15-minute median heart rate well above the patient's own 24-hour baseline."""
    heart_rate = snapshot.features.get(MetricName.HEART_RATE, {})
    baseline, recent = heart_rate.get("baseline"), heart_rate.get("recent_median")
    if baseline is None or recent is None:
        return None
    rise = recent - baseline
    if rise < HR_RISE_MIN_ABSOLUTE or rise < HR_RISE_MIN_FRACTION * baseline:
        return RuleVerdict(AlertRule.HEART_RATE_RISE, 0)
    message = (
        f"Heart rate over the last 15 minutes is {recent:.0f}/min, {rise:.0f}/min ({rise / baseline:.0%}) "
        f"above this patient's 24-hour baseline of {baseline:.0f}/min."
    )
    data = {"recent_median": recent, "baseline": baseline, "rise": rise, "rise_fraction": rise / baseline}
    return RuleVerdict(AlertRule.HEART_RATE_RISE, 1, Severity.WARNING, message, data)


def _glucose_data(snapshot: VitalsSnapshot, threshold: float) -> dict[str, Any]:
    data: dict[str, Any] = {
        "glucose": snapshot.values[MetricName.GLUCOSE],
        "measured_at": snapshot.measured_at[MetricName.GLUCOSE].isoformat(),
        "threshold": threshold,
    }
    trend = snapshot.features.get(MetricName.GLUCOSE, {}).get("trend_per_min")
    if trend is not None:
        data["trend_per_min"] = trend
    return data


def glucose_low(snapshot: VitalsSnapshot) -> RuleVerdict | None:
    """Glucose below 70 mg/dL (level 1 hypoglycaemia, a warning), an emergency below 54 mg/dL (level 2), and an
    emergency on a reading too low to be plausible (a severe low or a unit mistake: either way, check now)."""
    implausible = snapshot.features.get(MetricName.GLUCOSE, {}).get("implausible_low")
    if implausible is not None:
        return implausibly_low_glucose(snapshot, implausible)
    glucose = snapshot.values.get(MetricName.GLUCOSE)
    if glucose is None:
        return None
    if glucose >= HYPOGLYCAEMIA_LEVEL_1:
        return RuleVerdict(AlertRule.GLUCOSE_LOW, 0)
    if glucose < HYPOGLYCAEMIA_LEVEL_2:
        return severe_hypoglycaemia(snapshot, glucose)
    message = f"Glucose is {glucose:.0f} mg/dL, below {HYPOGLYCAEMIA_LEVEL_1:.0f} mg/dL (level 1 hypoglycaemia)."
    data = _glucose_data(snapshot, HYPOGLYCAEMIA_LEVEL_1)
    return RuleVerdict(AlertRule.GLUCOSE_LOW, 1, Severity.WARNING, message, data)


def severe_hypoglycaemia(snapshot: VitalsSnapshot, glucose: float) -> RuleVerdict:
    """Below 54 mg/dL: an emergency on the first such reading, unconfirmed (level 2) until the reading before it
    agrees (level 3, confirmed)."""
    previous = snapshot.features.get(MetricName.GLUCOSE, {}).get("previous")
    confirmed = previous is not None and previous < HYPOGLYCAEMIA_LEVEL_2
    how = (
        "confirmed by two consecutive readings: treat now."
        if confirmed
        else "unconfirmed (a single reading): check a finger-prick glucose and treat now."
    )
    message = (
        f"Glucose is {glucose:.0f} mg/dL, below {HYPOGLYCAEMIA_LEVEL_2:.0f} mg/dL "
        f"(level 2, clinically significant hypoglycaemia), {how}"
    )
    data = {**_glucose_data(snapshot, HYPOGLYCAEMIA_LEVEL_2), "confirmed": confirmed}
    if previous is not None:
        data["previous"] = previous
    return RuleVerdict(AlertRule.GLUCOSE_LOW, 3 if confirmed else 2, Severity.EMERGENCY, message, data)


def implausibly_low_glucose(snapshot: VitalsSnapshot, value: float) -> RuleVerdict:
    """A glucose reading below what a sensor measures is never dropped unseen: it may be a severe low, or a value
    sent in mmol/L; the message gives both readings and asks for a finger-prick check (unconfirmed, level 2)."""
    low, _ = METRICS[MetricName.GLUCOSE].plausible_limits
    as_mmol = value * GLUCOSE_MG_DL_PER_MMOL_L
    message = (
        f"Glucose reading {value:g} mg/dL is below what a sensor measures ({low:.0f} mg/dL): a severe low, or a "
        f"value sent in mmol/L ({value:g} mmol/L is {as_mmol:.0f} mg/dL). Check a finger-prick glucose now "
        "and the device's units."
    )
    measured = snapshot.features[MetricName.GLUCOSE]["implausible_low_at"]
    data = {
        "glucose": value,
        "plausible": False,
        "if_mmol_l_mg_dl": round(as_mmol, 1),
        "measured_at": datetime.fromtimestamp(measured, UTC).isoformat(),
        "threshold": low,
        "confirmed": False,
    }
    return RuleVerdict(AlertRule.GLUCOSE_LOW, 2, Severity.EMERGENCY, message, data)


def glucose_high(snapshot: VitalsSnapshot) -> RuleVerdict | None:
    """Glucose above 250 mg/dL."""
    glucose = snapshot.values.get(MetricName.GLUCOSE)
    if glucose is None:
        return None
    if glucose <= HYPERGLYCAEMIA:
        return RuleVerdict(AlertRule.GLUCOSE_HIGH, 0)
    message = f"Glucose is {glucose:.0f} mg/dL, above {HYPERGLYCAEMIA:.0f} mg/dL (marked hyperglycaemia)."
    return RuleVerdict(AlertRule.GLUCOSE_HIGH, 1, Severity.WARNING, message, _glucose_data(snapshot, HYPERGLYCAEMIA))
