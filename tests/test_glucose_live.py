"""Live glucose advice through ingestion, the real pipeline and SQLite: meal boluses, predictive lows with rescue
carbs before the value is low, no insulin when low, deduplicated alerts, and the glucose endpoint."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from vigil.api.context import AppContext
from vigil.demo import prescribe_virtual_patients, register_ward
from vigil.devices import DeviceKey, mixed_ward
from vigil.domain import Reading
from vigil.glucose.band_error import BAND_ERROR_ENV, BandErrorFileError, band_error_from_evaluation, fallback_rmse
from vigil.glucose.history import GlucoseHistory
from vigil.glucose.live import LiveGlucose, simglucose_therapy, therapy_from_history
from vigil.pipeline import Pipeline
from vigil.timeutil import format_time, utc_now

HOUR = 12  # CGM readings in an hour


def cgm(values: list[float], first_seq: int = 0, end_minutes_ago: int = 5) -> list[dict]:
    """CGM readings every 5 minutes, the last ``end_minutes_ago`` minutes ago."""
    now = utc_now()
    return [
        {
            "metric": "glucose",
            "value": round(value, 1),
            "unit": "mg/dL",
            "seq": first_seq + i,
            "time": format_time(now - timedelta(minutes=end_minutes_ago + 5 * (len(values) - 1 - i))),
        }
        for i, value in enumerate(values)
    ]


UNITS = {"carbs": "g", "insulin_bolus": "U", "insulin_basal": "U/h"}


def announced(reading: dict, metric: str, value: float, seq: int) -> dict:
    """A carbs or insulin reading at the same time as a CGM reading."""
    return {"metric": metric, "value": value, "unit": UNITS[metric], "time": reading["time"], "seq": seq}


def glucose_recommendations(ward, kind: str | None = None) -> list[dict]:
    response = ward.client.get(f"/api/v1/patients/{ward.other_patient_id}/glucose", headers=ward.login("root"))
    assert response.status_code == 200, response.text
    return [r for r in response.json()["recommendations"] if kind is None or r["kind"] == kind]


def forecast_lows(ward) -> list[dict]:
    alerts = ward.client.get(f"/api/v1/alerts?patient_id={ward.other_patient_id}", headers=ward.login("root")).json()
    return [a for a in alerts if a["rule"] == "glucose_forecast_low"]


def test_meal_gives_one_bolus_recommendation_with_reason_and_data(ward):
    readings = cgm([140.0] * 2 * HOUR)
    readings.insert(0, announced(readings[0], "insulin_basal", 0.8, 1000))
    readings.append(announced(readings[-1], "carbs", 60.0, 1001))
    response = ward.ingest(readings, ward.other_token).json()
    assert response["accepted"] == len(readings), response
    boluses = glucose_recommendations(ward, "meal_bolus")
    assert len(boluses) == 1
    bolus = boluses[0]
    assert bolus["status"] == "pending" and bolus["action"].startswith("Meal bolus")
    assert "Meal of 60 g" in bolus["reason"]
    assert bolus["data"]["meal_g"] == 60.0 and bolus["data"]["unit"] == "U" and 0 < bolus["data"]["amount"] <= 10
    assert {"glucose", "iob", "cob", "eventual", "carb_ratio", "isf"} <= set(bolus["data"])
    assert bolus["data"]["profile"]["source"].startswith("default")


def test_each_kind_of_glucose_advice_holds_for_its_own_time():
    """A meal bolus until 30 min after its meal (and about that meal only), a correction 30 min, rescue carbs 15 min,
    a temporary basal for its duration."""
    now = utc_now()

    def readings(patient_id: str, values: list[float]) -> list[Reading]:
        times = [now - timedelta(minutes=5 * (len(values) - 1 - i)) for i in range(len(values))]
        return [Reading(patient_id, "d", "glucose", t, v, "mg/dL") for t, v in zip(times, values)]

    meal_time = now - timedelta(minutes=3)
    batch = readings("high", [250.0] * 2 * HOUR) + readings("meal", [140.0] * 2 * HOUR)
    batch += readings("falling", [130.0] * HOUR + [130.0 - 12.5 * (i + 1) for i in range(4)])
    batch.append(Reading("meal", "d", "carbs", meal_time, 50.0, "g"))
    drafts = LiveGlucose().update(batch).recommendations
    validity = {(d.kind, (d.valid_until - d.time).total_seconds() / 60) for d in drafts if d.kind != "meal_bolus"}
    assert validity == {("correction_bolus", 30.0), ("temp_basal", 30.0), ("rescue_carbs", 15.0)}
    assert all(d.data["duration_min"] == 30 for d in drafts if d.kind == "temp_basal")
    [meal] = [d for d in drafts if d.kind == "meal_bolus"]
    assert abs(meal.valid_until - (meal_time + timedelta(minutes=30))) < timedelta(seconds=1)
    assert meal.subject == meal.data["meal_time"] and all(d.subject == "" for d in drafts if d is not meal)


def test_falling_glucose_forecasts_a_low_before_it_happens_and_alerts_once(ward):
    falling = [130.0] * HOUR + [130.0 - 12.5 * (i + 1) for i in range(4)]  # 2.5 mg/dL per minute, last value 80
    assert ward.ingest(cgm(falling, end_minutes_ago=30), ward.other_token).status_code == 202
    [alert] = forecast_lows(ward)
    assert alert["data"]["predictive"] is True and alert["data"]["glucose"] >= 70 > alert["data"]["amount"]
    assert alert["data"]["unit"] == "mg/dL" and alert["data"]["as_of"] == alert["time"]
    assert "forecast to reach" in alert["message"]
    [rescue] = glucose_recommendations(ward, "rescue_carbs")
    # sized to lift the 20-minute forecast to 80 mg/dL (5 g steps, at most 15 g): 10 g here
    assert rescue["action"] == "Take 10 g of fast-acting carbohydrate now"
    assert rescue["data"]["glucose"] >= 70 and rescue["data"]["lowest_rescue"] < 70 and rescue["data"]["lowest_30"] < 70
    assert not glucose_recommendations(ward, "meal_bolus") + glucose_recommendations(ward, "correction_bolus")

    ward.client.post(f"/api/v1/alerts/{alert['alert_id']}/ack", headers=ward.login("root"))
    still_falling = [77.5 - 2.5 * i for i in range(3)]  # the same episode: no new alert
    assert ward.ingest(cgm(still_falling, first_seq=100, end_minutes_ago=5), ward.other_token).status_code == 202
    assert len(forecast_lows(ward)) == 1


def test_no_insulin_recommended_below_80(ward):
    readings = cgm([76.0] * HOUR)
    readings.append(announced(readings[-1], "carbs", 50.0, 1000))
    assert ward.ingest(readings, ward.other_token).status_code == 202
    advice = glucose_recommendations(ward)
    assert not [r for r in advice if r["kind"].endswith("bolus")]
    assert all(r["data"]["amount"] == 0.0 for r in advice if r["kind"] == "temp_basal")


def test_glucose_endpoint_forecast_band_iob_and_access(ward):
    readings = cgm([150.0 + i for i in range(2 * HOUR)])
    readings.insert(0, announced(readings[0], "insulin_bolus", 3.0, 1000))
    assert ward.ingest(readings, ward.other_token).status_code == 202
    url = f"/api/v1/patients/{ward.other_patient_id}/glucose"
    body = ward.client.get(url, headers=ward.login("root")).json()
    assert body["streaming"] is True and len(body["cgm"]) == 2 * HOUR
    forecast = body["forecast"]
    assert [p["minutes_ahead"] for p in forecast] == list(range(5, 125, 5))
    assert all(p["low"] < p["value"] < p["high"] for p in forecast)
    assert forecast[-1]["high"] - forecast[-1]["low"] > forecast[0]["high"] - forecast[0]["low"]
    assert 0 < body["iob_u"] < 3.0 and body["cob_g"] == 0.0
    assert body["profile"]["isf_sd"] > 0 and body["profile"]["carb_ratio_sd"] > 0
    assert ward.client.get(url, headers=ward.login("dr_who")).status_code == 404
    assert ward.client.get(url).status_code == 401
    quiet = ward.client.get(f"/api/v1/patients/{ward.patient_id}/glucose", headers=ward.login("dr_who")).json()
    assert quiet["streaming"] is False and quiet["forecast"] == [] and quiet["recommendations"] == []


def test_therapy_from_the_prescription_or_from_a_day_of_insulin_data(ward):
    chart = simglucose_therapy("adult#001")
    assert chart.source == "prescription of adult#001" and chart.total_daily_insulin > 0 and chart.basal_u_per_h > 0
    ward.ctx.processor.prescribe(ward.other_patient_id, chart)
    assert ward.ingest(cgm([120.0] * 3), ward.other_token).status_code == 202
    assert glucose_profile(ward)["total_daily_insulin_u"] == chart.total_daily_insulin

    history = GlucoseHistory()
    history.set_basal(0.0, 1.0)
    for day in range(2):
        for minute in (480, 720, 1080):
            history.add_bolus(day * 1440 + minute, 5.0)
    assert therapy_from_history(history, 1000.0) is None  # under a day of data
    measured = therapy_from_history(history, 2 * 1440.0)
    assert measured.total_daily_insulin == pytest.approx(15 + 24) and measured.basal_u_per_h == 1.0


def test_a_restarted_pipeline_warms_up_from_the_store_without_advising_again(ward):
    readings = cgm([150.0 + i for i in range(2 * HOUR)])
    readings.append(announced(readings[-1], "carbs", 40.0, 1000))
    assert ward.ingest(readings, ward.other_token).status_code == 202
    before = ward.ctx.store.list_recommendations(ward.other_patient_id)
    restarted = Pipeline(ward.ctx.store)
    restarted.warm_up()
    view = restarted.glucose.view(ward.other_patient_id)
    assert view["cob_g"] > 0 and len(view["cgm"]) == 2 * HOUR
    assert view["forecast"][0]["band"] == "patient"  # its own forecast errors were scored during the warm-up
    assert ward.ctx.store.list_recommendations(ward.other_patient_id) == before


def test_the_demo_gives_each_cgm_patient_their_simulated_prescription(ward, tmp_path):
    profiles = mixed_ward(2)
    diabetic = next(profile for profile in profiles if profile.virtual_patient)
    manifest = tmp_path / "ward.json"
    credentials = register_ward(ward.ctx.store, profiles, manifest, utc_now())
    prescribe_virtual_patients(ward.ctx.processor, profiles, manifest)
    device_id, token = credentials[DeviceKey(diabetic.key, "cgm")]
    assert ward.ingest(cgm([120.0] * 3), token).status_code == 202
    profile = glucose_profile(ward, ward.ctx.store.get_device(device_id).patient_id)
    assert profile["source"] == f"prescription of {diabetic.virtual_patient}"


def glucose_profile(ward, patient_id: str | None = None) -> dict:
    url = f"/api/v1/patients/{patient_id or ward.other_patient_id}/glucose"
    return ward.client.get(url, headers=ward.login("root")).json()["profile"]


def test_fallback_band_is_the_measured_effects_model_error():
    """The shipped band-error file is the saved forecast evaluation's effects-model RMSE, not a copied figure."""
    measured = json.loads((Path(__file__).parents[1] / "docs/results/glucose-forecast.json").read_text())
    effects = measured["models"]["effects (chart settings)"]["overall"]
    horizons, rmse = fallback_rmse()
    for minutes in (30, 60):
        assert rmse[horizons.index(float(minutes))] == pytest.approx(effects[str(minutes)]["rmse"], abs=0.01)
    assert horizons[0] == 0 and horizons[-1] == 120 and rmse[-1] == pytest.approx(3 * rmse[2] - 2 * rmse[1])


