"""Tests for the streaming signal state: snapshots from batches of readings, in and out of order."""

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from vigil.domain import Reading
from vigil.metrics import METRICS
from vigil.signal import METRIC_PROFILES, PatientSignalState, SignalProcessor
from vigil.signal.state import LATE_BATCH_SECONDS

START = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
UNITS = {name: metric.unit for name, metric in METRICS.items()}


def reading(metric: str, minutes: float, value: float, patient: str = "p1", quality: str = "ok") -> Reading:
    return Reading(patient, "dev-1", metric, START + timedelta(minutes=minutes), value, UNITS[metric], None, quality)


def heart_rate_series(minutes: int, seed: int = 42) -> list[Reading]:
    """One heart rate a minute: 70/min plus seeded N(0, 2) noise."""
    noise = np.random.default_rng(seed).normal(0.0, 2.0, minutes)
    return [reading("heart_rate", i, 70.0 + float(noise[i])) for i in range(minutes)]


def with_value(readings: list[Reading], index: int, value: float) -> list[Reading]:
    changed = list(readings)
    original = changed[index]
    changed[index] = Reading(
        original.patient_id, original.device_id, original.metric, original.time, value, original.unit
    )
    return changed


def snapshot_of(readings: list[Reading], now: datetime | None = None):
    return PatientSignalState("p1").update(readings, now)


def test_every_catalogue_metric_has_a_profile():
    assert set(METRIC_PROFILES) == set(METRICS)


def test_snapshot_reports_latest_value_time_features_and_no_gap():
    snapshot = snapshot_of(heart_rate_series(90))
    assert snapshot.patient_id == "p1"
    assert snapshot.time == START + timedelta(minutes=89)
    assert snapshot.measured_at["heart_rate"] == START + timedelta(minutes=89)
    assert snapshot.values["heart_rate"] == pytest.approx(70.0, abs=3.0)
    features = snapshot.features["heart_rate"]
    assert features["count"] == 61 and features["window_hours"] == 1.0
    assert features["sd"] == pytest.approx(2.0, abs=0.8)
    assert features["coverage"] == 1.0
    assert features["recent_median"] == pytest.approx(70.0, abs=2.0)
    assert snapshot.gaps == {"heart_rate": False}


@pytest.mark.parametrize("spike_minutes_ago", [0, 2, 30])
def test_a_single_spike_does_not_move_the_value_or_features(spike_minutes_ago):
    readings = heart_rate_series(120)
    clean = snapshot_of(readings)
    spiked = snapshot_of(with_value(readings, 119 - spike_minutes_ago, 165.0))
    assert spiked.values["heart_rate"] == pytest.approx(clean.values["heart_rate"], abs=1.0)
    assert spiked.features["heart_rate"]["max"] < 80.0


def test_out_of_order_batches_give_the_same_snapshot_as_in_order():
    readings = heart_rate_series(180) + [reading("glucose", 5 * i, 110.0 + i) for i in range(36)]
    shuffled = readings.copy()
    random.Random(3).shuffle(shuffled)
    state = PatientSignalState("p1")
    for start in range(0, len(shuffled), 25):
        state.update(shuffled[start : start + 25])
    assert state.snapshot() == snapshot_of(readings)


def test_duplicate_metric_and_time_is_ignored():
    readings = heart_rate_series(30)
    resent = with_value(readings, 29, 140.0)[29:]  # same (metric, time), different value
    state = PatientSignalState("p1")
    state.update(readings)
    assert state.update(resent) == snapshot_of(readings)


def test_implausible_readings_are_excluded():
    readings = heart_rate_series(30)
    flagged = [reading("heart_rate", 30, 71.0, quality="implausible"), reading("heart_rate", 31, 300.0)]
    snapshot = snapshot_of(readings + flagged)
    assert snapshot.measured_at["heart_rate"] == START + timedelta(minutes=29)
    assert snapshot.features["heart_rate"]["count"] == 30


def test_a_reading_older_than_its_freshness_limit_is_left_out_of_values():
    readings = [reading("glucose", 0, 120.0), reading("heart_rate", 0, 70.0), reading("heart_rate", 45, 72.0)]
    snapshot = snapshot_of(readings)
    assert "glucose" not in snapshot.values and "glucose" not in snapshot.measured_at  # 45 min > 30 min
    assert snapshot.values["heart_rate"] == 72.0
    later = snapshot_of(readings, now=START + timedelta(minutes=106))
    assert later.values == {}


def test_blood_pressure_stays_fresh_for_a_day_and_has_no_gap_concept():
    readings = [reading("systolic_bp", 0, 128.0), reading("heart_rate", 20 * 60, 70.0)]
    snapshot = snapshot_of(readings)
    assert snapshot.values["systolic_bp"] == 128.0
    assert "systolic_bp" not in snapshot.gaps
    assert snapshot.features["systolic_bp"]["window_hours"] == 24.0


def test_long_silence_is_reported_as_a_gap_and_short_one_is_not():
    readings = heart_rate_series(60) + [reading("spo2", i, 97.0) for i in range(60)]
    readings += [reading("spo2", 62, 97.0)]  # 3 min without heart rate: a short, imputable gap
    assert snapshot_of(readings).gaps == {"heart_rate": False, "spo2": False}
    readings += [reading("spo2", 70, 97.0)]  # 11 min without heart rate: a long gap
    assert snapshot_of(readings).gaps == {"heart_rate": True, "spo2": False}


