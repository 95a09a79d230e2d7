"""One insulin budget per decision: the meal or correction bolus and the temporary basal are drawn from the same
forecast, net of insulin on board and of insulin recommended but not yet given, under a cap on the insulin of the
next two hours; live, a suspension is renewed while the low forecast persists."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from vigil.domain import Reading, RecommendationKind
from vigil.glucose.advisor import Advice, GlucoseAdvisor, Undelivered
from vigil.glucose.history import GlucoseHistory
from vigil.glucose.live import EPOCH, LiveGlucose, PatientGlucose, TherapySource, default_therapy
from vigil.glucose.therapy import TherapyProfile, safety_limits

PROFILE = TherapyProfile(isf=50.0, carb_ratio=10.0, basal_u_per_h=1.0, target=120.0)
LIMITS = safety_limits(total_daily_insulin=40.0, basal_u_per_h=1.0)  # max bolus 10 U, temp basal 4 U/h, 12 U in 2 h
NOW = 600.0


def steady(glucose: float, slope_per_min: float = 0.0) -> GlucoseHistory:
    """Two hours of CGM every 5 minutes ending at NOW, on the programmed basal."""
    history = GlucoseHistory()
    history.set_basal(0.0, PROFILE.basal_u_per_h)
    for minute in np.arange(NOW - 120, NOW + 1, 5.0):
        history.add_cgm(minute, glucose + slope_per_min * (minute - NOW))
    return history


def recommended_units(advice: list[Advice], programmed: float = PROFILE.basal_u_per_h) -> float:
    """Boluses plus the insulin a temporary basal gives above the programmed basal over its duration."""
    boluses = sum(a.amount for a in advice if a.kind == "bolus")
    basal = sum((a.amount - programmed) * (a.duration_min or 0) / 60 for a in advice if a.kind == "temp_basal")
    return boluses + basal


def test_a_meal_bolus_and_the_temporary_basal_are_drawn_from_one_forecast():
    """60 g at target: 6 U covers the meal; today's 6 U bolus plus 4 U/h for 30 minutes gave 7.5 U."""
    history = steady(120.0)
    history.add_carbs(NOW, 60.0)
    advice = GlucoseAdvisor(PROFILE, LIMITS).advise(history, NOW, 60.0)
    assert [a.amount for a in advice if a.kind == "bolus"] == [pytest.approx(6.0, abs=0.05)]
    assert recommended_units(advice) <= 6.0 + 0.05


def test_a_half_correction_and_extra_basal_never_exceed_the_full_correction():
    """At 260 mg/dL the full correction is 2.8 U; today's 1.4 U bolus plus 1.5 U of extra basal went beyond it."""
    advice = GlucoseAdvisor(PROFILE, LIMITS).advise(steady(260.0), NOW)
    assert [a.amount for a in advice if a.kind == "bolus"] == [pytest.approx(1.4, abs=0.05)]
    assert recommended_units(advice) <= (260.0 - 120.0) / 50.0 + 0.05


def test_a_bolus_recommended_and_not_yet_given_counts_against_the_forecast():
    """Five minutes after a 60 g meal whose 6 U bolus is still awaiting a decision, no extra basal is added."""
    history = steady(120.0)
    history.add_carbs(NOW - 5, 60.0)
    advice = GlucoseAdvisor(PROFILE, LIMITS).advise(history, NOW, undelivered=Undelivered(bolus_u=6.0))
    assert recommended_units(advice) <= 0.05
    without = GlucoseAdvisor(PROFILE, LIMITS).advise(history, NOW)
    assert recommended_units(without) > 1.0  # the same moment with nothing pending: the forecast asks for insulin


def test_a_running_temporary_basal_counts_against_a_meal_bolus():
    """3 U/h for 30 more minutes gives 1 U above the programmed basal: the 60 g meal bolus is 1 U smaller."""
    history = steady(120.0)
    history.add_carbs(NOW, 60.0)
    running = Undelivered(basal_u_per_h=3.0, basal_until=NOW + 30.0)
    advice = GlucoseAdvisor(PROFILE, LIMITS).advise(history, NOW, 60.0, running)
    assert [a.amount for a in advice if a.kind == "bolus"] == [pytest.approx(5.0, abs=0.05)]


