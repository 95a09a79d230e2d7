"""HTTP ingestion: the contract of POST /api/v1/ingest, good paths and every bad one."""

from __future__ import annotations

from datetime import timedelta

import pytest

from vigil.metrics import GLUCOSE_MG_DL_PER_MMOL_L
from vigil.timeutil import format_time, utc_now


def at(minutes_ago: float = 0) -> str:
    return format_time(utc_now() - timedelta(minutes=minutes_ago))


def test_batch_is_stored_and_counted(ward):
    readings = [
        {"metric": "heart_rate", "value": 72, "unit": "/min", "time": at(3), "seq": 1},
        {"metric": "spo2", "value": 97, "time": at(2), "seq": 2},
        {"metric": "body_temp", "value": 98.6, "unit": "[degF]", "time": at(1), "seq": 3},
        {"metric": "glucose", "value": 5.5, "unit": "mmol/L", "time": at(1), "seq": 4},
    ]
    response = ward.ingest(readings)
    assert response.status_code == 202
    assert response.json() == {"accepted": 4, "duplicates": 0, "rejected": [], "warnings": []}
    stored = {r.metric: r for r in ward.ctx.store.query_readings(ward.patient_id)}
    assert stored["heart_rate"].value == 72 and stored["heart_rate"].device_id == ward.device_id
    assert stored["body_temp"].value == pytest.approx(37.0) and stored["body_temp"].unit == "Cel"
    assert (
        stored["glucose"].value == pytest.approx(5.5 * GLUCOSE_MG_DL_PER_MMOL_L) and stored["glucose"].unit == "mg/dL"
    )


def test_resent_reading_counts_as_duplicate_once(ward):
    batch = [{"metric": "heart_rate", "value": 70 + i, "time": at(10 - i), "seq": i} for i in range(5)]
    assert ward.ingest(batch).json()["accepted"] == 5
    again = ward.ingest(batch[2:] + [{"metric": "heart_rate", "value": 80, "time": at(0), "seq": 99}]).json()
    assert again == {"accepted": 1, "duplicates": 3, "rejected": [], "warnings": []}
    assert len(ward.ctx.store.query_readings(ward.patient_id)) == 6


def test_duplicate_inside_one_batch(ward):
    reading = {"metric": "heart_rate", "value": 70, "time": at(1), "seq": 7}
    assert ward.ingest([reading, reading]).json() == {"accepted": 1, "duplicates": 1, "rejected": [], "warnings": []}


def test_seq_belongs_to_the_device(ward):
    reading = {"metric": "glucose", "value": 120, "time": at(1), "seq": 1}
    assert ward.ingest([reading]).json()["accepted"] == 1
    assert ward.ingest([reading], token=ward.other_token).json()["accepted"] == 1


def test_readings_without_seq_deduplicate_on_metric_and_time(ward):
    reading = {"metric": "heart_rate", "value": 70, "time": at(1)}
    assert ward.ingest([reading]).json()["accepted"] == 1
    assert ward.ingest([reading]).json()["duplicates"] == 1


@pytest.mark.parametrize("header", [None, "Bearer nonsense", "Basic abc", "Bearer "])
def test_bad_token_is_401_and_stores_nothing(ward, header):
    headers = {"Authorization": header} if header else {}
    reading = {"metric": "heart_rate", "value": 70, "time": at(1), "seq": 1}
    response = ward.client.post("/api/v1/ingest", json={"readings": [reading]}, headers=headers)
    assert response.status_code == 401
    assert ward.ctx.store.count_readings() == 0


