"""Issue 12's "What must show", through the HTTP contract only: device ingestion, the people-facing API, nothing else.

Two announced meals give two meal-bolus recommendations with distinct ids; the one past its `valid_until` is
`expired` and a decision on it is a 409; the fresh one is accepted with its `version` (200) and a second decision is a
409; 25 minutes at NEWS2 >= 7 give an `emergency` alert; SpO2 0.97 comes back with a warning.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from vigil.timeutil import format_time, parse_time, utc_now

UNWELL = {"heart_rate": 125, "resp_rate": 26, "spo2": 91, "body_temp": 38.9, "systolic_bp": 120}
"""NEWS2 2 + 3 + 3 + 1 + 0 = 9 on air and Alert: the emergency response threshold (>= 7)."""


def minutes_ago(now: datetime, minutes: float) -> str:
    return format_time(now - timedelta(minutes=minutes))


def post(ward, readings: list[dict], token: str) -> dict:
    response = ward.client.post(
        "/api/v1/ingest", json={"readings": readings}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 202, response.text
    ward.ctx.processor.drain()  # what `vigil serve`'s processor does after answering
    return response.json()


def decide(ward, headers, recommendation: dict, version=None, decision: str = "accept"):
    body = {"decision": decision, "version": recommendation["version"] if version is None else version, "note": "seen"}
    return ward.client.post(
        f"/api/v1/recommendations/{recommendation['recommendation_id']}/decision", json=body, headers=headers
    )


def test_two_meals_give_two_boluses_the_stale_one_expired_and_each_decided_once(ward):
    now, headers = utc_now(), ward.login("root")
    cgm = [
        {"metric": "glucose", "value": 140, "unit": "mg/dL", "time": minutes_ago(now, 120 - m), "seq": m}
        for m in range(0, 120, 5)
    ]
    basal = [{"metric": "insulin_basal", "value": 0.8, "unit": "U/h", "time": minutes_ago(now, 120), "seq": 900}]
    post(ward, cgm[:11] + basal, ward.other_token)  # up to 70 minutes ago
    post(
        ward,
        [{"metric": "carbs", "value": 40, "unit": "g", "time": minutes_ago(now, 70), "seq": 901}],
        ward.other_token,
    )
    post(ward, cgm[11:], ward.other_token)
    post(
        ward, [{"metric": "carbs", "value": 60, "unit": "g", "time": minutes_ago(now, 1), "seq": 902}], ward.other_token
    )

    listed = ward.client.get(f"/api/v1/patients/{ward.other_patient_id}/recommendations", headers=headers).json()
    boluses = sorted((r for r in listed if r["kind"] == "meal_bolus"), key=lambda r: r["time"])
    assert len(boluses) == 2 and boluses[0]["recommendation_id"] != boluses[1]["recommendation_id"]
    stale, fresh = boluses
    assert stale["status"] == "expired" and parse_time(stale["valid_until"]) < utc_now()
    assert fresh["status"] == "pending" and parse_time(fresh["valid_until"]) > utc_now()
    assert decide(ward, headers, stale).status_code == 409
    assert decide(ward, headers, fresh, version=fresh["version"] + 1).status_code == 409
    accepted = decide(ward, headers, fresh)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted" and accepted.json()["action"] == fresh["action"]
    assert decide(ward, headers, fresh, decision="reject").status_code == 409
    assert decide(ward, headers, accepted.json(), decision="reject").status_code == 409


def test_25_minutes_at_news2_of_7_or_more_raise_an_emergency_alert(ward):
    now, headers = utc_now(), ward.login("dr_who")
    readings = [
        {"metric": metric, "value": value, "time": minutes_ago(now, 25 - minute), "seq": minute * 10 + i}
        for minute in range(26)
        for i, (metric, value) in enumerate(UNWELL.items())
    ]
    assert post(ward, readings, ward.token)["accepted"] == len(readings)
    alerts = ward.client.get("/api/v1/alerts", params={"open": True}, headers=headers).json()
    news2 = [a for a in alerts if a["rule"] == "news2_urgent"]
    assert len(news2) == 1 and news2[0]["severity"] == "emergency"
    assert "NEWS2 is 9" in news2[0]["message"] and news2[0]["patient_id"] == ward.patient_id


def test_spo2_of_0_97_comes_back_with_a_warning(ward):
    reading = {"metric": "spo2", "value": 0.97, "unit": "%", "time": minutes_ago(utc_now(), 1), "seq": 1}
    body = post(ward, [reading], ward.token)
    assert body["accepted"] == 1 and body["warnings"][0]["index"] == 0
    assert "fraction" in body["warnings"][0]["warning"]