def test_the_insulin_of_the_next_two_hours_is_capped():
    """8 U given 30 minutes ago and a 100 g meal at 250 mg/dL: the forecast asks for more than the 2-hour cap allows;
    insulin on board plus the new bolus plus the extra basal stay within it."""
    assert safety_limits(40.0, 1.0).max_insulin_2h_u == pytest.approx(0.3 * 40.0)
    history = steady(250.0)
    history.add_bolus(NOW - 30, 8.0)
    history.add_carbs(NOW, 100.0)
    iob = history.insulin_on_board(NOW, PROFILE.basal_u_per_h)
    advice = GlucoseAdvisor(PROFILE, LIMITS).advise(history, NOW, 100.0)
    [bolus] = [a for a in advice if a.kind == "bolus"]
    assert iob + recommended_units(advice) <= LIMITS.max_insulin_2h_u + 0.05
    assert (
        bolus.data["budget_room_u"] == round(LIMITS.max_insulin_2h_u - iob, 2) != round(LIMITS.max_insulin_2h_u - iob)
    )
    wanted = (bolus.data["eventual"] - PROFILE.target) / PROFILE.isf
    assert bolus.data["budget_wanted_u"] == pytest.approx(wanted, abs=0.01) and wanted != pytest.approx(
        round(wanted), abs=0.1
    )
    pending = GlucoseAdvisor(PROFILE, LIMITS).advise(history, NOW, 100.0, Undelivered(bolus_u=3.0))
    assert iob + 3.0 + recommended_units(pending) <= LIMITS.max_insulin_2h_u + 0.05


PATIENT = "p-budget"
PROGRAMMED = default_therapy().basal_u_per_h


def reading(minute: float, metric: str, value: float, unit: str) -> Reading:
    return Reading(PATIENT, "d-budget", metric, EPOCH + timedelta(minutes=minute), value, unit)


def cgm(start: float, values: list[float]) -> list[Reading]:
    return [reading(start + 5 * i, "glucose", v, "mg/dL") for i, v in enumerate(values)]


def temp_basals(drafts) -> list[tuple[float, float]]:
    """(minute, U/h) of each temporary basal recommended."""
    return [
        ((d.time - EPOCH) / timedelta(minutes=1), d.data["amount"])
        for d in drafts
        if d.kind == RecommendationKind.TEMP_BASAL
    ]


def test_live_a_meal_bolus_awaiting_its_decision_is_not_stacked_with_extra_basal():
    live = LiveGlucose()
    first = cgm(0.0, [120.0] * 25)
    live.update([reading(0.0, "insulin_basal", PROGRAMMED, "U/h"), *first])
    drafts = live.update([reading(120.0, "carbs", 60.0, "g")]).recommendations
    [bolus] = [d for d in drafts if d.kind == RecommendationKind.MEAL_BOLUS]
    for minute in np.arange(125.0, 170.0, 5.0):  # the bolus is not seen in the insulin data
        drafts += live.update(cgm(minute, [120.0])).recommendations
    extra = [(minute, rate) for minute, rate in temp_basals(drafts) if rate > PROGRAMMED + 0.05]
    assert extra == [], f"extra basal while the {bolus.data['amount']} U meal bolus is pending"


def test_live_a_suspension_is_renewed_while_the_low_forecast_persists():
    """Glucose falls from 111 to 84 mg/dL with insulin on board: 0 U/h is recommended again before each 30-minute
    suspension runs out, never leaving the patient on the programmed basal while the advisor wants it suspended."""
    live = LiveGlucose()
    live.update([reading(0.0, "insulin_basal", PROGRAMMED, "U/h"), *cgm(0.0, [111.0] * 12)])
    live.update([reading(55.0, "insulin_bolus", 3.0, "U")])
    falling = list(np.linspace(111.0, 84.0, 19))[1:]  # 90 minutes, 1.5 mg/dL every 5 minutes
    drafts = []
    for i, value in enumerate(falling):
        drafts += live.update(cgm(60.0 + 5 * i, [float(value)])).recommendations
    suspensions = [minute for minute, rate in temp_basals(drafts) if rate == 0.0]
    assert suspensions and suspensions[0] <= 70.0
    covered_until = [minute + 30.0 for minute in suspensions]
    gaps = [later - ends for later, ends in zip(suspensions[1:], covered_until)]
    assert len(suspensions) >= 3 and max(gaps) <= 0.0, suspensions
    assert covered_until[-1] >= 60.0 + 5 * (len(falling) - 1)