def test_revoked_and_rotated_tokens_are_refused(ward):
    reading = {"metric": "heart_rate", "value": 70, "time": at(1), "seq": 1}
    ward.ctx.store.revoke_device(ward.device_id)
    assert ward.ingest([reading]).status_code == 401
    new_token = ward.ctx.store.rotate_device_token(ward.device_id)
    assert ward.ingest([reading]).status_code == 401
    assert ward.ingest([reading], token=new_token).status_code == 202


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe"])
def test_body_that_is_not_json_is_400(ward, body):
    response = ward.client.post("/api/v1/ingest", content=body, headers={"Authorization": f"Bearer {ward.token}"})
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [([1, 2], "body"), ({"reading": []}, "readings"), ({"readings": {"metric": "x"}}, "readings"), ("text", "body")],
)
def test_wrong_shape_is_422_naming_the_field(ward, body, field):
    response = ward.client.post("/api/v1/ingest", json=body, headers={"Authorization": f"Bearer {ward.token}"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith(field)


BAD_READINGS = [
    ({"metric": "blood_alcohol", "value": 1, "time": None}, "metric"),
    ({"value": 70, "time": None}, "metric"),
    ({"metric": "heart_rate", "value": 400, "time": None}, "value"),
    ({"metric": "heart_rate", "value": -5, "time": None}, "value"),
    ({"metric": "spo2", "value": 101, "time": None}, "value"),
    ({"metric": "heart_rate", "value": "72", "time": None}, "value"),
    ({"metric": "heart_rate", "value": True, "time": None}, "value"),
    ({"metric": "heart_rate", "time": None}, "value"),
    ({"metric": "heart_rate", "value": 72, "time": "yesterday"}, "time"),
    ({"metric": "heart_rate", "value": 72, "time": 1764237600}, "time"),
    ({"metric": "heart_rate", "value": 72}, "time"),
    ({"metric": "heart_rate", "value": 72, "time": "FUTURE"}, "time"),
    ({"metric": "heart_rate", "value": 72, "unit": "mg/dL", "time": None}, "unit"),
    ({"metric": "insulin_bolus", "value": 2, "time": None}, "unit"),
    ({"metric": "carbs", "value": -10, "unit": "g", "time": None}, "value"),
    ({"metric": "heart_rate", "value": 72, "time": None, "seq": -1}, "seq"),
    ({"metric": "heart_rate", "value": 72, "time": None, "seq": 1.5}, "seq"),
    ("not an object", "reading"),
]


@pytest.mark.parametrize(("bad", "field"), BAD_READINGS)
def test_bad_reading_is_rejected_with_its_reason_and_the_rest_stored(ward, bad, field):
    if isinstance(bad, dict) and bad.get("time") is None and "time" in bad:
        bad = {**bad, "time": at(1)}
    if isinstance(bad, dict) and bad.get("time") == "FUTURE":
        bad = {**bad, "time": format_time(utc_now() + timedelta(minutes=6))}
    good = [
        {"metric": "heart_rate", "value": 70, "time": at(2), "seq": 100},
        {"metric": "spo2", "value": 96, "time": at(2), "seq": 101},
    ]
    response = ward.ingest([good[0], bad, good[1]])
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 2
    assert [r["index"] for r in body["rejected"]] == [1]
    assert body["rejected"][0]["error"].startswith(field + ":"), body["rejected"][0]["error"]
    assert sorted(r.seq for r in ward.ctx.store.query_readings(ward.patient_id)) == [100, 101]


def test_time_just_inside_the_future_limit_is_accepted(ward):
    soon = format_time(utc_now() + timedelta(minutes=4))
    assert ward.ingest([{"metric": "heart_rate", "value": 70, "time": soon, "seq": 1}]).json()["accepted"] == 1


def test_implausible_value_is_stored_with_a_flag(ward):
    response = ward.ingest([{"metric": "heart_rate", "value": 280, "time": at(1), "seq": 1}])
    assert response.json()["accepted"] == 1
    assert ward.ctx.store.query_readings(ward.patient_id)[0].quality == "implausible"


def test_unit_mistakes_are_stored_as_implausible_with_a_warning_naming_the_likely_mistake(ward):
    """Finding 8 of issue 12: SpO2 0.97 % and glucose 6.1 mg/dL were answered with a plain 202."""
    readings = [
        {"metric": "heart_rate", "value": 72, "time": at(3), "seq": 1},
        {"metric": "spo2", "value": 0.97, "unit": "%", "time": at(2), "seq": 2},
        {"metric": "glucose", "value": 6.1, "unit": "mg/dL", "time": at(2), "seq": 3},
        {"metric": "systolic_bp", "value": 16, "time": at(2), "seq": 4},
        {"metric": "hrv_rmssd", "value": 0.045, "time": at(2), "seq": 5},
    ]
    body = ward.ingest(readings).json()
    assert body["accepted"] == 5 and body["rejected"] == []
    warnings = {w["index"]: w["warning"] for w in body["warnings"]}
    assert set(warnings) == {1, 2, 3, 4}
    assert warnings[1].startswith("spo2 0.97: looks like a fraction; % expected")
    assert "looks like mmol/L" in warnings[2] and "110 mg/dL" in warnings[2]
    assert "looks like kPa" in warnings[3] and "looks like seconds" in warnings[4]
    assert all("stored as implausible" in w.lower() for w in warnings.values())
    stored = {r.metric: r.quality for r in ward.ctx.store.query_readings(ward.patient_id)}
    assert stored["spo2"] == stored["glucose"] == "implausible" and stored["heart_rate"] == "ok"


def test_an_impossible_value_is_rejected_with_the_likely_mistake(ward):
    body = ward.ingest([{"metric": "body_temp", "value": 101.3, "time": at(1), "seq": 1}]).json()
    assert body["accepted"] == 0 and body["warnings"] == []
    assert "looks like degrees Fahrenheit" in body["rejected"][0]["error"]
    assert body["rejected"][0]["error"].startswith("value: ")


def test_oxygen_flow_is_a_metric_in_l_per_min(ward):
    body = ward.ingest([{"metric": "oxygen_flow", "value": 2, "unit": "L/min", "time": at(1), "seq": 1}]).json()
    assert body["accepted"] == 1 and body["warnings"] == []
    assert ward.ctx.store.query_readings(ward.patient_id)[0].unit == "L/min"


def test_body_over_5_mb_is_413(ward):
    big = b'{"readings": [' + b" " * (5 * 1024 * 1024) + b"]}"
    response = ward.client.post("/api/v1/ingest", content=big, headers={"Authorization": f"Bearer {ward.token}"})
    assert response.status_code == 413


def test_streamed_body_over_5_mb_is_413(ward):
    def chunks():
        yield b'{"readings": ['
        for _ in range(6):
            yield b" " * (1024 * 1024)
        yield b"]}"

    response = ward.client.post("/api/v1/ingest", content=chunks(), headers={"Authorization": f"Bearer {ward.token}"})
    assert response.status_code == 413
    assert ward.ctx.store.count_readings() == 0