def test_heart_rate_baseline_and_recent_median():
    resting = [reading("heart_rate", i, 64.0 + i % 3) for i in range(4 * 60)]
    rising = [reading("heart_rate", 4 * 60 + i, 110.0) for i in range(20)]
    features = snapshot_of(resting + rising).features["heart_rate"]
    assert features["baseline"] == 65.0
    assert features["recent_median"] == 110.0


def test_no_baseline_before_two_hours_of_heart_rate():
    assert "baseline" not in snapshot_of(heart_rate_series(100)).features["heart_rate"]


def test_latest_hrv_is_reported_with_heart_rate_features():
    readings = [*heart_rate_series(10), reading("hrv_rmssd", 5, 42.0)]
    snapshot = snapshot_of(readings)
    assert snapshot.values["hrv_rmssd"] == 42.0
    assert snapshot.features["heart_rate"]["hrv_rmssd"] == 42.0


def test_glucose_trend_appears_in_features():
    readings = [reading("glucose", 5 * i, 180.0 - 2.0 * 5 * i) for i in range(12)]
    snapshot = snapshot_of(readings)
    assert snapshot.features["glucose"]["trend_per_min"] == pytest.approx(-2.0)
    assert snapshot.values["glucose"] == 70.0


def test_amounts_are_summed_and_never_filtered():
    readings = [reading("steps", i, 20.0) for i in range(30)] + [reading("steps", 30, 900.0)]
    readings += [reading("carbs", -150, 45.0), reading("carbs", 25, 30.0)]
    snapshot = snapshot_of(readings)
    features = snapshot.features
    assert snapshot.values["steps"] == 900.0
    assert features["steps"]["sum"] == 30 * 20.0 + 900.0
    assert features["carbs"] == {"count": 2.0, "sum": 75.0, "window_hours": 4.0}


def test_buffers_keep_only_the_retention_window():
    state = PatientSignalState("p1", retention=timedelta(hours=2))
    state.update(heart_rate_series(60))
    snapshot = state.update([reading("heart_rate", 4 * 60, 70.0)])
    assert snapshot.features["heart_rate"]["count"] == 1
    state.update([reading("heart_rate", 10, 70.0)])  # far older than retention: dropped at once
    assert state.snapshot().features["heart_rate"]["count"] == 1


def test_each_metric_keeps_what_it_looks_back_over_and_a_late_batch_still_finds_it():
    minutes = 30 * 60
    vitals = [reading(m, i, v) for i in range(minutes) for m, v in (("heart_rate", 70.0), ("spo2", 97.0))]
    state = PatientSignalState("p1")
    state.update(vitals)
    assert len(state._buffers["heart_rate"]) == 24 * 60 + 1  # the 24-h baseline
    kept = len(state._buffers["spo2"])
    assert (
        kept < 10 * 60 and kept >= LATE_BATCH_SECONDS / 60
    )  # its summary's hour or so, and six hours for late batches
    late_at = minutes - 5 * 60  # a device's batch five hours late is judged as of its own time, on its full context
    on_time = PatientSignalState("p1")
    on_time.update([r for r in vitals if r.time <= START + timedelta(minutes=late_at)])
    late = state.update([reading("spo2", late_at + 0.5, 96.0)], now=START + timedelta(minutes=late_at + 0.5))
    expected = on_time.update([reading("spo2", late_at + 0.5, 96.0)])
    assert late.features["spo2"] == expected.features["spo2"] and late.values["spo2"] == expected.values["spo2"]


def test_readings_need_timezone_aware_times_and_the_right_patient():
    naive = Reading("p1", "d", "heart_rate", datetime(2026, 11, 27, 10), 70.0, "/min")
    with pytest.raises(ValueError, match="timezone"):
        PatientSignalState("p1").update([naive])
    with pytest.raises(ValueError, match="another patient"):
        PatientSignalState("p1").update([reading("heart_rate", 0, 70.0, patient="p2")])


def test_processor_returns_one_snapshot_per_patient_in_the_batch():
    processor = SignalProcessor()
    batch = [reading("heart_rate", 0, 70.0, "a"), reading("heart_rate", 0, 90.0, "b"), reading("spo2", 0, 97.0, "a")]
    snapshots = processor.process(batch)
    assert [s.patient_id for s in snapshots] == ["a", "b"]
    assert snapshots[0].values == {"heart_rate": 70.0, "spo2": 97.0}
    later = processor.process([reading("heart_rate", 1, 72.0, "b")])
    assert len(later) == 1 and later[0].values["heart_rate"] == 81.0  # median of the last 5 min
    assert processor.process([]) == []


@pytest.mark.parametrize(("steps_per_5_min", "active"), [(0.0, 0.0), (40.0, 0.0), (60.0, 1.0), (400.0, 1.0)])
def test_activity_from_the_last_fifteen_minutes_of_steps(steps_per_5_min, active):
    readings = [reading("steps", m, 500.0) for m in (0, 5, 10)]  # an earlier walk, out of the window
    readings += [reading("steps", m, steps_per_5_min) for m in (45, 50, 55, 60)]
    activity = snapshot_of(readings).features["activity"]
    assert activity == {"steps_15min": 3 * steps_per_5_min, "active": active}


def test_no_activity_context_without_steps():
    assert "activity" not in snapshot_of(heart_rate_series(10)).features
