"""The people-facing API: login, who sees which patient, readings, alerts and recommendations."""

from __future__ import annotations

from datetime import timedelta

import pytest

from vigil.domain import AlertDraft, RecommendationDraft
from vigil.timeutil import format_time, utc_now

PATIENT_ENDPOINTS = ["", "/readings", "/risk", "/recommendations"]


def test_token_login_and_wrong_password(ward):
    assert ward.login("dr_who")["Authorization"].startswith("Bearer ")
    response = ward.client.post("/api/v1/auth/token", data={"username": "dr_who", "password": "wrong"})
    assert response.status_code == 401
    response = ward.client.post("/api/v1/auth/token", data={"username": "nobody", "password": "wrong"})
    assert response.status_code == 401


@pytest.mark.parametrize("suffix", PATIENT_ENDPOINTS)
def test_no_login_is_401(ward, suffix):
    assert ward.client.get(f"/api/v1/patients/{ward.patient_id}{suffix}").status_code == 401
    assert (
        ward.client.get(
            f"/api/v1/patients/{ward.patient_id}{suffix}", headers={"Authorization": "Bearer x.y.z"}
        ).status_code
        == 401
    )


@pytest.mark.parametrize("path", ["/api/v1/patients", "/api/v1/alerts"])
def test_lists_need_login(ward, path):
    assert ward.client.get(path).status_code == 401


@pytest.mark.parametrize("suffix", PATIENT_ENDPOINTS)
def test_unassigned_patient_is_404_and_nonexistent_looks_the_same(ward, suffix):
    headers = ward.login("dr_who")
    hidden = ward.client.get(f"/api/v1/patients/{ward.other_patient_id}{suffix}", headers=headers)
    missing = ward.client.get(f"/api/v1/patients/pnothere{suffix}", headers=headers)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()
    assert ward.client.get(f"/api/v1/patients/{ward.patient_id}{suffix}", headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("user", "expected"), [("dr_who", {"first"}), ("dr_no", set()), ("root", {"first", "second"}), ("ada", {"first"})]
)
def test_patient_list_shows_only_visible_patients(ward, user, expected):
    ids = {p["patient_id"] for p in ward.client.get("/api/v1/patients", headers=ward.login(user)).json()}
    assert ids == {{"first": ward.patient_id, "second": ward.other_patient_id}[e] for e in expected}


def test_readings_filtered_by_metric_and_time(ward):
    now = utc_now()
    readings = [
        {"metric": "heart_rate", "value": 60 + i, "time": format_time(now - timedelta(minutes=60 - i)), "seq": i}
        for i in range(60)
    ] + [{"metric": "spo2", "value": 97, "time": format_time(now - timedelta(minutes=5)), "seq": 100}]
    assert ward.ingest(readings).json()["accepted"] == 61
    headers = ward.login("dr_who")
    url = f"/api/v1/patients/{ward.patient_id}/readings"
    assert len(ward.client.get(url, headers=headers).json()) == 61
    heart = ward.client.get(url, params={"metric": "heart_rate"}, headers=headers).json()
    assert len(heart) == 60 and {r["unit"] for r in heart} == {"/min"}
    window = {
        "metric": "heart_rate",
        "start": format_time(now - timedelta(minutes=30)),
        "end": format_time(now - timedelta(minutes=10)),
    }
    values = [r["value"] for r in ward.client.get(url, params=window, headers=headers).json()]
    assert values == [60 + i for i in range(30, 50)]
    assert ward.client.get(url, params={"metric": "blood_alcohol"}, headers=headers).status_code == 422
    assert ward.client.get(url, params={"start": "not a time"}, headers=headers).status_code == 422


def _alert(ward, patient_id: str):
    return ward.ctx.store.raise_alert(
        AlertDraft(patient_id, "glucose_low", "urgent", utc_now(), "glucose 52 mg/dL", {"glucose": 52})
    )


def test_alerts_are_listed_per_visibility_and_acknowledged(ward):
    mine, theirs = _alert(ward, ward.patient_id), _alert(ward, ward.other_patient_id)
    headers = ward.login("dr_who")
    listed = ward.client.get("/api/v1/alerts", headers=headers).json()
    assert [a["alert_id"] for a in listed] == [mine.alert_id]
    assert ward.client.post(f"/api/v1/alerts/{theirs.alert_id}/ack", headers=headers).status_code == 404
    acked = ward.client.post(f"/api/v1/alerts/{mine.alert_id}/ack", headers=headers).json()
    assert acked["acknowledged_by"] == "dr_who" and acked["acknowledged_at"]
    assert ward.client.get("/api/v1/alerts", params={"open": True}, headers=headers).json() == []
    assert ward.client.post("/api/v1/alerts/999999/ack", headers=headers).status_code == 404


def test_patient_cannot_acknowledge_or_decide(ward):
    alert = _alert(ward, ward.patient_id)
    assert ward.client.post(f"/api/v1/alerts/{alert.alert_id}/ack", headers=ward.login("ada")).status_code == 403


def test_open_alert_is_deduplicated_and_escalated(ward):
    store = ward.ctx.store
    first = store.raise_alert(AlertDraft(ward.patient_id, "news2_urgent", "warning", utc_now(), "NEWS2 5"))
    assert store.raise_alert(AlertDraft(ward.patient_id, "news2_urgent", "warning", utc_now(), "NEWS2 6")) is None
    escalated = store.raise_alert(AlertDraft(ward.patient_id, "news2_urgent", "urgent", utc_now(), "NEWS2 8"))
    assert escalated.alert_id == first.alert_id and escalated.severity == "urgent"
    store.acknowledge_alert(first.alert_id, "dr_who")
    again = store.raise_alert(AlertDraft(ward.patient_id, "news2_urgent", "warning", utc_now(), "NEWS2 5"))
    assert again.alert_id != first.alert_id


