"""The vitals-only sepsis model: only monitored inputs, scores monitored patients live, explains in clinical words."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from vigil.care.predictive import SepsisRiskAlerts
from vigil.datasets.physionet import DEMOGRAPHICS, LABS
from vigil.domain import Reading
from vigil.models.features import FEATURE_INPUTS, MONITORED_INPUTS, VITALS_FEATURE_NAMES
from vigil.models.live import LiveRiskScorer
from vigil.models.risk import default_model, default_vitals_model
from vigil.pipeline import _summary

START = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
UNITS = {
    "heart_rate": "/min",
    "resp_rate": "/min",
    "body_temp": "Cel",
    "systolic_bp": "mm[Hg]",
    "diastolic_bp": "mm[Hg]",
    "spo2": "%",
}
WELL = {"heart_rate": 76, "resp_rate": 16, "body_temp": 36.8, "systolic_bp": 120, "diastolic_bp": 78, "spo2": 97}
DETERIORATED = {
    "heart_rate": 118,
    "resp_rate": 30,
    "body_temp": 38.9,
    "systolic_bp": 74,
    "diastolic_bp": 50,
    "spo2": 90,
}
ICU_ONLY = ("ICULOS", "HospAdmTime", "Unit1", "Unit2", "EtCO2", *LABS)
ALLOWED_INPUTS = {"HR", "O2Sat", "Temp", "SBP", "DBP", "MAP", "Resp", "Age", "Gender"}
CLINICAL_WORDS = re.compile(
    r"^(heart rate|SpO2|temperature|systolic BP|diastolic BP|mean arterial pressure|respiration|age) [\d.]+"
    r"( ?/min| %| °C| mmHg| years)(, (up|down) from [\d.]+ over \d h)?$|^(male|female)$"
)


def readings(hours: float, vitals: dict, start: datetime = START, patient: str = "p1") -> list[Reading]:
    """A wearable and cuff reporting every 5 minutes."""
    return [
        Reading(patient, "watch", metric, start + timedelta(minutes=m), float(value), UNITS[metric])
        for m in range(0, int(hours * 60), 5)
        for metric, value in vitals.items()
    ]


def deteriorating(patient: str = "sick", sick: dict = DETERIORATED) -> list[Reading]:
    """Six well hours, then RR 30, SpO2 90, SBP 74, 38.9 °C for six hours (and one reading to close the last)."""
    onset = START + timedelta(hours=6)
    return [
        *readings(6, WELL, patient=patient),
        *readings(6, sick, start=onset, patient=patient),
        *readings(0.1, sick, start=onset + timedelta(hours=6), patient=patient),
    ]


def well(patient: str) -> list[Reading]:
    return readings(12.1, WELL, patient=patient)


@pytest.fixture(scope="module")
def ward_scores():
    scorer = LiveRiskScorer(default_vitals_model(), lambda patient: (64.0, 1.0))
    scores = scorer.update([*deteriorating(), *well("well1"), *well("well2")])
    return {patient: [s for s in scores if s.patient_id == patient] for patient in ("sick", "well1", "well2")}


def test_vitals_features_use_only_monitored_inputs():
    assert set(MONITORED_INPUTS) == ALLOWED_INPUTS  # a guard: adding ICULOS or a lab here must fail
    for name in VITALS_FEATURE_NAMES:
        assert set(FEATURE_INPUTS[name]) <= ALLOWED_INPUTS, name
        assert not any(column in name for column in ICU_ONLY), name


def test_shipped_vitals_model_has_only_allowed_features_and_inputs():
    model = default_vitals_model()
    assert model.feature_set == "vitals" and model.feature_names == VITALS_FEATURE_NAMES
    assert set(model.inputs) == ALLOWED_INPUTS
    assert not any(column in name for name in model.feature_names for column in ICU_ONLY)
    assert "vitals only" in model.name


def test_the_live_scorer_refuses_a_model_of_icu_inputs():
    with pytest.raises(ValueError, match="ICULOS"):
        LiveRiskScorer(default_model())


def test_a_monitored_patients_hourly_frame_has_no_icu_field():
    scorer = LiveRiskScorer(default_vitals_model())
    glucose = Reading("p1", "cgm", "glucose", START, 140.0, "mg/dL")
    scorer.update([*readings(2.1, WELL), glucose])
    frame = scorer._patients["p1"].frame(START + timedelta(hours=1))
    assert set(frame.columns) == ALLOWED_INPUTS | {"stay_id", "hour"}
    assert not set(frame.columns) & set(DEMOGRAPHICS) - {"Age", "Gender"}


def test_deteriorating_patient_scores_above_the_threshold_and_well_patients_below(ward_scores):
    threshold = default_vitals_model().threshold
    sick = ward_scores["sick"]
    assert len(sick) == 12
    assert all(s.value >= threshold for s in sick[-3:]), [round(s.value, 3) for s in sick]
    for patient in ("well1", "well2"):
        assert all(s.value < threshold for s in ward_scores[patient]), [round(s.value, 3) for s in ward_scores[patient]]


def test_without_tachycardia_the_other_signs_still_raise_it_above_the_threshold():
    scorer = LiveRiskScorer(default_vitals_model(), lambda patient: (None, None))
    scores = scorer.update(deteriorating(sick=DETERIORATED | {"heart_rate": WELL["heart_rate"]}))
    assert all(s.value >= default_vitals_model().threshold for s in scores[-3:])


def test_monitored_scores_record_their_model_and_mention_no_icu_field(ward_scores):
    for score in (s for scores in ward_scores.values() for s in scores):
        assert score.details["model"]["features"] == "vitals"
        assert set(score.details["model"]["inputs"]) == ALLOWED_INPUTS
        for reason in score.details["explanation"]:
            assert reason["input"] in ALLOWED_INPUTS
            assert not any(column in reason["text"] for column in ICU_ONLY), reason


def test_explanations_are_clinical_words_with_the_value(ward_scores):
    latest = ward_scores["sick"][-1].details["explanation"]
    assert all(CLINICAL_WORDS.match(reason["text"]) for reason in latest), latest
    texts = {reason["input"]: reason["text"] for reason in latest}
    raising = [reason["input"] for reason in latest if reason["contribution"] > 0]
    assert {"Resp", "O2Sat", "SBP", "Temp", "HR"} & set(raising)
    if "Resp" in texts:
        assert texts["Resp"] == "respiration 30/min, up from 16 over 6 h"
    if "O2Sat" in texts:
        assert texts["O2Sat"] == "SpO2 90 %, down from 97 over 6 h"


def test_the_sepsis_alert_speaks_clinical_words(ward_scores):
    alerts = SepsisRiskAlerts().update(ward_scores["sick"])
    assert len(alerts) == 1
    message = alerts[0].message
    assert "driven by" in message and not any(column in message for column in ICU_ONLY)
    assert re.search(r"(respiration 30/min|SpO2 90 %|systolic BP 74 mmHg|temperature 38.9 °C|heart rate 118)", message)


def test_the_ward_status_carries_the_model_that_scored_the_risk():
    score = LiveRiskScorer(default_vitals_model()).update(readings(1.1, WELL))[0]
    assert _summary(score.details)["model"]["features"] == "vitals"
