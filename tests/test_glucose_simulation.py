"""Closed loop on simglucose: meal announcements with realistic errors, the DESIGN.md output, reproducibility, and
advice that the virtual patient follows."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from vigil.cli import app
from vigil.glucose.body import patient_names
from vigil.glucose.simulation import (
    AnnouncedMeals,
    LowHabit,
    PatientRun,
    Rescue,
    glycaemic_metrics,
    patient_seed,
    simulate_patient,
)

METRICS = {"tir", "tbr", "tbr54", "tar", "mean_bg", "gri", "rescue_g_per_day", "rescues_per_day"}


def test_announcements_err_within_30_percent_and_some_meals_go_unannounced():
    announcer = AnnouncedMeals(seed=4)
    said = np.array([announcer.announce(60.0) for _ in range(2000)])
    announced = said[said > 0]
    assert 0.06 < np.mean(said == 0) < 0.14
    assert announced.min() >= 60 * 0.7 - 2.5 and announced.max() <= 60 * 1.3 + 2.5
    assert np.all(announced % 5 == 0) and len(np.unique(announced)) > 5
    assert list(AnnouncedMeals(seed=4).rng.random(3)) == list(AnnouncedMeals(seed=4).rng.random(3))


def test_glycaemic_metrics_by_hand():
    metrics = glycaemic_metrics(np.array([50.0, 60.0, 100.0, 150.0, 200.0]))
    # GRI: 3.0 x 20 % very low + 2.4 x 20 % low + 0.8 x 20 % high = 124, capped at 100
    assert metrics == {"tir": 0.4, "tbr": 0.4, "tbr54": 0.2, "tar": 0.2, "mean_bg": 112.0, "gri": 100.0}


class _Scenario:
    def __init__(self) -> None:
        self.eaten: list[tuple[object, float]] = []

    def take_rescue(self, time: object, grams: float) -> None:
        self.eaten.append((time, grams))


class _Environment:
    time = "now"


def test_the_low_habit_takes_15_g_under_70_at_most_every_15_minutes():
    run, scenario, habit = PatientRun("child#001", "bb", []), _Scenario(), LowHabit()
    for minute, cgm in [(0, 75), (5, 69), (10, 60), (15, 58), (20, 55), (25, 80), (40, 65)]:
        habit.treat(minute, cgm, _Environment(), scenario, run)
    assert [(r.minute, r.grams, r.source) for r in run.rescues] == [
        (5, 15, "habit"),
        (20, 15, "habit"),
        (40, 15, "habit"),
    ]
    assert [grams for _, grams in scenario.eaten] == [15, 15, 15]


def test_advised_carbs_count_as_a_rescue_for_the_habit_and_the_daily_figures():
    run = PatientRun("child#001", "vigil", [120.0] * 288, rescues=[Rescue(0, 15, "advice")])
    scenario = _Scenario()
    LowHabit().treat(10, 60, _Environment(), scenario, run)
    assert scenario.eaten == []  # eaten 10 minutes ago on advice
    assert run.metrics()["rescue_g_per_day"] == 15.0 and run.metrics()["rescues_per_day"] == 1.0


def test_patient_selection_and_its_errors():
    assert len(patient_names("all")) == 30 and len(patient_names("child")) == 10
    assert patient_names("adult#001, child#002") == ["adult#001", "child#002"]
    with pytest.raises(ValueError, match="patients: unknown virtual patient"):
        patient_names("adult#011")


def test_unknown_controller_is_refused():
    with pytest.raises(ValueError, match="controller"):
        simulate_patient("adult#001", 1, 1, "pid")


@pytest.fixture(scope="module")
def one_day() -> dict:
    result = CliRunner().invoke(
        app,
        ["glucose", "simulate", "--patients", "child#003", "--days", "1", "--seed", "2", "--workers", "1", "--json"],
    )
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


def test_simulate_json_has_the_design_shape(one_day):
    assert set(one_day["patients"]) == {"child#003"}
    assert set(one_day["patients"]["child#003"]) == METRICS and set(one_day["overall"]) == METRICS
    assert one_day["days"] == 1 and one_day["seed"] == 2 and one_day["baselines"] == {}
    assert one_day["daily_rescue_carbs_g"] == {"child#003": one_day["patients"]["child#003"]["rescue_g_per_day"]}


def test_an_unknown_baseline_is_refused_by_name():
    result = CliRunner().invoke(app, ["glucose", "simulate", "--patients", "child#003", "--baseline", "bb,pid"])
    assert result.exit_code != 0 and "--baseline: unknown controller(s) pid" in result.output


@pytest.fixture(scope="module")
def run():
    return simulate_patient("child#003", 1, patient_seed(2, "child#003"), "vigil")


def test_the_same_seed_gives_the_same_patient(one_day, run):
    assert run.metrics() == one_day["patients"]["child#003"]
    assert len(run.glucose) == 24 * 60 // 5


def test_the_patient_follows_the_advice_and_no_insulin_is_advised_when_low(run):
    kinds = {advice.kind for _, advice in run.advice}
    assert {"bolus", "temp_basal"} <= kinds
    for _, advice in run.advice:
        assert advice.reason
        if advice.kind == "bolus":
            assert advice.data["glucose"] >= 80 and advice.data["lowest_30"] >= 70
            assert advice.amount <= 0.25 * 16.02 + 1e-9  # child#003's maximum bolus: a quarter of daily insulin