def test_recommendation_decision_is_recorded_once(ward):
    rec = ward.ctx.store.add_recommendation(
        RecommendationDraft(ward.patient_id, "escalation", utc_now(), "Urgent clinical review", "NEWS2 6", {"news2": 6})
    )
    headers = ward.login("dr_who")
    url = f"/api/v1/recommendations/{rec.recommendation_id}/decision"
    listed = ward.client.get(f"/api/v1/patients/{ward.patient_id}/recommendations", headers=headers).json()
    assert listed[0]["status"] == "pending" and listed[0]["reason"] == "NEWS2 6" and listed[0]["version"] == 1
    assert listed[0]["valid_until"] and listed[0]["superseded_by"] is None
    assert ward.client.post(url, json={"decision": "maybe", "version": 1}, headers=headers).status_code == 422
    assert (
        ward.client.post(url, json={"decision": "accept", "version": 1}, headers=ward.login("ada")).status_code == 403
    )
    body = {"decision": "reject", "version": 1, "note": "seen at bedside"}
    decided = ward.client.post(url, json=body, headers=headers).json()
    assert (
        decided["status"] == "rejected"
        and decided["decided_by"] == "dr_who"
        and decided["decision_note"] == "seen at bedside"
        and decided["version"] == 2
    )
    assert ward.client.post(url, json={"decision": "accept", "version": 2}, headers=headers).status_code == 409
    no = ward.login("dr_no")
    assert ward.client.post(url, json={"decision": "accept", "version": 2}, headers=no).status_code == 404


def test_openapi_schema_is_served(ward):
    paths = ward.client.get("/openapi.json").json()["paths"]
    assert "/api/v1/ingest" in paths and "/api/v1/patients/{patient_id}/readings" in paths


def test_dashboard_pages_require_login(ward):
    response = ward.client.get("/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert ward.client.get("/fragments/ward").status_code == 401
    assert ward.client.get("/login").status_code == 200


def test_dashboard_login_shows_only_visible_patients(ward):
    response = ward.web_login("dr_who")
    assert response.status_code == 303 and response.headers["location"] == "/"
    rows = ward.client.get("/fragments/ward").text
    assert "Ada Lovelace" in rows and "Alan Turing" not in rows
    assert ward.client.get(f"/patients/{ward.other_patient_id}").status_code == 404
    assert "Ada Lovelace" in ward.client.get(f"/patients/{ward.patient_id}").text
    bad = ward.web_login("dr_who", "nope")
    assert "error" in bad.headers["location"]


def test_ward_sorts_by_news2_or_by_sepsis_risk(ward):
    ward.ctx.store.save_statuses(
        {
            ward.patient_id: {"scores": {"news2": {"value": 6}, "sepsis_risk": {"value": 0.01, "alarm": False}}},
            ward.other_patient_id: {"scores": {"news2": {"value": 1}, "sepsis_risk": {"value": 0.2, "alarm": True}}},
        }
    )
    headers = ward.login("root")
    by_news2 = [p["patient_id"] for p in ward.client.get("/api/v1/patients", headers=headers).json()]
    by_risk = [
        p["patient_id"] for p in ward.client.get("/api/v1/patients", params={"sort": "risk"}, headers=headers).json()
    ]
    assert by_news2 == [ward.patient_id, ward.other_patient_id]
    assert by_risk == [ward.other_patient_id, ward.patient_id]
    assert ward.client.get("/api/v1/patients", params={"sort": "age"}, headers=headers).status_code == 422
    ward.web_login("root")
    rows = ward.client.get("/fragments/ward", params={"sort": "risk"}).text
    assert rows.index("Alan Turing") < rows.index("Ada Lovelace") and "20.0%" in rows


def test_risk_names_the_model_that_scores_monitored_patients_and_its_inputs(ward):
    sepsis = ward.client.get(f"/api/v1/patients/{ward.patient_id}/risk", headers=ward.login("dr_who")).json()["sepsis"]
    assert "vitals only" in sepsis["model"]
    assert set(sepsis["model_inputs"]) == {"HR", "O2Sat", "Temp", "SBP", "DBP", "MAP", "Resp", "Age", "Gender"}


def test_patient_page_explains_the_risk_in_clinical_words_and_names_the_model(ward):
    reason = {"input": "Resp", "text": "respiration 30/min, up from 16 over 6 h", "value": 30.0, "contribution": 0.4}
    model = {"name": "LightGBM on PhysioNet 2019, vitals only (HR, ...)", "features": "vitals", "inputs": ["Resp"]}
    sepsis = {"value": 0.11, "time": "2026-11-27T10:00:00Z", "threshold": 0.037, "alarm": True}
    ward.ctx.store.save_statuses(
        {ward.patient_id: {"scores": {"sepsis_risk": sepsis | {"explanation": [reason], "model": model}}}}
    )
    ward.web_login("dr_who")
    page = ward.client.get(f"/patients/{ward.patient_id}").text
    assert "respiration 30/min, up from 16 over 6 h: +0.40" in page and "vitals only" in page
    assert "ICU-trained" not in page