def basal(rate: float) -> Advice:
    return Advice("temp_basal", rate, "U/h", "test", {}, 30.0)


def test_live_temporary_basal_filter_step_by_step():
    """Programmed 0.5 U/h, so a change is material from 0.125 U/h; each temporary basal runs 30 minutes."""
    state = PatientGlucose(TherapySource(12.0, 0.5, "test"))
    steps = [
        (0.0, 0.0, True),  # a suspension: far from the programmed basal
        (10.0, 0.1, False),  # 0.1 from the suspension running
        (10.0, 0.125, True),  # exactly the threshold from the suspension running
        (35.0, 0.125, True),  # renewed 5 minutes before it ends
        (40.0, 0.375, True),
        (65.0, 0.375, True),  # renewed: exactly the threshold from the programmed basal
        (70.0, 0.0, True),
        (75.0, 0.45, True),
        (100.0, 0.45, False),  # not renewed: it is within the threshold of the programmed basal
        (105.0, 0.0, True),  # the last one has ended: compared with the programmed basal
        (135.0, 0.5, False),  # the suspension ends now; the programmed basal resumes by itself
    ]
    for minute, rate, recommended in steps:
        assert state.material_basal(basal(rate), minute) == recommended, (minute, rate)
    assert (state.recommended_basal, state.recommended_basal_until) == (0.0, 135.0)
    assert state.material_basal(Advice("temp_basal", 2.0, "U/h", "no duration"), 140.0)
    assert state.recommended_basal_until == 140.0  # without a duration it holds no time at all


def test_live_alerts_and_immaterial_basals_do_not_become_recommendations():
    state = PatientGlucose(TherapySource(12.0, 0.5, "test"))
    assert not state.recommends(Advice("alert_low", 60, "mg/dL", "test"), 0.0)
    assert not state.recommends(basal(0.5), 0.0)
    assert state.recommends(Advice("carbs", 15.0, "g", "test"), 0.0) and state.recommends(basal(0.0), 0.0)
    assert state.recommends(Advice("bolus", 2.0, "U", "test"), 5.0)
    assert state.recommended_boluses == [(5.0, 2.0)]


def test_live_undelivered_insulin_is_what_was_recommended_less_what_the_data_shows_given():
    state = PatientGlucose(TherapySource(12.0, 0.5, "test"))
    state.history.add_bolus(50.0, 1.0)  # before the recommendation: not its delivery
    state.recommends(Advice("bolus", 4.0, "U", "test"), 100.0)
    state.recommends(basal(1.5), 100.0)
    assert state.undelivered(100.0) == Undelivered(4.0, 1.5, 130.0)
    state.history.add_bolus(100.0, 1.5)  # given at the minute it was recommended
    assert state.undelivered(105.0).bolus_u == pytest.approx(2.5)
    state.history.add_bolus(110.0, 2.5)  # the rest, seen at the minute of advice
    assert state.undelivered(110.0).bolus_u == 0.0
    state.recommends(Advice("bolus", 1.0, "U", "test"), 120.0)
    assert state.undelivered(159.0).bolus_u == pytest.approx(1.0)
    assert state.undelivered(160.0).bolus_u == pytest.approx(1.0)  # the first has lapsed; the second is pending
    assert state.undelivered(180.0).bolus_u == 0.0
    never_given = PatientGlucose(TherapySource(12.0, 0.5, "test"))
    never_given.recommends(Advice("bolus", 2.0, "U", "test"), 0.0)
    assert never_given.undelivered(59.0).bolus_u == 2.0
    assert never_given.undelivered(60.0).bolus_u == 0.0  # an hour on, a bolus never seen given is not counted
