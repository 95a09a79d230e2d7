"""Tests for the care engine: each alert rule, no re-raising, confirmation over time, activity, escalation advice."""

from datetime import UTC, datetime, timedelta

import pytest

from vigil.care import CareEngine, News2Context
from vigil.domain import VitalsSnapshot

START = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
NORMAL = {"resp_rate": 16.0, "spo2": 97.0, "systolic_bp": 120.0, "heart_rate": 70.0, "body_temp": 37.0}
MEDIUM = {**NORMAL, "resp_rate": 23.0, "spo2": 93.0, "heart_rate": 95.0}  # 2 + 2 + 1 = 5
HIGH = {**NORMAL, "resp_rate": 24.0, "spo2": 93.0, "heart_rate": 115.0, "body_temp": 38.5}  # 2 + 2 + 2 + 1 = 7


def snapshot(values: dict[str, float], features: dict | None = None, minute: int = 0, patient: str = "p1"):
    time = START + timedelta(minutes=minute)
    return VitalsSnapshot(patient, time, dict(values), {name: time for name in values}, features or {})


def instant() -> CareEngine:
    """An engine that acts on a condition as soon as it is seen (the rules themselves under test)."""
    return CareEngine(confirmation=timedelta(0))


def rules_raised(engine: CareEngine, *snapshots: VitalsSnapshot) -> list[list[str]]:
    return [[alert.rule for alert in engine.evaluate(s).alerts] for s in snapshots]


def test_normal_vitals_give_a_zero_score_and_nothing_else():
    outcome = instant().evaluate(snapshot({**NORMAL, "glucose": 110.0}))
    assert [(s.kind, s.value) for s in outcome.scores] == [("news2", 0.0)]
    assert outcome.alerts == [] and outcome.recommendations == []
    details = outcome.scores[0].details
    assert details["band"] == "low" and details["missing"] == [] and details["components"]["heart_rate"] == 0


def test_news2_needs_three_fresh_parameters():
    assert instant().evaluate(snapshot({"heart_rate": 135.0, "spo2": 97.0})).scores == []
    outcome = instant().evaluate(snapshot({"heart_rate": 135.0, "spo2": 97.0, "resp_rate": 16.0}))
    assert outcome.scores[0].details["missing"] == ["systolic_bp", "body_temp"]
    assert [a.rule for a in outcome.alerts] == ["news2_single_3"]


def test_news2_of_five_raises_an_urgent_alert_that_says_why():
    outcome = instant().evaluate(snapshot(MEDIUM))
    [alert] = outcome.alerts
    assert (alert.rule, alert.severity, alert.patient_id, alert.time) == ("news2_urgent", "urgent", "p1", START)
    assert "NEWS2 is 5 (medium clinical risk)" in alert.message
    assert "Respiration rate 23/min scores 2" in alert.message
    assert alert.data["total"] == 5 and alert.data["values"]["spo2"] == 93.0


def test_single_red_parameter_is_a_warning_below_five_and_urgent_from_five():
    [low_medium] = instant().evaluate(snapshot({**NORMAL, "heart_rate": 135.0})).alerts
    assert (low_medium.rule, low_medium.severity) == ("news2_single_3", "warning")
    assert "Pulse 135/min scores 3 on its own" in low_medium.message
    assert low_medium.data["red_parameters"] == ["heart_rate"]
    alerts = instant().evaluate(snapshot({**NORMAL, "heart_rate": 135.0, "spo2": 93.0})).alerts
    assert {(a.rule, a.severity) for a in alerts} == {("news2_single_3", "urgent"), ("news2_urgent", "urgent")}


def test_a_persisting_condition_is_raised_once_and_again_after_it_clears():
    engine = instant()
    sequence = [MEDIUM, MEDIUM, NORMAL, MEDIUM]
    raised = rules_raised(engine, *(snapshot(values, minute=i) for i, values in enumerate(sequence)))
    assert raised == [["news2_urgent"], [], [], ["news2_urgent"]]


def test_news2_going_from_medium_to_high_raises_an_emergency_alert_but_not_on_the_way_down():
    engine = instant()
    outcomes = [engine.evaluate(snapshot(values, minute=i)) for i, values in enumerate([MEDIUM, HIGH, MEDIUM, HIGH])]
    assert [len(o.alerts) for o in outcomes] == [1, 1, 0, 0]
    assert "emergency response threshold" in outcomes[1].alerts[0].message
    assert outcomes[1].alerts[0].data["band"] == "high"


def test_missing_data_neither_raises_nor_resets_a_condition():
    engine = instant()
    raised = rules_raised(engine, snapshot({"glucose": 60.0}), snapshot({}), snapshot({"glucose": 61.0}))
    assert raised == [["glucose_low"], [], []]


def test_conditions_are_tracked_per_patient():
    engine = instant()
    raised = rules_raised(engine, snapshot({"glucose": 60.0}, patient="a"), snapshot({"glucose": 60.0}, patient="b"))
    assert raised == [["glucose_low"], ["glucose_low"]]