def test_the_band_is_read_from_the_file_named_at_start_up(tmp_path, monkeypatch):
    evaluation = json.loads((Path(__file__).parents[1] / "docs/results/glucose-forecast.json").read_text())
    for horizon, rmse in (("30", 15.0), ("60", 25.0)):
        evaluation["models"]["effects (chart settings)"]["overall"][horizon]["rmse"] = rmse
    saved = tmp_path / "band.json"
    saved.write_text(json.dumps(band_error_from_evaluation(evaluation)))
    monkeypatch.setenv(BAND_ERROR_ENV, str(saved))
    fallback_rmse.cache_clear()
    try:
        assert fallback_rmse() == ((0.0, 30.0, 60.0, 120.0), (0.0, 15.0, 25.0, 45.0))
        saved.write_text('{"horizons_min": [30, 60], "rmse_mg_dl": [15.0]}')
        fallback_rmse.cache_clear()
        with pytest.raises(BandErrorFileError, match="one rmse_mg_dl each"):
            LiveGlucose()
        monkeypatch.setenv(BAND_ERROR_ENV, str(tmp_path / "missing.json"))
        fallback_rmse.cache_clear()
        with pytest.raises(BandErrorFileError, match=r"missing\.json: no forecast band error file"):
            LiveGlucose()
    finally:
        fallback_rmse.cache_clear()


def test_a_server_that_does_not_own_the_patient_shows_the_owners_glucose_panel(ward, settings):
    """`vigil serve --no-process` (or a server whose processor owns other partitions) shows the panel rebuilt from
    what the owning processor wrote to the store, the same as the owner's."""
    readings = cgm([150.0 + i for i in range(2 * HOUR)])
    readings.insert(0, announced(readings[0], "insulin_bolus", 3.0, 1000))
    readings.append(announced(readings[-1], "carbs", 40.0, 1001))
    assert ward.ingest(readings, ward.other_token).status_code == 202
    owner = ward.ctx.processor.glucose_view(ward.other_patient_id)
    elsewhere = AppContext.build(settings)  # another server on the same store, processing nothing
    assert not elsewhere.processor.owns(ward.other_patient_id)
    assert owner is not None and owner["iob_u"] > 0 and owner["cob_g"] > 0
    assert elsewhere.processor.glucose_view(ward.other_patient_id) == owner
