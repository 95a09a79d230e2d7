"""Closed loop on simglucose: meal announcements with realistic errors, the DESIGN.md output, reproducibility, and
advice that the virtual patient follows."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from vigil.cli import app
from vigil.glucose.body import patient_names
from vigil.glucose.simulation import AnnouncedMeals, glycaemic_metrics, patient_seed, simulate_patient

METRICS = {"tir", "tbr", "tbr54", "tar", "mean_bg"}


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
    assert metrics == {"tir": 0.4, "tbr": 0.4, "tbr54": 0.2, "tar": 0.2, "mean_bg": 112.0}


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
