"""The simulated ward: profiles, reproducibility, valid ingest-format readings, and believable physiology."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from vigil.devices import Deterioration, PatientProfile, WardSimulator, mixed_ward
from vigil.devices.readings import DeviceKey
from vigil.metrics import METRICS
from vigil.timeutil import parse_time

START = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
ONSET = timedelta(hours=10)  # 10:00, daytime


def readings_frame(simulator: WardSimulator, until: datetime) -> pd.DataFrame:
    rows = [{"device": str(batch.key), **reading} for batch in simulator.advance(until) for reading in batch.readings]
    frame = pd.DataFrame(rows)
    frame["t"] = pd.to_datetime(frame["time"])
    return frame


def metric_values(frame: pd.DataFrame, device: str, metric: str, start: datetime, end: datetime) -> pd.Series:
    selected = frame[(frame.device == device) & (frame.metric == metric) & (frame.t >= start) & (frame.t < end)]
    return selected.set_index("t").value


@pytest.fixture(scope="module")
def ward_day() -> pd.DataFrame:
    """Two days of a small ward without CGM users (fast): one of each other condition."""
    profiles = [
        PatientProfile("healthy", "H", "healthy", seed=1, devices=("wearable", "bp_cuff")),
        PatientProfile("hyper", "Y", "hypertensive", seed=2),
        PatientProfile("postop", "P", "post_operative", seed=3),
        PatientProfile("sick", "S", "deteriorating", seed=4, deterioration=Deterioration(onset=ONSET)),
    ]
    return readings_frame(WardSimulator(profiles, START, seed=7), START + timedelta(days=2))


def test_mixed_ward_has_the_fixed_mix_with_one_deteriorating_patient():
    ward = mixed_ward(12, seed=3)
    assert Counter(p.condition for p in ward) == {
        "hypertensive": 3,
        "diabetic": 3,
        "healthy": 3,
        "post_operative": 2,
        "deteriorating": 1,
    }
    assert len({p.key for p in ward}) == 12
    assert all(p.virtual_patient for p in ward if p.condition == "diabetic")
    assert all("cgm" in p.devices for p in ward if p.condition == "diabetic")
    for n in range(1, 31):
        deteriorating = sum(p.condition == "deteriorating" for p in mixed_ward(n, seed=n))
        assert deteriorating == (1 if n >= 4 else 0)
    assert mixed_ward(12, seed=3) == ward
    assert mixed_ward(12, seed=4) != ward


def test_profile_defaults_and_validation():
    sick = PatientProfile("s", "S", "deteriorating", seed=5)
    assert sick.deterioration == Deterioration() and sick.devices == ("wearable", "bp_cuff")
    assert PatientProfile("d", "D", "diabetic", seed=5).virtual_patient is not None
    with pytest.raises(ValueError, match="condition"):
        PatientProfile("x", "X", "flu", seed=1)
    with pytest.raises(ValueError, match="devices"):
        PatientProfile("x", "X", "healthy", seed=1, devices=("toaster",))
    with pytest.raises(ValueError, match="one device of each kind"):
        PatientProfile("x", "X", "healthy", seed=1, devices=("wearable", "wearable"))
    with pytest.raises(ValueError, match="unique"):
        WardSimulator([sick, sick], START)
    with pytest.raises(ValueError, match="timezone-aware"):
        WardSimulator([sick], START).advance(datetime(2026, 11, 27, 1, 0))


def test_same_seed_same_readings_different_seed_different():
    profiles = [p for p in mixed_ward(6, seed=1) if "cgm" not in p.devices]
    until = START + timedelta(hours=3)

    def generate(seed: int) -> list:
        return [(b.key, b.readings) for b in WardSimulator(profiles, START, seed=seed).advance(until)]

    assert generate(11) == generate(11)
    assert generate(11) != generate(12)


def test_readings_do_not_depend_on_how_time_is_cut():
    profiles = [PatientProfile("h", "H", "hypertensive", seed=9)]
    whole = WardSimulator(profiles, START, seed=1).advance(START + timedelta(hours=12))
    stepwise = WardSimulator(profiles, START, seed=1)
    pieces: dict[DeviceKey, list] = {}
    for minutes in range(7, 12 * 60 + 1, 7):
        for batch in stepwise.advance(START + timedelta(minutes=minutes)):
            pieces.setdefault(batch.key, []).extend(batch.readings)
    for batch in stepwise.advance(START + timedelta(hours=12)):
        pieces.setdefault(batch.key, []).extend(batch.readings)
    assert {batch.key: batch.readings for batch in whole} == pieces


def test_every_reading_is_valid_ingest_format(ward_day):
    for row in ward_day.itertuples():
        metric = METRICS[row.metric]
        assert row.unit == metric.unit
        assert metric.hard_limits[0] <= row.value <= metric.hard_limits[1]
        assert isinstance(row.seq, int) and row.seq >= 0
        assert row.time.endswith("Z") and START <= parse_time(row.time) <= START + timedelta(days=2)
    for _, device in ward_day.groupby("device", sort=False):
        assert device.seq.is_unique and device.seq.is_monotonic_increasing
    implausible = [
        not METRICS[m].plausible_limits[0] <= v <= METRICS[m].plausible_limits[1]
        for m, v in zip(ward_day.metric, ward_day.value, strict=True)
    ]
    assert 0 < sum(implausible) < 0.002 * len(ward_day)  # rare, deliberately injected


def test_wearable_cadences_dropouts_and_steps(ward_day):
    wearable = ward_day[ward_day.device == "healthy/wearable"]
    gaps = {metric: rows.t.diff().dt.total_seconds().div(60).mode()[0] for metric, rows in wearable.groupby("metric")}
    assert gaps == {"heart_rate": 1, "spo2": 2, "resp_rate": 2, "steps": 5, "hrv_rmssd": 5, "body_temp": 10}
    longest_gap = wearable[wearable.metric == "heart_rate"].t.diff().max()
    assert timedelta(minutes=20) <= longest_gap <= timedelta(minutes=61)  # off the wrist now and then
    night = metric_values(ward_day, "healthy/wearable", "steps", START, START + timedelta(hours=6))
    day = metric_values(ward_day, "healthy/wearable", "steps", START + timedelta(hours=9), START + timedelta(hours=21))
    assert night.sum() == 0 and day.sum() > 2000


def test_hrv_falls_as_heart_rate_rises(ward_day):
    wearable = ward_day[ward_day.device == "healthy/wearable"]
    pivot = wearable.pivot_table(index="t", columns="metric", values="value").dropna(subset=["hrv_rmssd", "heart_rate"])
    assert np.corrcoef(pivot.heart_rate, np.log(pivot.hrv_rmssd))[0, 1] < -0.5


def test_heart_rate_is_lower_at_night(ward_day):
    def median_heart_rate(start: timedelta, end: timedelta) -> float:
        return metric_values(ward_day, "healthy/wearable", "heart_rate", START + start, START + end).median()

    for day in (timedelta(0), timedelta(days=1)):
        night = median_heart_rate(day + timedelta(hours=1), day + timedelta(hours=5))
        daytime = median_heart_rate(day + timedelta(hours=10), day + timedelta(hours=18))
        assert night < daytime - 8


def test_blood_pressure_profiles_differ(ward_day):
    two_days = (START, START + timedelta(days=2))
    healthy = metric_values(ward_day, "healthy/bp_cuff", "systolic_bp", *two_days)
    hypertensive = metric_values(ward_day, "hyper/bp_cuff", "systolic_bp", *two_days)
    hypertensive_diastolic = metric_values(ward_day, "hyper/bp_cuff", "diastolic_bp", *two_days)
    post_operative = metric_values(ward_day, "postop/bp_cuff", "systolic_bp", *two_days)
    assert len(healthy) == len(hypertensive) == 4 and len(post_operative) == 12
    assert hypertensive.mean() > 138 and hypertensive_diastolic.mean() > 85
    assert 105 < healthy.mean() < 132
    assert hypertensive.std() > 2  # readings vary within a patient


def test_post_operative_patient_is_warmer_and_faster_on_the_first_day(ward_day):
    first, second = START + timedelta(hours=1), START + timedelta(days=1, hours=1)
    for metric, rise in (("heart_rate", 4), ("body_temp", 0.15)):
        day_one = metric_values(ward_day, "postop/wearable", metric, first, first + timedelta(hours=8))
        day_two = metric_values(ward_day, "postop/wearable", metric, second, second + timedelta(hours=8))
        assert day_one.median() > day_two.median() + rise


def median_vitals(frame: pd.DataFrame, patient: str, start: datetime, end: datetime) -> dict[str, float]:
    metrics = {
        f"{patient}/wearable": ("heart_rate", "spo2", "resp_rate", "body_temp"),
        f"{patient}/bp_cuff": ("systolic_bp",),
    }
    return {m: metric_values(frame, device, m, start, end).median() for device, names in metrics.items() for m in names}


def test_deteriorating_patient_crosses_news2_thresholds_and_healthy_does_not(ward_day):
    onset = START + ONSET
    window = (onset + timedelta(minutes=60), onset + timedelta(minutes=240))
    sick = median_vitals(ward_day, "sick", *window)
    assert sick["heart_rate"] > 110 and sick["systolic_bp"] < 100 and sick["body_temp"] > 38
    assert sick["spo2"] < 94 and sick["resp_rate"] > 21
    well_windows = {"healthy": (START, START + timedelta(days=2)), "sick": (onset - timedelta(hours=3), onset)}
    for patient, window in well_windows.items():
        well = median_vitals(ward_day, patient, *window)
        assert well["heart_rate"] < 100 and well["systolic_bp"] > 100 and well["body_temp"] < 37.6
        assert well["spo2"] >= 95 and well["resp_rate"] < 20


def test_news2_reaches_urgent_within_an_hour_of_onset(ward_day):
    news2 = pytest.importorskip("vigil.care.news2")
    onset = START + ONSET

    def score_at(minutes: int) -> int:
        now = onset + timedelta(minutes=minutes)
        recent = {
            m: metric_values(ward_day, "sick/wearable", m, now - timedelta(minutes=15), now).median()
            for m in ("heart_rate", "spo2", "resp_rate", "body_temp")
        }
        latest_bp = metric_values(ward_day, "sick/bp_cuff", "systolic_bp", START, now).iloc[-1]
        return news2.news2_score(systolic_bp=latest_bp, **recent).total

    assert score_at(0) <= 2
    assert score_at(60) >= 5
    assert score_at(120) >= 7
