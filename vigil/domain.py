"""Typed values that flow between the stages: readings, patients, devices, scores, alerts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Quality = Literal["ok", "implausible"]
Role = Literal["admin", "clinician", "patient"]
Severity = Literal["info", "warning", "urgent"]


@dataclass(frozen=True)
class Reading:
    """One validated measurement in canonical units, attributed to a patient through its device."""

    patient_id: str
    device_id: str
    metric: str
    time: datetime  # timezone-aware UTC
    value: float
    unit: str
    seq: int | None = None
    quality: Quality = "ok"


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
    kind: str
    time: datetime
    value: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertDraft:
    """An alert the care stage wants raised; the store deduplicates on (patient_id, rule)."""

    patient_id: str
    rule: str
    severity: Severity
    time: datetime
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Alert:
    alert_id: int
    patient_id: str
    rule: str
    severity: Severity
    time: datetime
    message: str
    data: dict[str, Any]
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None


@dataclass(frozen=True)
class RecommendationDraft:
    """A suggestion for the care team, with its reason and the data behind it."""

    patient_id: str
    kind: str
    time: datetime
    action: str
    reason: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recommendation:
    recommendation_id: int
    patient_id: str
    kind: str
    time: datetime
    action: str
    reason: str
    data: dict[str, Any]
    status: Literal["pending", "accepted", "rejected"] = "pending"
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_note: str | None = None