@pytest.mark.parametrize(
    ("glucose", "rule", "severity"),
    [(69.0, "glucose_low", "warning"), (53.0, "glucose_low", "emergency"), (251.0, "glucose_high", "warning")],
)
def test_glucose_alerts(glucose, rule, severity):
    features = {"glucose": {"trend_per_min": -1.5}}
    [alert] = instant().evaluate(snapshot({"glucose": glucose}, features)).alerts
    assert (alert.rule, alert.severity) == (rule, severity)
    assert f"Glucose is {glucose:.0f} mg/dL" in alert.message
    assert alert.data["glucose"] == glucose and alert.data["trend_per_min"] == -1.5
    assert alert.data["measured_at"] == START.isoformat()


@pytest.mark.parametrize("glucose", [70.0, 120.0, 180.0, 250.0])
def test_no_glucose_alert_in_range(glucose):
    assert instant().evaluate(snapshot({"glucose": glucose})).alerts == []


def test_hypoglycaemia_deepening_to_level_two_raises_a_more_severe_alert():
    engine = instant()
    outcomes = [engine.evaluate(snapshot({"glucose": g})) for g in (65.0, 50.0, 60.0, 50.0, 100.0, 65.0)]
    assert [[a.severity for a in o.alerts] for o in outcomes] == [["warning"], ["emergency"], [], [], [], ["warning"]]


@pytest.mark.parametrize(
    ("baseline", "recent", "fires"),
    [(70.0, 105.0, True), (70.0, 100.0, True), (70.0, 99.0, False), (120.0, 152.0, False), (60.0, 75.0, False)],
)
def test_heart_rate_rise_above_the_patients_own_baseline(baseline, recent, fires):
    features = {"heart_rate": {"baseline": baseline, "recent_median": recent}}
    alerts = instant().evaluate(snapshot({"heart_rate": recent}, features)).alerts
    assert [a.rule for a in alerts] == (["hr_rise"] if fires else [])
    if fires:
        assert alerts[0].severity == "warning" and alerts[0].data["baseline"] == baseline
        assert f"baseline of {baseline:.0f}/min" in alerts[0].message


def test_heart_rate_rise_needs_a_baseline():
    assert instant().evaluate(snapshot({}, {"heart_rate": {"recent_median": 150.0}})).alerts == []


def test_escalation_is_recommended_on_entering_medium_and_again_on_entering_high():
    engine = instant()
    outcomes = [engine.evaluate(snapshot(v, minute=i)) for i, v in enumerate([NORMAL, MEDIUM, MEDIUM, HIGH, HIGH])]
    assert [len(o.recommendations) for o in outcomes] == [0, 1, 0, 1, 0]
    medium, high = outcomes[1].recommendations[0], outcomes[3].recommendations[0]
    assert (medium.kind, medium.patient_id, medium.time) == ("escalation", "p1", START + timedelta(minutes=1))
    assert "urgent review" in medium.action and "Minimum 1-hourly" in medium.action
    assert "critical-care" in high.action and "Continuous monitoring" in high.action
    assert "Respiration rate 24/min scores 2" in high.reason and "emergency response threshold" in high.reason
    assert high.data["components"]["body_temp"] == 1 and high.data["values"]["heart_rate"] == 115.0


def test_no_escalation_recommendation_for_a_single_red_parameter():
    assert instant().evaluate(snapshot({**NORMAL, "heart_rate": 135.0})).recommendations == []


def test_news2_context_sets_scale_two_oxygen_and_consciousness():
    engine = instant()
    engine.set_news2_context("p1", News2Context(spo2_scale=2, supplemental_oxygen=True, consciousness="alert"))
    outcome = engine.evaluate(snapshot({**NORMAL, "spo2": 90.0}))
    details = outcome.scores[0].details
    assert details["components"]["spo2"] == 0 and details["components"]["supplemental_oxygen"] == 2
    assert details["spo2_scale"] == 2 and details["assumed"] == []


WALKING = {"activity": {"steps_15min": 900.0, "active": 1.0}}
RESTING = {"activity": {"steps_15min": 10.0, "active": 0.0}}


def test_resting_vitals_alert_only_once_the_condition_has_lasted_ten_minutes():
    engine = CareEngine()
    raised = rules_raised(engine, *(snapshot(MEDIUM, RESTING, minute=m) for m in range(0, 12, 2)))
    assert raised == [[], [], [], [], [], ["news2_urgent"]]


def test_a_transient_spike_in_news2_never_alerts():
    engine = CareEngine()
    sequence = [snapshot(MEDIUM, minute=m) for m in range(0, 8, 2)] + [snapshot(NORMAL, minute=8)]
    sequence += [snapshot(MEDIUM, minute=m) for m in range(10, 18, 2)]
    assert all(rules == [] for rules in rules_raised(engine, *sequence))
    assert all(not engine.evaluate(s).recommendations for s in sequence)


def test_vitals_while_walking_do_not_alert_and_the_clock_restarts_at_rest():
    engine = CareEngine()
    walking = [snapshot(HIGH, WALKING, minute=m) for m in range(0, 30, 5)]
    assert all(rules == [] for rules in rules_raised(engine, *walking))
    after = rules_raised(engine, *(snapshot(HIGH, RESTING, minute=m) for m in range(30, 42, 2)))
    assert after == [[], [], [], [], [], ["news2_urgent"]]


def test_glucose_alerts_are_not_held_back():
    engine = CareEngine()
    assert rules_raised(engine, snapshot({"glucose": 50.0}, WALKING)) == [["glucose_low"]]
