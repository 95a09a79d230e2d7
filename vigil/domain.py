"""Typed values that flow between the stages: readings, patients, devices, scores, alerts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class Quality(StrEnum):
    """A stored reading's quality flag: implausible ones are kept but ignored by the signal stage."""

    OK = "ok"
    IMPLAUSIBLE = "implausible"


class Role(StrEnum):
    ADMIN = "admin"
    CLINICIAN = "clinician"
    PATIENT = "patient"


class Severity(StrEnum):
    """An alert's severity, least severe first (the store escalates an open alert in this order)."""

    INFO = "info"
    WARNING = "warning"
    URGENT = "urgent"
    EMERGENCY = "emergency"


class AlertEventKind(StrEnum):
    """What happened to an alert: each change is kept in its history."""

    RAISED = "raised"
    ESCALATED = "escalated"  # its severity rose
    UPDATED = "updated"  # its condition worsened (or was confirmed) within the same severity
    RENOTIFIED = "renotified"  # still unacknowledged after its severity's interval: raised again
    ACKNOWLEDGED = "acknowledged"


class ScoreKind(StrEnum):
    NEWS2 = "news2"
    SEPSIS_RISK = "sepsis_risk"


class AlertRule(StrEnum):
    """Every rule an alert can be raised by: care's rules on the vitals, the sepsis model, the glucose forecast."""

    NEWS2_URGENT = "news2_urgent"
    NEWS2_SINGLE_RED = "news2_single_3"
    HEART_RATE_RISE = "hr_rise"
    GLUCOSE_LOW = "glucose_low"
    GLUCOSE_HIGH = "glucose_high"
    SEPSIS_RISK = "sepsis_risk"
    GLUCOSE_FORECAST_LOW = "glucose_forecast_low"
    GLUCOSE_FORECAST_HIGH = "glucose_forecast_high"


class RecommendationKind(StrEnum):
    """What a recommendation suggests: escalating care (NEWS2), or insulin and carbohydrate (the glucose advisor)."""

    ESCALATION = "escalation"
    MEAL_BOLUS = "meal_bolus"
    CORRECTION_BOLUS = "correction_bolus"
    TEMP_BASAL = "temp_basal"
    RESCUE_CARBS = "rescue_carbs"


class Consciousness(StrEnum):
    """ACVPU, as NEWS2 scores it: "confusion" is new confusion (or new delirium or worsening confusion)."""

    ALERT = "alert"
    CONFUSION = "confusion"
    VOICE = "voice"
    PAIN = "pain"
    UNRESPONSIVE = "unresponsive"


@dataclass(frozen=True)
class News2Inputs:
    """What a clinician records for NEWS2 that a wearable cannot measure; None means not recorded (NEWS2 assumes
    air and Alert, and says so). SpO2 scale 2 is only for a prescribed 88-92 % target, with its reason."""

    patient_id: str
    time: datetime
    recorded_by: str
    supplemental_oxygen: bool | None = None
    oxygen_flow: float | None = None  # L/min
    consciousness: Consciousness | None = None
    spo2_scale: int = 1
    spo2_scale_reason: str | None = None


class RecommendationStatus(StrEnum):
    """Where a recommendation stands: only a pending one, still valid, can be accepted or rejected."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"
    EXPIRED = "expired"


DEFAULT_VALIDITY = timedelta(minutes=30)
"""How long a recommendation whose maker gives no ``valid_until`` holds: none is actionable for ever."""


@dataclass(frozen=True)
class Reading:
    """One validated measurement in canonical units, attributed to a patient through its device."""

    patient_id: str
    device_id: str
    metric: str  # a vigil.metrics.MetricName (the domain imports no other Vigil module)
    time: datetime  # timezone-aware UTC
    value: float
    unit: str
    seq: int | None = None
    quality: Quality = Quality.OK


@dataclass(frozen=True)
class Patient:
    """A patient; name, birth date, contact details and notes are direct identifiers, stored encrypted."""

    patient_id: str
    name: str
    birth_date: str | None = None
    sex: str | None = None
    conditions: tuple[str, ...] = ()
    created_at: datetime | None = None
    phone: str | None = None
    email: str | None = None
    address: str | None = None
    notes: str | None = None


@dataclass(frozen=True)
class Device:
    device_id: str
    patient_id: str
    kind: str
    revoked: bool = False


@dataclass(frozen=True)
class DeadLetter:
    """A broker message that was acknowledged but not ingested, and why; the payload itself is never kept (it may be
    health data), only its SHA-256 and size."""

    received_at: datetime
    device_id: str | None  # the device the topic names (or the login that sent it), None if neither is known
    topic: str
    reason: str
    payload_sha256: str
    payload_bytes: int


@dataclass(frozen=True)
class User:
    username: str
    role: Role
    password_hash: str
    patient_id: str | None = None
    totp_enabled: bool = False
    locked: bool = False  # by an admin: no login, no session, until unlocked


@dataclass(frozen=True)
class VitalsSnapshot:
    """A patient's latest cleaned vitals and window features, produced by the signal stage."""

    patient_id: str
    time: datetime
    values: dict[str, float]
    measured_at: dict[str, datetime]
    features: dict[str, dict[str, float]] = field(default_factory=dict)
    gaps: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class Score:
    """A derived score for a patient at a time (NEWS2 now, model risks later)."""

    patient_id: str
    kind: ScoreKind
    time: datetime
    value: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertDraft:
    """An alert the care stage wants raised; the store keeps one open alert per (patient_id, rule) and updates it
    only with a worse draft: a higher severity, or the same severity at a higher ``level`` of the rule."""

    patient_id: str
    rule: AlertRule
    severity: Severity
    time: datetime
    message: str
    data: dict[str, Any] = field(default_factory=dict)
    level: int = 1


@dataclass(frozen=True)
class AlertEvent:
    """One change in an alert's life: raised, escalated, updated, re-notified or acknowledged."""

    time: datetime
    kind: AlertEventKind
    severity: Severity
    message: str


@dataclass(frozen=True)
class Alert:
    """An alert as stored: ``time``, severity, message and data are those of its latest (worst) draft."""

    alert_id: int
    patient_id: str
    rule: AlertRule
    severity: Severity
    time: datetime
    message: str
    data: dict[str, Any]
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    raised_at: datetime | None = None
    last_notified_at: datetime | None = None
    notified_count: int = 1
    history: tuple[AlertEvent, ...] = ()


@dataclass(frozen=True)
class RecommendationDraft:
    """A suggestion for the care team, with its reason, the data behind it and until when it holds.

    A new pending draft supersedes the pending recommendation of the same patient, kind and ``subject`` (what it is
    about: one meal's time for a meal bolus, nothing more specific for the other kinds)."""

    patient_id: str
    kind: RecommendationKind
    time: datetime
    action: str
    reason: str
    data: dict[str, Any] = field(default_factory=dict)
    valid_until: datetime | None = None  # None: DEFAULT_VALIDITY after ``time``
    subject: str = ""

    def expiry(self) -> datetime:
        """When it stops holding."""
        return self.valid_until or self.time + DEFAULT_VALIDITY


@dataclass(frozen=True)
class Recommendation:
    """A recorded recommendation: its text never changes; ``version`` goes up with every change of status."""

    recommendation_id: int
    patient_id: str
    kind: RecommendationKind
    time: datetime
    action: str
    reason: str
    data: dict[str, Any]
    valid_until: datetime
    status: RecommendationStatus = RecommendationStatus.PENDING
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_note: str | None = None
    version: int = 1
    superseded_by: int | None = None
    subject: str = ""
