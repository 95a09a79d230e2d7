"""Glucose advice: every recommendation bounded, never insulin when low or a low is forecast, rescue carbs and
predictive alerts from the forecast, each with its reason and data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from vigil.glucose.advisor import GlucoseAdvisor
from vigil.glucose.effects import EffectsForecaster
from vigil.glucose.history import GlucoseHistory
from vigil.glucose.therapy import TherapyProfile, safety_limits

PROFILE = TherapyProfile(isf=50.0, carb_ratio=10.0, basal_u_per_h=1.0, target=120.0)
LIMITS = safety_limits(total_daily_insulin=40.0, basal_u_per_h=1.0)  # max bolus 10 U, max temp basal 4 U/h
NOW = 600.0


def steady(glucose: float, slope_per_min: float = 0.0) -> GlucoseHistory:
    """Two hours of CGM every 5 minutes ending at NOW, on the programmed basal."""
    history = GlucoseHistory()
    history.set_basal(0.0, PROFILE.basal_u_per_h)
    for minute in np.arange(NOW - 120, NOW + 1, 5.0):
        history.add_cgm(minute, glucose + slope_per_min * (minute - NOW))
    return history


def advise(history: GlucoseHistory, meal: float = 0.0) -> dict[str, list]:
    advisor = GlucoseAdvisor(PROFILE, LIMITS)
    if meal:
        history.add_carbs(NOW, meal)
    by_kind: dict[str, list] = {}
    for advice in advisor.advise(history, NOW, meal):
        by_kind.setdefault(advice.kind, []).append(advice)
    return by_kind


def test_meal_bolus_covers_carbs_and_correction_net_of_insulin_on_board():
    plain = advise(steady(120.0), meal=60.0)["bolus"][0]
    assert plain.amount == pytest.approx(60 / 10, abs=0.05)  # 6 U: carbs / CR, no correction at target
    with_iob = steady(120.0)
    with_iob.add_bolus(NOW - 30, 2.0)
    assert advise(with_iob, meal=60.0)["bolus"][0].amount < plain.amount - 1.0


def test_bolus_never_exceeds_the_maximum():
    huge = advise(steady(300.0), meal=250.0)["bolus"][0]
    assert huge.amount == pytest.approx(LIMITS.max_bolus_u)


def test_temp_basal_never_exceeds_the_maximum_nor_goes_negative():
    high = advise(steady(350.0, 1.0))["temp_basal"][0]
    assert high.amount == pytest.approx(LIMITS.max_temp_basal_u_per_h)
    low = advise(steady(90.0, -1.0))["temp_basal"][0]
    assert low.amount == 0.0


@pytest.mark.parametrize("glucose", [75.0, 79.0])
def test_no_insulin_below_80(glucose):
    advice = advise(steady(glucose), meal=50.0)
    assert "bolus" not in advice
    assert advice["temp_basal"][0].amount == 0.0


def test_basal_is_suspended_while_any_forecast_in_two_hours_is_under_80():
    """100 mg/dL falling 1.5 mg/dL a minute, 20 g just eaten: no low within 30 minutes (no rescue), but the forecast
    dips under 80 within 2 hours before the meal lifts it well above target: suspended all the same."""
    history = steady(100.0, -1.5)
    history.add_carbs(NOW, 20.0)
    advice = advise(history)
    [basal] = advice["temp_basal"]
    assert basal.data["lowest_30"] >= 70 and basal.data["lowest_guard"] < 80 and basal.data["eventual"] > 150
    assert basal.amount == 0.0 and "carbs" not in advice


def test_a_correction_never_exceeds_the_maximum_bolus():
    limits = replace(LIMITS, max_bolus_u=1.0)  # the half correction at 260 mg/dL would be 1.4 U
    [bolus] = [a for a in GlucoseAdvisor(PROFILE, limits).advise(steady(260.0), NOW) if a.kind == "bolus"]
    assert bolus.amount == pytest.approx(1.0)


def test_no_insulin_when_a_low_is_forecast_even_at_a_normal_glucose():
    history = steady(100.0, -2.5)  # 100 now, falling 2.5 mg/dL a minute with insulin acting
    history.add_bolus(NOW - 40, 4.0)
    advice = advise(history, meal=20.0)
    assert "bolus" not in advice
    assert advice["temp_basal"][0].amount == 0.0
    assert advice["carbs"][0].amount == 15.0
    assert "forecast" in advice["carbs"][0].reason


def test_predictive_low_alert_before_the_last_value_is_low():
    advice = advise(steady(100.0, -1.5))
    alert = advice["alert_low"][0]
    assert alert.amount < 70 and alert.data["glucose"] > 95


def test_predictive_high_alert():
    assert advise(steady(220.0, 1.5))["alert_high"][0].amount > 250


def test_rescue_carbs_not_repeated_within_20_minutes():
    history, advisor = steady(80.0, -1.5), GlucoseAdvisor(PROFILE, LIMITS)
    first = [a.kind for a in advisor.advise(history, NOW)]
    history.add_cgm(NOW + 5, 72.0)
    second = [a.kind for a in advisor.advise(history, NOW + 5)]
    assert "carbs" in first and "carbs" not in second


def test_correction_bolus_when_forecast_stays_high_and_not_again_within_the_hour():
    history, advisor = steady(260.0), GlucoseAdvisor(PROFILE, LIMITS)
    first = [a for a in advisor.advise(history, NOW) if a.kind == "bolus"]
    assert first and first[0].amount == pytest.approx(0.5 * (260 - 120) / 50, abs=0.1)
    history.add_bolus(NOW, first[0].amount)
    history.add_cgm(NOW + 5, 262.0)
    assert not [a for a in advisor.advise(history, NOW + 5) if a.kind == "bolus"]


def test_every_advice_says_why_and_shows_its_data():
    history = steady(200.0, 1.0)
    for advice in [*advise(history, meal=70.0).values()]:
        for item in advice:
            assert item.reason and item.data["glucose"] > 0


def test_no_advice_without_recent_cgm():
    history = steady(120.0)
    assert GlucoseAdvisor(PROFILE, LIMITS).advise(history, NOW + 60) == []


def test_forecast_follows_insulin_and_carbs():
    forecaster = EffectsForecaster(PROFILE)
    history = steady(150.0)
    history.add_bolus(NOW, 2.0)  # 2 U x 50 mg/dL/U = 100 mg/dL once fully acted
    assert forecaster.predict(history, NOW, 360) == pytest.approx(50.0, abs=1.5)
    history.add_carbs(NOW, 20.0)  # 20 g / 10 g/U x 50 = +100 mg/dL
    assert forecaster.predict(history, NOW, 360) == pytest.approx(150.0, abs=1.5)
