"""Live sepsis risk: hourly aggregation of the stream, scoring closed hours once, explained, confirmed alerts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from vigil.care.predictive import CONFIRMING_HOURS, SepsisRiskAlerts
from vigil.domain import Patient, Reading, ScoreKind
from vigil.models.live import COLUMNS, MAX_HOURS, LiveRiskScorer, patient_demographics
from vigil.models.risk import default_vitals_model

START = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
WELL = {"heart_rate": 72, "resp_rate": 14, "body_temp": 36.8, "systolic_bp": 125, "spo2": 97}
UNITS = {"heart_rate": "/min", "resp_rate": "/min", "body_temp": "Cel", "systolic_bp": "mm[Hg]", "spo2": "%"}


def readings(hours: float, vitals=WELL, start=START, patient="p1") -> list[Reading]:
    return [
        Reading(patient, "watch", metric, start + timedelta(minutes=m), float(value), UNITS[metric])
        for m in range(0, int(hours * 60), 5)
        for metric, value in vitals.items()
    ]


def test_each_closed_hour_is_scored_once_with_an_explanation():
    scorer = LiveRiskScorer(default_vitals_model(), lambda patient: (60.0, 1.0))
    first = scorer.update(readings(3.5))
    assert [s.time for s in first] == [START + timedelta(hours=h) for h in (1, 2, 3)]
    assert all(s.kind == ScoreKind.SEPSIS_RISK and 0 <= s.value <= 1 for s in first)
    assert len(first[0].details["explanation"]) == 5
    later = scorer.update(readings(1, start=START + timedelta(hours=3.5)))
    assert [s.time for s in later] == [START + timedelta(hours=4)]


def test_live_hours_match_the_challenge_features_of_the_same_hourly_medians():
    scorer = LiveRiskScorer(default_vitals_model(), lambda patient: (60.0, 1.0))
    scores = scorer.update(readings(4))
    hours = scorer._patients["p1"]
    frame = hours.frame(START + timedelta(hours=2))
    model = default_vitals_model()
    expected = model.probability_from_features(model.features(frame))
    assert [s.value for s in scores] == pytest.approx(list(expected))
    assert frame.loc[0, "HR"] == 72 and frame.loc[0, "Age"] == 60 and "ICULOS" not in frame.columns


def test_a_patients_hours_are_bounded_whatever_the_stay_length():
    scorer = LiveRiskScorer(default_vitals_model(), lambda patient: (60.0, 1.0))
    for hour in range(MAX_HOURS + 48):
        scores = scorer.update(readings(1, start=START + timedelta(hours=hour)))
        assert [s.time for s in scores] == ([START + timedelta(hours=hour)] if hour else [])
    hours = scorer._patients["p1"]
    assert len(hours.settled) == MAX_HOURS * len(COLUMNS) and list(hours.open_hours) == [START + timedelta(hours=hour)]
    assert hours.first_hour == START + timedelta(hours=hour - MAX_HOURS)
    late = replace(readings(1)[0], time=START + timedelta(hours=hour - 2), value=200.0)
    scorer.update([late])  # an already scored hour is settled: its row, and every later score, stay as they were
    assert scorer._patients["p1"].frame(START + timedelta(hours=hour - 1)).loc[MAX_HOURS - 2, "HR"] == 72


def test_alert_needs_consecutive_hours_above_the_threshold():
    scorer = LiveRiskScorer(replace(default_vitals_model(), threshold=0.0), lambda patient: (None, None))  # all alarm
    alerts = SepsisRiskAlerts().update(scorer.update(readings(CONFIRMING_HOURS + 2.5)))
    assert len(alerts) == 1
    assert alerts[0].time == START + timedelta(hours=CONFIRMING_HOURS)
    assert "driven by" in alerts[0].message and alerts[0].data["explanation"]


def test_demographics_from_the_registry():
    patient = Patient("p1", "X", birth_date="1950-12-01", sex="female")
    assert patient_demographics(patient, datetime(2026, 11, 28).date()) == (75.0, 0.0)
    assert patient_demographics(None, datetime(2026, 11, 28).date()) == (None, None)
