"""NEWS2 inputs a wearable cannot measure: oxygen, consciousness and SpO2 scale, recorded through the API and used at once.

Finding 5 of issue 12: in production NEWS2 always assumed room air and Alert, and SpO2 scale 2 could not be set, so a
patient on oxygen was under-scored by 2 points.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from vigil.api.context import AppContext
from vigil.domain import News2Inputs
from vigil.pipeline import Pipeline
from vigil.timeutil import format_time, utc_now

# RR 18 (0), SpO2 93 (scale 1: 2; scale 2 on oxygen: 1), SBP 120 (0), pulse 80 (0), 37.0 degC (0): NEWS2 2 on air.
VITALS = {"resp_rate": 18, "spo2": 93, "systolic_bp": 120, "heart_rate": 80, "body_temp": 37.0}


def ingest_vitals(ward, minutes_ago: float = 1, seq: int = 0, **extra: float) -> None:
    time = format_time(utc_now() - timedelta(minutes=minutes_ago))
    values = VITALS | extra
    readings = [{"metric": m, "value": v, "time": time, "seq": seq + i} for i, (m, v) in enumerate(values.items())]
    assert ward.ingest(readings).json()["accepted"] == len(readings)


def news2(ward, headers) -> dict:
    return ward.client.get(f"/api/v1/patients/{ward.patient_id}/risk", headers=headers).json()["news2"]


def record(ward, headers, **body):
    return ward.client.post(f"/api/v1/patients/{ward.patient_id}/news2-inputs", json=body, headers=headers)


def test_oxygen_recorded_by_a_clinician_scores_at_once_and_says_who_recorded_it(ward):
    headers = ward.login("dr_who")
    ingest_vitals(ward)
    before = news2(ward, headers)
    assert before["value"] == 2 and "assumed on air" in before["sources"]["supplemental_oxygen"]
    response = record(ward, headers, supplemental_oxygen=True, oxygen_flow=2)
    assert response.status_code == 201, response.text
    assert response.json()["recorded_by"] == "dr_who" and response.json()["oxygen_flow"] == 2
    after = news2(ward, headers)
    assert after["value"] == 4 and after["components"]["supplemental_oxygen"] == 2
    assert after["sources"]["supplemental_oxygen"].startswith("recorded by dr_who")
    assert after["oxygen_flow_l_min"] == 2 and "supplemental_oxygen" not in after["assumed"]
    ward_row = next(
        p for p in ward.client.get("/api/v1/patients", headers=headers).json() if p["name"] == "Ada Lovelace"
    )
    assert ward_row["status"]["scores"]["news2"]["value"] == 4


def test_spo2_scale_2_needs_its_reason_and_scores_on_the_scale_2_bands(ward):
    headers = ward.login("dr_who")
    ingest_vitals(ward)
    refused = record(ward, headers, spo2_scale=2)
    assert refused.status_code == 422 and "spo2_scale_reason" in refused.text
    accepted = record(
        ward,
        headers,
        spo2_scale=2,
        spo2_scale_reason="hypercapnic respiratory failure (COPD)",
        supplemental_oxygen=True,
    )
    assert accepted.status_code == 201
    score = news2(ward, headers)
    assert score["spo2_scale"] == 2 and score["components"]["spo2"] == 1
    assert score["value"] == 3 and "hypercapnic" in score["sources"]["spo2_scale"]


def test_a_later_record_keeps_what_it_does_not_change_and_every_record_is_kept(ward):
    headers = ward.login("dr_who")
    ingest_vitals(ward)
    assert record(ward, headers, supplemental_oxygen=True, oxygen_flow=4).status_code == 201
    assert record(ward, headers, consciousness="voice").status_code == 201
    inputs = ward.client.get(f"/api/v1/patients/{ward.patient_id}/news2-inputs", headers=headers).json()
    assert inputs["current"]["consciousness"] == "voice" and inputs["current"]["supplemental_oxygen"] is True
    assert [r["consciousness"] for r in inputs["history"]] == ["voice", None]
    score = news2(ward, headers)
    assert score["value"] == 2 + 2 + 3 and score["assumed"] == []
    actions = [e.action for e in ward.ctx.store.audit_entries_for_patient(ward.patient_id)]
    assert actions.count("news2_inputs.record") == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"supplemental_oxygen": False, "oxygen_flow": 3}, "oxygen_flow"),
        ({"consciousness": "drowsy"}, "consciousness"),
        ({"spo2_scale": 3}, "spo2_scale"),
        ({"oxygen_flow": -1}, "oxygen_flow"),
        ({"spo2_scale": 2, "spo2_scale_reason": "   "}, "spo2_scale_reason"),
    ],
)
def test_bad_inputs_are_422_naming_the_field_and_record_nothing(ward, body, field):
    headers = ward.login("dr_who")
    response = record(ward, headers, **body)
    assert response.status_code == 422 and field in response.text
    assert ward.ctx.store.news2_inputs_history(ward.patient_id) == []


def test_only_clinicians_of_the_patient_may_record(ward):
    assert record(ward, ward.login("ada"), consciousness="alert").status_code == 403
    assert record(ward, ward.login("dr_no"), consciousness="alert").status_code == 404
    assert ward.client.post(f"/api/v1/patients/{ward.patient_id}/news2-inputs", json={}).status_code == 401
    assert ward.ctx.store.news2_inputs_history(ward.patient_id) == []
    assert record(ward, ward.login("root"), consciousness="alert").status_code == 201


def test_a_device_oxygen_flow_newer_than_the_record_decides_oxygen(ward):
    headers = ward.login("dr_who")
    ingest_vitals(ward, minutes_ago=3)
    assert record(ward, headers, supplemental_oxygen=False).status_code == 201
    assert news2(ward, headers)["value"] == 2
    ingest_vitals(ward, minutes_ago=0, seq=100, oxygen_flow=3)
    score = news2(ward, headers)
    assert score["value"] == 4 and score["sources"]["supplemental_oxygen"].startswith("device oxygen flow")


def test_a_restarted_pipeline_uses_the_recorded_inputs(ward):
    headers = ward.login("dr_who")
    ingest_vitals(ward, minutes_ago=5)
    assert record(ward, headers, supplemental_oxygen=True, oxygen_flow=2).status_code == 201
    restarted = Pipeline(ward.ctx.store)
    restarted.warm_up()
    assert restarted.care.news2_context(ward.patient_id).supplemental_oxygen is True


def test_the_ward_list_shows_partial_and_unscored_news2_as_such(ward):
    """Finding 6 of issue 12: with 3 of 5 parameters the score looked complete, and with fewer the list showed nothing."""
    time = format_time(utc_now() - timedelta(minutes=1))
    readings = [{"metric": m, "value": VITALS[m], "time": time, "seq": i} for i, m in enumerate(("heart_rate", "spo2"))]
    assert ward.ingest(readings).json()["accepted"] == 2
    assert ward.web_login("root").status_code == 303
    html = ward.client.get("/fragments/ward").text
    assert "not scored &middot; 2 of 5" in html
    more = [{"metric": "resp_rate", "value": 18, "time": time, "seq": 10}]
    assert ward.ingest(more).json()["accepted"] == 1
    html = ward.client.get("/fragments/ward").text
    assert 'data-news2-partial="yes"' in html and "&ge;2 &middot; 3 of 5" in html and "band-low" not in html
    page = ward.client.get(f"/patients/{ward.patient_id}").text
    assert "3 of 5 measured, partial" in page and "Nothing recorded: NEWS2 assumes room air" in page


def test_inputs_recorded_through_another_server_reach_the_owner_at_its_next_renewal(ward, settings):
    headers = ward.login("dr_who")
    ingest_vitals(ward)
    assert news2(ward, headers)["value"] == 2
    elsewhere = AppContext.build(settings)  # a server that owns no partition (`vigil serve --no-process`)
    inputs = News2Inputs(ward.patient_id, utc_now(), "dr_who", supplemental_oxygen=True, oxygen_flow=2)
    assert elsewhere.processor.record_news2_inputs(inputs) == []
    ward.ctx.processor.claim()  # the owner's lease renewal
    assert news2(ward, headers)["value"] == 4
