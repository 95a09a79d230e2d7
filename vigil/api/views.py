"""JSON shapes of the people-facing API."""

from __future__ import annotations

from typing import Any

from vigil.domain import Alert, Patient, Reading, Recommendation, Score
from vigil.timeutil import format_time


def _time(value) -> str | None:
    return format_time(value) if value else None


def patient_json(patient: Patient, status: dict[str, Any] | None = None, open_alerts: int = 0) -> dict[str, Any]:
    return {
        "patient_id": patient.patient_id,
        "name": patient.name,
        "birth_date": patient.birth_date,
        "sex": patient.sex,
        "conditions": list(patient.conditions),
        "status": status,
        "open_alerts": open_alerts,
    }


def contact_json(patient: Patient) -> dict[str, Any]:
    """Contact details and notes: shown on a single patient's record, not in lists."""
    return {"phone": patient.phone, "email": patient.email, "address": patient.address, "notes": patient.notes}


def reading_json(reading: Reading) -> dict[str, Any]:
    return {
        "metric": reading.metric,
        "time": format_time(reading.time),
        "value": reading.value,
        "unit": reading.unit,
        "quality": reading.quality,
        "device_id": reading.device_id,
        "seq": reading.seq,
    }


def score_json(score: Score) -> dict[str, Any]:
    return {"time": format_time(score.time), "value": score.value, **score.details}


def alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "patient_id": alert.patient_id,
        "rule": alert.rule,
        "severity": alert.severity,
        "time": format_time(alert.time),
        "message": alert.message,
        "data": alert.data,
        "acknowledged_by": alert.acknowledged_by,
        "acknowledged_at": _time(alert.acknowledged_at),
    }


def recommendation_json(rec: Recommendation) -> dict[str, Any]:
    return {
        "recommendation_id": rec.recommendation_id,
        "patient_id": rec.patient_id,
        "kind": rec.kind,
        "time": format_time(rec.time),
        "action": rec.action,
        "reason": rec.reason,
        "data": rec.data,
        "status": rec.status,
        "decided_by": rec.decided_by,
        "decided_at": _time(rec.decided_at),
        "decision_note": rec.decision_note,
    }
