"""CGM users: glucose every 5 minutes from the UVA/Padova simulator, with meals and the pump's insulin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from vigil.devices import PatientProfile, WardSimulator
from vigil.devices.readings import DeviceKey
from vigil.timeutil import parse_time

START = datetime(2026, 11, 27, 5, 0, tzinfo=UTC)  # breakfast comes between 05:00 and 09:00
HOURS = 4
CGM = DeviceKey("t1d", "cgm")


def cgm_user() -> PatientProfile:
    return PatientProfile("t1d", "T", "diabetic", seed=21, virtual_patient="adult#004")


def cgm_readings(simulator: WardSimulator, until: datetime) -> list[dict]:
    return [r for batch in simulator.advance(until) if batch.key == CGM for r in batch.readings]


@pytest.fixture(scope="module")
def morning() -> list[dict]:
    return cgm_readings(WardSimulator([cgm_user()], START, seed=6), START + timedelta(hours=HOURS))


def by_metric(readings: list[dict], metric: str) -> list[dict]:
    return [r for r in readings if r["metric"] == metric]


def test_glucose_every_five_minutes_within_range(morning):
    glucose = by_metric(morning, "glucose")
    times = [parse_time(r["time"]) for r in glucose]
    assert all(t.minute % 5 == 0 and t.second == 0 for t in times)
    assert all((later - earlier) % timedelta(minutes=5) == timedelta(0) for earlier, later in pairwise(times))
    assert len(glucose) >= 0.9 * (HOURS * 12 + 1)  # signal loss is rare
    assert all(40 <= r["value"] <= 400 and r["unit"] == "mg/dL" for r in glucose)
    assert len({r["value"] for r in glucose}) > 10


def test_meals_and_insulin_are_emitted(morning):
    carbs, boluses, basal = (by_metric(morning, m) for m in ("carbs", "insulin_bolus", "insulin_basal"))
    assert carbs and all(0 < r["value"] <= 150 and r["unit"] == "g" for r in carbs)
    assert boluses and all(0 < r["value"] <= 25 and r["unit"] == "U" for r in boluses)
    assert parse_time(boluses[0]["time"]) == parse_time(carbs[0]["time"])  # the therapy doses for the meal
    basal_times = [parse_time(r["time"]) for r in basal]
    assert basal_times[0] == START and all(t.minute == 0 for t in basal_times)
    assert len(basal) == HOURS + 1 and all(0 < r["value"] <= 5 and r["unit"] == "U/h" for r in basal)


def test_same_seed_same_glucose_however_time_is_cut(morning):
    simulator = WardSimulator([cgm_user()], START, seed=6)
    pieces = []
    for minutes in (7, 40, 41, 90):
        pieces += cgm_readings(simulator, START + timedelta(minutes=minutes))
    assert pieces == [r for r in morning if parse_time(r["time"]) <= START + timedelta(minutes=90)]
    other_seed = cgm_readings(WardSimulator([cgm_user()], START, seed=7), START + timedelta(minutes=30))
    assert by_metric(other_seed, "glucose") != by_metric(pieces, "glucose")[: len(by_metric(other_seed, "glucose"))]


def test_simulator_runs_only_as_far_as_asked():
    simulator = WardSimulator([cgm_user()], START, seed=6)
    simulator.advance(START + timedelta(minutes=32))
    environment = simulator.devices[CGM].environment
    assert environment.time == (START + timedelta(minutes=30)).replace(tzinfo=None)
