"""End-to-end tests of signal -> care: artefacts do not alert, real deterioration does."""

from datetime import UTC, datetime, timedelta

import numpy as np

from vigil.care import CareEngine
from vigil.domain import Reading
from vigil.metrics import METRICS
from vigil.signal import SignalProcessor

START = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
RESTING = {"heart_rate": 66.0, "resp_rate": 15.0, "spo2": 97.0}


def minute_readings(patient: str, minute: int, vitals: dict[str, float]) -> list[Reading]:
    at = START + timedelta(minutes=minute)
    return [Reading(patient, "watch", m, at, v, METRICS[m].unit) for m, v in vitals.items()]


def resting_day(patient: str, minutes: int, seed: int = 0) -> list[Reading]:
    """Wearable vitals once a minute with seeded noise around a resting state."""
    noise = np.random.default_rng(seed).normal(0.0, 1.0, (minutes, len(RESTING)))
    return [
        reading
        for minute in range(minutes)
        for reading in minute_readings(
            patient, minute, {m: round(v + 2 * noise[minute, i]) for i, (m, v) in enumerate(RESTING.items())}
        )
    ]


def run(readings: list[Reading], batch_minutes: int = 5) -> list[list[str]]:
    """Stream readings through signal and care in batches; the alert rules raised per batch."""
    signal, care = SignalProcessor(), CareEngine()
    per_batch = len(RESTING) * batch_minutes
    raised = []
    for start in range(0, len(readings), per_batch):
        for snapshot in signal.process(readings[start : start + per_batch]):
            raised.append([alert.rule for alert in care.evaluate(snapshot).alerts])
    return raised


def test_a_motion_artefact_spike_raises_no_alert():
    readings = resting_day("p1", 4 * 60)
    spike_at = next(
        i for i, r in enumerate(readings) if r.metric == "heart_rate" and r.time >= START + timedelta(hours=3)
    )
    original = readings[spike_at]
    readings[spike_at] = Reading("p1", "watch", "heart_rate", original.time, 165.0, original.unit)
    assert all(rules == [] for rules in run(readings))


def test_a_sustained_heart_rate_rise_alerts_once():
    rising = [
        r for minute in range(20) for r in minute_readings("p1", 4 * 60 + minute, {**RESTING, "heart_rate": 112.0})
    ]
    raised = [rules for rules in run(resting_day("p1", 4 * 60) + rising) if rules]
    assert raised == [["hr_rise"]]


def test_a_late_batch_from_another_device_is_judged_as_of_its_own_time(tmp_path):
    """Blood pressure for the last hours arrives first; the wearable's backlog must still alert."""
    from vigil.pipeline import Pipeline
    from vigil.store import SqlStore

    store = SqlStore(f"sqlite:///{tmp_path / 'late.db'}")
    patient = store.add_patient("Late Batch").patient_id
    unwell = {"heart_rate": 125.0, "resp_rate": 26.0, "spo2": 91.0}
    wearable = [
        r for minute in range(120) for r in minute_readings(patient, minute, unwell if minute >= 60 else RESTING)
    ]
    blood_pressure = [
        Reading(patient, "cuff", "systolic_bp", START + timedelta(minutes=m), 95.0, "mm[Hg]") for m in (60, 90, 119)
    ]
    pipeline = Pipeline(store)
    pipeline.process(blood_pressure)
    raised = pipeline.process(wearable)
    assert "news2_urgent" in {alert.rule for alert in raised}
    assert store.list_status()[patient]["scores"]["news2"]["time"].startswith("2026-11-27T01:59")
