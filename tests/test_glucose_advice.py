"""Glucose advice: every recommendation bounded, never insulin when low or a low is forecast, rescue carbs and
predictive alerts from the forecast, each with its reason and data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from vigil.glucose.advisor import GlucoseAdvisor, InsulinBudget, Undelivered, cgm_trend, situation
from vigil.glucose.curves import CarbCurve, InsulinCurve
from vigil.glucose.effects import EffectsForecaster
from vigil.glucose.history import GlucoseHistory
from vigil.glucose.therapy import SafetyLimits, TherapyProfile, population_profile, safety_limits

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
    assert advice["carbs"][0].amount == 10.0  # sized: what lifts the 20-minute forecast to 80 mg/dL, in 5 g steps
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


# The guards below are each pinned by a test that fails when mutation testing (scripts/mutation_test.sh) changes them.


def test_the_safety_limits_and_population_settings_from_the_daily_insulin():
    assert safety_limits(40.0, 0.5) == SafetyLimits(max_bolus_u=10.0, max_temp_basal_u_per_h=2.0, max_insulin_2h_u=12.0)
    profile = population_profile(40.0, 0.8)
    assert (profile.isf, profile.carb_ratio, profile.basal_u_per_h) == (45.0, 12.5, 0.8)
    assert (profile.isf_sd, profile.carb_ratio_sd, profile.basal_sd) == pytest.approx((15.75, 4.375, 0.28))
    assert profile.with_values(isf=30.0) == replace(profile, isf=30.0)


def test_insulin_is_allowed_at_80_exactly():
    history = steady(80.0)
    history.add_carbs(NOW, 30.0)
    [bolus] = GlucoseAdvisor(PROFILE, LIMITS).advise(history, NOW, 30.0)[:1]
    assert bolus.kind == "bolus" and bolus.data["glucose"] == 80.0


@pytest.mark.parametrize("grams, units", [(1.0, 0.1), (5.0, 0.5)])
def test_a_small_meal_gets_its_small_bolus(grams, units):
    assert advise(steady(120.0), meal=grams)["bolus"][0].amount == pytest.approx(units)


@pytest.mark.parametrize("glucose, units", [(200.0, 4.6), (100.0, 3.0)])
def test_a_meal_bolus_is_at_most_the_carbs_plus_a_correction_for_the_glucose_now(glucose, units):
    """Rising 1 mg/dL a minute, the forecast asks for more than 30 g / CR plus (glucose - target) / ISF (none below
    target): the plain dose caps it."""
    assert advise(steady(glucose, 1.0), meal=30.0)["bolus"][0].amount == pytest.approx(units, abs=0.001)


def test_no_bolus_when_insulin_not_yet_given_already_covers_the_meal():
    history = steady(120.0)
    history.add_carbs(NOW, 60.0)
    advice = GlucoseAdvisor(PROFILE, LIMITS).advise(history, NOW, 60.0, Undelivered(bolus_u=6.0))
    assert [a.kind for a in advice] == ["temp_basal"] and advice[0].amount == pytest.approx(1.0)


def test_the_cap_binds_with_nothing_on_board():
    limits = replace(LIMITS, max_insulin_2h_u=5.0)
    history = steady(120.0)
    history.add_carbs(NOW, 100.0)
    advice = GlucoseAdvisor(PROFILE, limits).advise(history, NOW, 100.0)
    assert [(a.kind, a.amount) for a in advice if a.kind != "alert_high"] == [("bolus", 5.0), ("temp_basal", 1.0)]


def test_the_temporary_basal_gives_the_rest_of_the_correction_at_its_rate():
    [basal] = advise(steady(260.0))["temp_basal"]
    assert basal.amount == pytest.approx(1.0 + (2.8 - 1.4) / 0.5)


def test_the_temporary_basal_is_never_negative_when_the_forecast_ends_far_below_target():
    """3 U just given at 200 mg/dL: no low within 2 hours, but the eventual forecast (50) asks for less than none."""
    history = steady(200.0)
    history.add_bolus(NOW, 3.0)
    [basal] = advise(history)["temp_basal"]
    assert basal.data["lowest_guard"] >= 80 and basal.amount == 0.0


@pytest.mark.parametrize(
    "glucose, slope, corrected",
    [(140.0, 1.5, False), (170.0, -0.5, False), (155.0, 0.0, False), (150.0, 1.0, False), (150.5, 1.0, True)],
    ids=[
        "rising-but-under-150",
        "over-150-but-falling",
        "over-150-but-ending-within-40-of-target",
        "at-150-exactly",
        "just-over-150-rising",
    ],
)
def test_a_correction_needs_both_a_high_glucose_and_a_high_eventual_forecast(glucose, slope, corrected):
    assert ("bolus" in advise(steady(glucose, slope))) == corrected


def test_a_correction_may_follow_another_after_an_hour():
    history, advisor = steady(260.0), GlucoseAdvisor(PROFILE, LIMITS)
    [first] = [a for a in advisor.advise(history, NOW) if a.kind == "bolus"]
    history.add_bolus(NOW, first.amount)
    for minute in np.arange(NOW + 5, NOW + 61, 5.0):
        history.add_cgm(minute, 260.0)
    assert [a for a in advisor.advise(history, NOW + 60) if a.kind == "bolus"]


def test_rescue_carbs_again_after_20_minutes_if_still_needed():
    history, advisor = steady(80.0, -1.5), GlucoseAdvisor(PROFILE, LIMITS)
    assert "carbs" in [a.kind for a in advisor.advise(history, NOW)]
    for minute in np.arange(NOW + 5, NOW + 21, 5.0):
        history.add_cgm(minute, 80.0 - 1.5 * (minute - NOW))
    assert "carbs" in [a.kind for a in advisor.advise(history, NOW + 20)]


def test_the_high_alert_looks_a_full_hour_ahead():
    """190.2 mg/dL rising 2 mg/dL a minute: the forecast passes 250 only at 60 minutes."""
    [alert] = advise(steady(190.2, 2.0))["alert_high"]
    assert alert.amount == 250 and alert.data["highest_60"] > 250


def test_a_running_temporary_basal_counts_without_being_told_when_all_advice_is_followed():
    """Without ``undelivered`` the advisor's own last temporary basal runs: 4 U/h from 5 minutes ago has 25 minutes
    (1.25 U above the programmed basal) to go, and the meal bolus 5 minutes later is that much smaller."""
    history, advisor = steady(350.0, 1.0), GlucoseAdvisor(PROFILE, LIMITS)
    assert [a.amount for a in advisor.advise(history, NOW) if a.kind == "temp_basal"] == [4.0]
    history = steady(120.0)
    history.add_carbs(NOW + 5, 60.0)
    history.add_cgm(NOW + 5, 120.0)
    advice = advisor.advise(history, NOW + 5, 60.0)
    assert [a.amount for a in advice if a.kind == "bolus"] == [pytest.approx(6.0 - 3.0 * 25 / 60, abs=0.01)]


def test_undelivered_basal_counts_only_above_the_programmed_rate_and_only_while_it_runs():
    assert Undelivered(basal_u_per_h=3.0, basal_until=NOW + 30).extra_basal_u(NOW, 1.0) == pytest.approx(1.0)
    assert Undelivered(basal_u_per_h=0.0, basal_until=NOW + 30).extra_basal_u(NOW, 1.0) == 0.0
    assert Undelivered(basal_u_per_h=3.0, basal_until=NOW - 5).extra_basal_u(NOW, 1.0) == 0.0
    assert Undelivered().extra_basal_u(NOW, 1.0) == 0.0


def test_a_temporary_basal_runs_until_shortly_before_its_end_at_the_same_rate():
    running = Undelivered(basal_u_per_h=0.0, basal_until=NOW + 30)
    assert running.runs(0.0, NOW) and running.runs(0.04, NOW + 24)
    assert not running.runs(0.05, NOW) and not running.runs(0.0, NOW + 25) and not Undelivered().runs(1.0, NOW)
    assert Undelivered(basal_u_per_h=1.0, basal_until=NOW + 30).runs(1.0, NOW)


def test_the_budget_spends_and_never_allows_beyond_its_room():
    budget = InsulinBudget(wanted_u=3.0, room_u=2.0)
    assert budget.spend(0.5) == InsulinBudget(2.5, 1.5)
    assert budget.allowed(2.5) == 2.0 and budget.allowed(1.5) == 1.5 and InsulinBudget(1.0, -1.0).allowed(1.0) == 0.0


PRECISE = TherapyProfile(isf=48.123, carb_ratio=9.876, basal_u_per_h=1.0, target=120.0)


@pytest.mark.parametrize(
    "glucose, slope, meal, kinds",
    [
        (100.0, -1.5, 0.0, {"alert_low", "temp_basal"}),
        (90.0, -1.5, 0.0, {"alert_low", "carbs", "temp_basal"}),
        (220.0, 1.5, 0.0, {"alert_high", "bolus", "temp_basal"}),
        (150.0, 0.0, 47.0, {"bolus", "temp_basal"}),
    ],
)
def test_every_advice_carries_its_unit_its_reason_and_its_numbers(glucose, slope, meal, kinds):
    history = steady(glucose, slope)
    if meal:
        history.add_carbs(NOW, meal)
    advice = GlucoseAdvisor(PRECISE, LIMITS).advise(history, NOW, meal)
    assert {a.kind for a in advice} == kinds
    units = {"alert_low": "mg/dL", "alert_high": "mg/dL", "carbs": "g", "bolus": "U", "temp_basal": "U/h"}
    words = {"alert_low": "forecast to reach", "alert_high": "forecast to reach", "carbs": "g of fast carbohydrate"}
    words |= {"bolus": "U", "temp_basal": "target" if slope >= 0 else "lowest forecast"}
    for item in advice:
        assert item.unit == units[item.kind] and words[item.kind] in item.reason and "None" not in item.reason
        assert "meal_g" not in item.data or item.reason.endswith("left under the 2-hour cap).")
        assert item.amount == round(item.amount, 2)
        numbers = [value for key, value in item.data.items() if key not in ("now", "meal_g")]
        assert all(value == round(value, 2) for value in numbers)
        assert any(value != round(value, 1) for value in numbers)  # rounded to 0.01, not coarser
        if item.kind == "bolus":
            assert item.data["isf"] == 48.12 and item.data.get("carb_ratio", 9.88) == 9.88
            assert ("meal_g" in item.data) == (meal > 0) and ("carb_ratio" in item.data) == (meal > 0)
            assert {"budget_wanted_u", "budget_room_u"} <= set(item.data)


def test_the_situation_uses_the_forecasters_own_curves():
    """IOB, COB and the 30-minute forecast come from the forecaster the advisor uses, whatever its curves."""
    forecaster = EffectsForecaster(PROFILE, InsulinCurve(duration=300.0, peak=55.0), CarbCurve(absorption=120.0))
    history = steady(150.0, 0.5)
    history.add_bolus(NOW - 60, 3.0)
    history.add_carbs(NOW - 30, 40.0)
    seen = situation(forecaster, history, NOW)
    assert seen.iob == pytest.approx(history.insulin_on_board(NOW, 1.0, forecaster.insulin))
    assert seen.iob != pytest.approx(history.insulin_on_board(NOW, 1.0))
    assert seen.cob == pytest.approx(history.carbs_on_board(NOW, forecaster.carbs)) != history.carbs_on_board(NOW)
    assert seen.forecast_30 == pytest.approx(forecaster.predict(history, NOW, 30.0))


# Fewer rescues, same safety (issue 13): rescue carbs only for a low within 20 minutes, sized by its depth, and no
# extra insulin while glucose falls or within the hour after advised rescue carbs.


def test_a_low_forecast_beyond_20_minutes_alerts_but_asks_for_no_carbs():
    """100 mg/dL falling 1.5 mg/dL a minute: under 70 within 30 minutes (alert, suspension) but not within 20."""
    advice = advise(steady(100.0, -1.5))
    assert advice["alert_low"] and advice["temp_basal"][0].amount == 0.0 and "carbs" not in advice
    assert advice["alert_low"][0].data["lowest_rescue"] >= 70 > advice["alert_low"][0].data["lowest_30"]


@pytest.mark.parametrize(
    "lowest, grams", [(80.0, 5.0), (75.0, 5.0), (55.0, 5.0), (54.0, 10.0), (30.0, 10.0), (0.0, 15.0)]
)
def test_rescue_carbs_lift_the_20_minute_forecast_to_80_in_5_g_steps_at_most_15(lowest, grams):
    """ISF 50 over CR 10: 5 mg/dL per gram; (80 - lowest) / 5 g rounded up to 5 g, between 5 and 15 g."""
    seen = replace(situation(EffectsForecaster(PROFILE), steady(100.0), NOW), lowest_rescue=lowest)
    assert GlucoseAdvisor(PROFILE, LIMITS).rescue_grams(seen) == grams


@pytest.mark.parametrize("slope, corrected", [(-0.06, False), (-0.04, True)])
def test_no_correction_and_no_extra_basal_while_glucose_falls(slope, corrected):
    """260 mg/dL: the eventual forecast asks for insulin; falling faster than 3 mg/dL an hour, none is added."""
    advice = advise(steady(260.0, slope))
    assert ("bolus" in advice) == corrected
    assert (advice["temp_basal"][0].amount > PROFILE.basal_u_per_h) == corrected


@pytest.mark.parametrize("minutes_ago, corrected", [(59.0, False), (60.0, True)])
def test_no_extra_insulin_within_an_hour_of_advised_rescue_carbs(minutes_ago, corrected):
    advisor = GlucoseAdvisor(PROFILE, LIMITS, last_rescue=NOW - minutes_ago)
    advice = advisor.advise(steady(260.0), NOW)
    assert any(a.kind == "bolus" for a in advice) == corrected
    [basal] = [a for a in advice if a.kind == "temp_basal"]
    assert (basal.amount > PROFILE.basal_u_per_h) == corrected


def test_the_cgm_trend_is_the_slope_of_the_last_15_minutes():
    history = steady(150.0, -1.0)
    assert situation(EffectsForecaster(PROFILE), history, NOW).trend == pytest.approx(-1.0)
    short = GlucoseHistory()
    short.add_cgm(NOW - 5, 150.0)
    short.add_cgm(NOW, 140.0)
    assert cgm_trend(short, NOW) == 0.0  # fewer than three values
    short.add_cgm(NOW - 10, 160.0)
    assert cgm_trend(short, NOW) == pytest.approx(-2.0)  # three are enough


def test_the_cgm_trend_uses_exactly_the_readings_from_15_minutes_ago_to_now():
    """Readings off the line just outside the window (16 and 20 minutes ago, 5 minutes ahead) change nothing; the
    ones at its two ends (15 minutes ago and now) count."""
    history = GlucoseHistory()
    inside = {NOW - 15: 150.0, NOW - 10: 140.0, NOW - 5: 135.0, NOW: 120.0}
    for minute, value in {NOW - 20: 300.0, NOW - 16: 10.0, **inside, NOW + 5: 400.0}.items():
        history.add_cgm(minute, value)
    expected = np.polyfit(np.array(list(inside)) - NOW, np.array(list(inside.values())), 1)[0]
    assert cgm_trend(history, NOW) == pytest.approx(expected) and expected != pytest.approx(-1.5)
