"""Alerts a clinician can act on: emergency severities, escalation with history, re-notification, urgent lows."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from vigil.care import CareEngine
from vigil.config import load_settings
from vigil.domain import AlertDraft, AlertRule, Reading, Severity, VitalsSnapshot
from vigil.pipeline import Pipeline, Renotifier
from vigil.signal import SignalProcessor
from vigil.store import SqlStore
from vigil.timeutil import format_time, utc_now

START = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
MEDIUM = {"resp_rate": 23.0, "spo2": 93.0, "systolic_bp": 120.0, "heart_rate": 95.0, "body_temp": 37.0}  # 5
HIGH = {"resp_rate": 24.0, "spo2": 93.0, "systolic_bp": 120.0, "heart_rate": 115.0, "body_temp": 38.5}  # 7
HIGHER = {"resp_rate": 26.0, "spo2": 91.0, "systolic_bp": 120.0, "heart_rate": 115.0, "body_temp": 38.5}  # 9


def snapshot(values: dict[str, float], minute: int = 0, features: dict | None = None) -> VitalsSnapshot:
    time = START + timedelta(minutes=minute)
    return VitalsSnapshot("p1", time, dict(values), {name: time for name in values}, features or {})


def news2_alerts(engine: CareEngine, values: dict[str, float], minute: int):
    return [a for a in engine.evaluate(snapshot(values, minute)).alerts if a.rule == AlertRule.NEWS2_URGENT]


# -- the rules ----------------------------------------------------------------------------------------
def test_news2_of_seven_or_more_is_an_emergency_and_five_is_urgent():
    engine = CareEngine(confirmation=timedelta(0))
    [medium] = news2_alerts(engine, MEDIUM, 0)
    [high] = news2_alerts(engine, HIGH, 1)
    assert (medium.severity, high.severity) == (Severity.URGENT, Severity.EMERGENCY)
    assert "NEWS2 is 7" in high.message


def test_a_news2_rising_within_the_emergency_band_updates_the_alert_and_a_fall_does_not():
    engine = CareEngine(confirmation=timedelta(0))
    raised = [news2_alerts(engine, values, i) for i, values in enumerate([HIGH, HIGHER, HIGHER, HIGH, HIGHER])]
    assert [len(alerts) for alerts in raised] == [1, 1, 0, 0, 0]
    assert "NEWS2 is 9" in raised[1][0].message and raised[1][0].data["total"] == 9


def test_the_persistence_gate_does_not_hold_back_escalation_once_the_condition_is_confirmed():
    engine = CareEngine()  # the 10-minute confirmation
    raised = [news2_alerts(engine, MEDIUM, minute) for minute in range(11)] + [news2_alerts(engine, HIGH, 11)]
    assert [len(alerts) for alerts in raised] == [0] * 10 + [1, 1]
    assert raised[-1][0].severity == Severity.EMERGENCY


def glucose_alerts(engine: CareEngine, glucose: float, minute: int, previous: float | None, walking: bool = False):
    features: dict = {"activity": {"active": 1.0}} if walking else {}
    if previous is not None:
        features["glucose"] = {"previous": previous}
    outcome = engine.evaluate(snapshot({"glucose": glucose}, minute, features))
    return [a for a in outcome.alerts if a.rule == AlertRule.GLUCOSE_LOW]


@pytest.mark.parametrize("walking", [False, True])
def test_glucose_below_54_is_an_emergency_at_once_unconfirmed_until_the_next_reading_agrees(walking):
    engine = CareEngine()  # the default gate (10-minute confirmation, activity-aware) never holds back glucose
    [first] = glucose_alerts(engine, 50.0, 0, previous=120.0, walking=walking)
    assert first.severity == Severity.EMERGENCY and first.data["confirmed"] is False
    assert "unconfirmed" in first.message
    [second] = glucose_alerts(engine, 48.0, 5, previous=50.0, walking=walking)
    assert second.severity == Severity.EMERGENCY and second.data["confirmed"] is True
    assert "unconfirmed" not in second.message
    assert glucose_alerts(engine, 47.0, 10, previous=48.0) == []


def test_glucose_between_54_and_70_is_a_warning():
    [alert] = glucose_alerts(CareEngine(), 60.0, 0, previous=65.0)
    assert alert.severity == Severity.WARNING


# -- the signal stage ---------------------------------------------------------------------------------
def cgm(patient: str, values: list[float], start: datetime = START) -> list[Reading]:
    return [
        Reading(patient, "cgm-1", "glucose", start + timedelta(minutes=5 * i), value, "mg/dL", i)
        for i, value in enumerate(values)
    ]


def test_the_spike_filter_never_hides_a_low_glucose():
    signal = SignalProcessor()
    readings = cgm("p1", [120.0] * 8 + [50.0, 48.0])
    signal.process(readings[:8])
    [low] = signal.process(readings[8:9])
    assert low.values["glucose"] == 50.0 and low.features["glucose"]["previous"] == 120.0
    [confirming] = signal.process(readings[9:])
    assert confirming.values["glucose"] == 48.0 and confirming.features["glucose"]["previous"] == 50.0


def test_the_spike_filter_still_removes_a_high_glucose_spike():
    signal = SignalProcessor()
    readings = cgm("p1", [120.0] * 8 + [300.0])
    signal.process(readings[:8])
    [spike] = signal.process(readings[8:])
    assert spike.values["glucose"] == 120.0


def test_cgm_120s_then_50_raise_an_unconfirmed_emergency_on_that_reading_and_48_confirms_it(any_store_url):
    store = SqlStore(any_store_url)
    patient = store.add_patient("Alan")
    pipeline = Pipeline(store, SignalProcessor(), CareEngine())
    readings = cgm(patient.patient_id, [120.0] * 8 + [50.0, 48.0], utc_now() - timedelta(minutes=50))
    for reading in readings[:8]:
        assert [a for a in pipeline.process([reading]) if a.rule == AlertRule.GLUCOSE_LOW] == []
    [low] = [a for a in pipeline.process([readings[8]]) if a.rule == AlertRule.GLUCOSE_LOW]
    assert (low.severity, low.time, low.data["confirmed"]) == (Severity.EMERGENCY, readings[8].time, False)
    [confirmed] = [a for a in pipeline.process([readings[9]]) if a.rule == AlertRule.GLUCOSE_LOW]
    assert confirmed.alert_id == low.alert_id and confirmed.data["confirmed"] is True
    assert [(e.kind, e.severity) for e in confirmed.history] == [("raised", "emergency"), ("updated", "emergency")]


# -- the store ----------------------------------------------------------------------------------------
def draft(patient_id: str, severity: str, message: str, level: int = 1, minute: int = 0) -> AlertDraft:
    return AlertDraft(
        patient_id,
        AlertRule.NEWS2_URGENT,
        Severity(severity),
        START + timedelta(minutes=minute),
        message,
        {"m": message},
        level,
    )


def test_an_open_alert_escalates_in_place_and_keeps_its_history(any_store_url):
    store = SqlStore(any_store_url)
    pid = store.add_patient("Edith").patient_id
    now = utc_now()
    first = store.raise_alert(draft(pid, "urgent", "NEWS2 is 6", 2), now=now)
    assert store.raise_alert(draft(pid, "urgent", "NEWS2 is 5", 1, 1), now=now) is None  # not worse: deduplicated
    escalated = store.raise_alert(draft(pid, "emergency", "NEWS2 is 8", 4, 2), now=now)
    worse = store.raise_alert(draft(pid, "emergency", "NEWS2 is 11", 7, 3), now=now)
    assert store.raise_alert(draft(pid, "urgent", "NEWS2 is 6", 2, 4), now=now) is None
    assert first.alert_id == escalated.alert_id == worse.alert_id
    current = store.get_alert(first.alert_id)
    assert (current.severity, current.message, current.data) == ("emergency", "NEWS2 is 11", {"m": "NEWS2 is 11"})
    assert current.raised_at == START and current.time == START + timedelta(minutes=3)
    assert [(e.kind, e.severity, e.message) for e in current.history] == [
        ("raised", "urgent", "NEWS2 is 6"),
        ("escalated", "emergency", "NEWS2 is 8"),
        ("updated", "emergency", "NEWS2 is 11"),
    ]
    assert current.notified_count == 3
    store.acknowledge_alert(first.alert_id, "nurse")
    assert store.get_alert(first.alert_id).history[-1].kind == "acknowledged"
    assert len(store.list_alerts([pid], open_only=True)) == 0


def test_an_alert_stored_before_raised_at_keeps_its_raise_time_when_escalated(any_store_url):
    store = SqlStore(any_store_url)
    pid = store.add_patient("Edith").patient_id
    first = store.raise_alert(draft(pid, "urgent", "NEWS2 is 6"))
    store._write("UPDATE alerts SET raised_at = NULL, last_notified_at = NULL")  # as an older Vigil left it
    escalated = store.raise_alert(draft(pid, "emergency", "NEWS2 is 8", minute=5))
    assert (escalated.alert_id, escalated.raised_at) == (first.alert_id, START)
    assert escalated.time == START + timedelta(minutes=5)


@pytest.mark.parametrize(
    ("severity", "due_after"),
    [("emergency", timedelta(minutes=5)), ("urgent", timedelta(minutes=15)), ("warning", timedelta(minutes=60))],
)
def test_an_unacknowledged_alert_is_raised_again_after_its_severitys_interval(any_store_url, severity, due_after):
    store = SqlStore(any_store_url)
    pid = store.add_patient("Edith").patient_id
    pipeline = Pipeline(store, SignalProcessor(), CareEngine())
    now = utc_now()
    alert = store.raise_alert(draft(pid, severity, "NEWS2 is 9"), now=now)
    assert pipeline.renotify_due(now + due_after - timedelta(seconds=1)) == []
    [again] = pipeline.renotify_due(now + due_after)
    assert (again.alert_id, again.notified_count, again.last_notified_at) == (alert.alert_id, 2, now + due_after)
    assert again.history[-1].kind == "renotified"
    assert pipeline.renotify_due(now + due_after + timedelta(seconds=1)) == []
    assert [a.notified_count for a in pipeline.renotify_due(now + 2 * due_after)] == [3]
    store.acknowledge_alert(alert.alert_id, "nurse")
    assert pipeline.renotify_due(now + 10 * due_after) == []


def test_an_alert_is_raised_again_once_even_when_two_processes_find_it_due(any_store_url, monkeypatch):
    store = SqlStore(any_store_url)
    pid = store.add_patient("Edith").patient_id
    now = utc_now()
    stale = store.raise_alert(draft(pid, "emergency", "NEWS2 is 9"), now=now)
    intervals = {Severity.EMERGENCY: timedelta(minutes=5)}
    assert len(store.renotify_due(now + timedelta(minutes=5), intervals)) == 1
    monkeypatch.setattr(store, "list_alerts", lambda **_: [stale])  # the other process read the alert before
    assert store.renotify_due(now + timedelta(minutes=5), intervals) == []
    assert store.get_alert(stale.alert_id).notified_count == 2


def test_info_alerts_are_not_raised_again(any_store_url):
    store = SqlStore(any_store_url)
    pid = store.add_patient("Edith").patient_id
    now = utc_now()
    store.raise_alert(draft(pid, "info", "note"), now=now)
    assert Pipeline(store, SignalProcessor(), CareEngine()).renotify_due(now + timedelta(days=1)) == []


class FlakyPipeline:
    """A pipeline whose first re-notification check fails."""

    def __init__(self) -> None:
        self.checks = 0
        self.second_check = threading.Event()

    def renotify_due(self) -> list:
        self.checks += 1
        if self.checks == 1:
            raise OSError("store unavailable")
        self.second_check.set()
        return []


def test_the_serving_process_keeps_checking_for_due_alerts_after_a_failed_check():
    pipeline = FlakyPipeline()
    renotifier = Renotifier(pipeline, period=0.01).start()  # type: ignore[arg-type]
    try:
        assert pipeline.second_check.wait(timeout=30)
    finally:
        renotifier.stop()


def test_renotify_intervals_are_configurable(monkeypatch):
    monkeypatch.setenv("VIGIL_RENOTIFY_EMERGENCY_MINUTES", "2")
    monkeypatch.setenv("VIGIL_RENOTIFY_WARNING_MINUTES", "0")
    intervals = load_settings().renotify
    assert intervals[Severity.EMERGENCY] == timedelta(minutes=2) and intervals[Severity.URGENT] == timedelta(minutes=15)
    assert Severity.WARNING not in intervals and Severity.INFO not in intervals


# -- through the HTTP contract ------------------------------------------------------------------------
def vitals_batch(values: dict[str, float], time: datetime, seq: int) -> list[dict]:
    return [
        {"metric": metric, "value": value, "time": format_time(time), "seq": seq * 10 + i}
        for i, (metric, value) in enumerate(values.items())
    ]


def test_news2_of_seven_for_25_minutes_shows_an_emergency_alert_escalated_from_urgent(ward):
    start = utc_now() - timedelta(minutes=40)
    phases = [MEDIUM] * 14 + [HIGHER] * 26
    for minute, values in enumerate(phases):
        assert ward.ingest(vitals_batch(values, start + timedelta(minutes=minute), minute)).status_code == 202
    headers = ward.login("dr_who")
    risk = ward.client.get(f"/api/v1/patients/{ward.patient_id}/risk", headers=headers).json()
    assert risk["news2"]["value"] >= 7
    [alert] = [a for a in ward.client.get("/api/v1/alerts", headers=headers).json() if a["rule"] == "news2_urgent"]
    assert alert["severity"] == "emergency"
    assert f"NEWS2 is {risk['news2']['value']:.0f}" in alert["message"]
    assert alert["data"]["total"] == risk["news2"]["value"]
    kinds = [(e["event"], e["severity"]) for e in alert["history"]]
    assert kinds[0] == ("raised", "urgent") and ("escalated", "emergency") in kinds
    assert alert["raised_at"] < alert["time"] and alert["notified_count"] == len(alert["history"])

    ward.ctx.pipeline.renotify_due(utc_now() + timedelta(minutes=5))
    [again] = [a for a in ward.client.get("/api/v1/alerts", headers=headers).json() if a["rule"] == "news2_urgent"]
    assert again["history"][-1]["event"] == "renotified" and again["notified_count"] == alert["notified_count"] + 1


def test_a_cgm_low_through_ingest_is_an_unconfirmed_emergency_then_confirmed(ward):
    start = utc_now() - timedelta(minutes=50)
    values = [120.0] * 8 + [50.0, 48.0]
    batches = [
        [{"metric": "glucose", "value": v, "time": format_time(start + timedelta(minutes=5 * i)), "seq": i}]
        for i, v in enumerate(values)
    ]
    headers = ward.login("root")
    for batch in batches[:9]:
        assert ward.ingest(batch, ward.other_token).status_code == 202
    [low] = [a for a in ward.client.get("/api/v1/alerts", headers=headers).json() if a["rule"] == "glucose_low"]
    assert (low["severity"], low["data"]["confirmed"], low["data"]["glucose"]) == ("emergency", False, 50.0)
    assert low["time"] == batches[8][0]["time"]
    ward.ingest(batches[9], ward.other_token)
    [confirmed] = [a for a in ward.client.get("/api/v1/alerts", headers=headers).json() if a["rule"] == "glucose_low"]
    assert confirmed["alert_id"] == low["alert_id"] and confirmed["data"]["confirmed"] is True
    assert [e["event"] for e in confirmed["history"]] == ["raised", "updated"]


def test_the_dashboard_shows_an_emergency_apart_from_urgent_with_its_mark_and_history(ward):
    store, now = ward.ctx.store, utc_now()
    store.raise_alert(AlertDraft(ward.patient_id, AlertRule.NEWS2_URGENT, Severity.URGENT, now, "NEWS2 is 6"))
    store.raise_alert(AlertDraft(ward.patient_id, AlertRule.NEWS2_URGENT, Severity.EMERGENCY, now, "NEWS2 is 9", {}, 5))
    low = {"glucose": 50.0, "confirmed": False}
    store.raise_alert(AlertDraft(ward.patient_id, AlertRule.GLUCOSE_LOW, Severity.EMERGENCY, now, "Glucose 50", low, 2))
    store.raise_alert(AlertDraft(ward.patient_id, AlertRule.HEART_RATE_RISE, Severity.URGENT, now, "HR up"))
    ward.web_login("dr_who")
    page = ward.client.get("/fragments/alerts").text
    assert page.count('data-severity="emergency"') == 2 and page.count('data-severity="urgent"') == 1
    assert page.count('class="unconfirmed-mark"') == 1
    assert '<li class="event-raised"' in page and '<li class="event-escalated"' in page
    assert "li.severity-emergency" in ward.client.get("/static/style.css").text


def test_a_glucose_reading_too_low_to_be_plausible_is_an_emergency_not_dropped_unseen(ward):
    """6.1 sent as mg/dL (a mmol/L value, or a real severe low): stored implausible with its ingest warning, and the
    care team is asked to check at once; a plausible reading after it answers the question."""
    start = utc_now() - timedelta(minutes=20)
    batches = [
        [{"metric": "glucose", "value": v, "unit": "mg/dL", "time": format_time(start + timedelta(minutes=5 * i))}]
        for i, v in enumerate([120.0, 6.1, 118.0])
    ]
    headers = ward.login("root")
    assert ward.ingest(batches[0], ward.other_token).status_code == 202
    answer = ward.ingest(batches[1], ward.other_token)
    assert answer.status_code == 202 and "mmol/L" in answer.json()["warnings"][0]["warning"]
    [low] = [a for a in ward.client.get("/api/v1/alerts", headers=headers).json() if a["rule"] == "glucose_low"]
    assert (low["severity"], low["data"]["plausible"], low["data"]["glucose"]) == ("emergency", False, 6.1)
    assert low["data"]["if_mmol_l_mg_dl"] == 109.9 and "finger-prick" in low["message"]
    signal = SignalProcessor()
    readings = cgm("p1", [120.0, 6.1, 118.0])
    signal.process(readings[:2])
    [after] = signal.process(readings[2:])
    assert "implausible_low" not in after.features.get("glucose", {}) and after.values["glucose"] == 118.0
