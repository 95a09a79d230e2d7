"""Glucose forecasting: action curves, net-basal IOB, the Clarke grid, forecasters on series with known answers."""

import numpy as np
import pytest
from scipy.integrate import quad

from vigil.glucose.body import prescription
from vigil.glucose.clarke import clarke_ab_share, clarke_zones
from vigil.glucose.curves import CarbCurve, InsulinCurve, absorbed_between, total_on_board
from vigil.glucose.forecast import (
    LAG_STEPS,
    DaysWindow,
    LinearTrend,
    PatientSeries,
    Persistence,
    RidgeARX,
    arx_features,
    forecast_metrics,
)
from vigil.glucose.forecast_eval import live_days
from vigil.glucose.history import GlucoseHistory

DAY = 1440.0


def series_of(glucose_at, days: float = 1.0, name: str = "adult#001", doses=()) -> PatientSeries:
    """A synthetic patient whose CGM is ``glucose_at(minutes)`` every 5 minutes; ``doses`` are (minute, U, g)."""
    history = GlucoseHistory()
    for minute in np.arange(0.0, days * DAY + 1, 5.0):
        history.add_cgm(minute, float(glucose_at(minute)))
    for minute, units, grams in doses:
        history.add_bolus(minute, units)
        history.add_carbs(minute, grams)
    return PatientSeries.from_history(name, history, prescription(name))


# -- action curves ---------------------------------------------------------------------------------


def test_insulin_on_board_is_one_minus_the_integrated_activity():
    curve = InsulinCurve()
    for minutes in (10.0, 75.0, 180.0, 300.0):
        acted, _ = quad(lambda t: float(curve.activity(t)), 0, minutes)
        assert curve.on_board(minutes) == pytest.approx(1 - acted, abs=1e-9)
    assert quad(lambda t: float(curve.activity(t)), 0, curve.duration)[0] == pytest.approx(1.0, abs=1e-9)
    assert curve.on_board(0) == 1.0 and curve.on_board(curve.duration) == 0.0


def test_insulin_activity_peaks_at_the_peak_time():
    grid = np.arange(0.0, 360.0, 0.5)
    assert grid[np.argmax(InsulinCurve(duration=360, peak=75).activity(grid))] == pytest.approx(75.0)
    assert grid[np.argmax(InsulinCurve(duration=300, peak=55).activity(grid))] == pytest.approx(55.0)


def test_carbs_are_absorbed_linearly_after_the_delay():
    curve = CarbCurve(absorption=180, delay=10)
    assert curve.on_board([0, 10, 100, 190, 250]).tolist() == pytest.approx([1.0, 1.0, 0.5, 0.0, 0.0])
    # 60 g at minute 0 and 30 g at minute 100, seen at minute 130: 60 * (1 - 120/180) + 30 * (1 - 20/180)
    assert total_on_board(curve, [0, 100], [60, 30], 130) == pytest.approx(20 + 30 * 160 / 180)
    # between minutes 40 and 70 the first meal absorbs 30/180 of 60 g; the second is not eaten yet
    assert absorbed_between(curve, [0, 100], [60, 30], 40, 70) == pytest.approx(10.0)


def test_net_basal_above_the_schedule_is_insulin_on_board():
    curve, history = InsulinCurve(), GlucoseHistory()
    history.set_basal(0.0, 2.0)
    history.set_basal(60.0, 1.0)
    extra_doses = np.arange(0.0, 60.0, 5.0)  # 1 U/h above the schedule for an hour: 1/12 U every 5 minutes
    expected = float(np.sum(curve.on_board(120.0 - extra_doses)) / 12)
    assert history.insulin_on_board(120.0, scheduled_u_per_h=1.0) == pytest.approx(expected)
    assert history.insulin_on_board(120.0, scheduled_u_per_h=2.0) == pytest.approx(
        -float(np.sum(curve.on_board(120.0 - np.arange(60.0, 120.0, 5.0))) / 12)
    )


# -- Clarke error grid -----------------------------------------------------------------------------


def test_clarke_zones_of_hand_picked_points():
    pairs = {
        "A": [(100, 110), (60, 50), (250, 210)],
        "B": [(100, 130), (250, 190)],
        "C": [(100, 215), (150, 25)],
        "D": [(300, 150), (50, 100), (65, 90)],
        "E": [(200, 60), (60, 200)],
    }
    for zone, points in pairs.items():
        reference, predicted = zip(*points)
        assert clarke_zones(reference, predicted).tolist() == [zone] * len(points), zone
    assert clarke_ab_share([100, 100, 300, 200], [110, 130, 150, 60]) == 0.5


def test_clarke_rejects_mismatched_arrays():
    with pytest.raises(ValueError, match="reference and predicted"):
        clarke_zones([100, 120], [100])


# -- forecasters -----------------------------------------------------------------------------------


def test_persistence_and_linear_trend_on_a_straight_line():
    series = series_of(lambda t: 80 + 0.4 * t)
    now = np.array([600.0, 605.0, 900.0])
    assert Persistence().predict(series, now, 30) == pytest.approx(80 + 0.4 * now)
    assert LinearTrend().predict(series, now, 60) == pytest.approx(80 + 0.4 * (now + 60))


def test_arx_recovers_a_linear_system():
    """A sinusoid obeys g[k+1] = 2 cos(w) g[k] - g[k-1] + c, so its future is linear in two past samples."""
    series = series_of(lambda t: 140 + 50 * np.sin(2 * np.pi * t / 240))
    window = DaysWindow(series, 0.0, DAY / 2)
    model = RidgeARX(alpha=1e-8).fit([window])
    held_out = DaysWindow(series, DAY / 2, DAY)
    for horizon in (30, 60):
        now = held_out.origins(horizon)
        assert model.predict(series, now, horizon) == pytest.approx(held_out.targets(horizon), abs=0.05)


def test_per_patient_arx_moves_from_the_population_model_as_far_as_its_alpha_lets_it():
    """Four waves of different periods are more than one set of 30-minute lags can follow; one wave is not."""
    cohort = [
        series_of(lambda t, p=period: 140 + 50 * np.sin(2 * np.pi * t / p), name=name)
        for name, period in (("adult#001", 240), ("adult#002", 130), ("child#001", 90), ("child#002", 60))
    ]
    training = [DaysWindow(series, 0.0, DAY / 2) for series in cohort]
    held_out = DaysWindow(cohort[0], DAY / 2, DAY)
    now, truth = held_out.origins(30), held_out.targets(30)
    population = RidgeARX(alpha=1e-8, patient_alpha=1e-8).fit(training)
    assert np.abs(population.predict(cohort[0], now, 30) - truth).max() > 1.0
    assert population.personalised(training[0]).predict(cohort[0], now, 30) == pytest.approx(truth, abs=0.05)
    held = RidgeARX(alpha=1e-8, patient_alpha=1e15).fit(training).personalised(training[0])
    # a very stiff patient ridge keeps the population's coefficients and learns only the patient's mean offset
    assert np.ptp(held.predict(cohort[0], now, 30) - population.predict(cohort[0], now, 30)) < 1e-3


def test_arx_effect_features_are_the_histories_insulin_and_carb_action():
    series = series_of(lambda t: 120.0, doses=[(300.0, 4.0, 50.0), (700.0, 2.0, 20.0)])
    chart, history, now = series.prescription, series.history, 720.0
    features = arx_features(series, [now], 30)[0]
    factor, carb_factor = chart.chart_correction_factor, chart.chart_correction_factor / chart.chart_carb_ratio
    assert features[0] == 120.0 and not features[1 : 1 + LAG_STEPS].any()
    assert features[1 + LAG_STEPS :].tolist() == pytest.approx(
        [
            factor * history.insulin_on_board(now, chart.basal_u_per_h),
            carb_factor * history.carbs_on_board(now),
            factor * history.insulin_acting(now, now - 30, now, chart.basal_u_per_h),
            carb_factor * history.carbs_absorbed(now, now - 30, now),
            factor * history.insulin_acting(now, now, now + 30, chart.basal_u_per_h),
            carb_factor * history.carbs_absorbed(now, now, now + 30),
        ]
    )


def test_forecast_metrics_on_known_errors():
    metrics = forecast_metrics([100, 200, 50], [103, 196, 50])
    assert metrics["rmse"] == pytest.approx(np.sqrt(25 / 3))
    assert metrics["mae"] == pytest.approx(7 / 3)
    assert metrics["clarke_ab"] == 1.0 and metrics["n"] == 3


# -- bad input -------------------------------------------------------------------------------------


def test_bad_inputs_name_the_field():
    series = series_of(lambda t: 120.0)
    with pytest.raises(ValueError, match="horizon_minutes"):
        Persistence().predict(series, [600.0], 45)
    with pytest.raises(ValueError, match="now_minutes"):
        Persistence().predict(series, [602.0], 30)
    with pytest.raises(ValueError, match="now_minutes"):
        Persistence().predict(series, [10.0], 30)
    with pytest.raises(ValueError, match="lookback_minutes"):
        LinearTrend(lookback_minutes=60).predict(series, [600.0], 30)
    with pytest.raises(ValueError, match="windows"):
        RidgeARX().fit([])
    gappy = GlucoseHistory()
    for minute in (0.0, 5.0, 15.0):
        gappy.add_cgm(minute, 100.0)
    with pytest.raises(ValueError, match="history"):
        PatientSeries.from_history("adult#001", gappy, prescription("adult#001"))


# -- the simulated patient -------------------------------------------------------------------------


def test_a_simulated_day_records_cgm_meals_boluses_and_basal():
    history = live_days("adolescent#003", days=1, seed=5)
    chart = prescription("adolescent#003")
    assert np.array_equal(history.cgm_minutes, np.arange(0.0, DAY + 1, 5.0))
    assert ((history.cgm_values >= 39) & (history.cgm_values <= 400)).all()
    assert len(history.carb_minutes) >= 2 and (history.carb_grams > 0).all()
    # the basal-bolus therapy boluses in the 5 minutes after each meal it sees
    assert set(history.bolus_minutes) == set(history.carb_minutes + 5.0)
    assert history.basal_rates.tolist() == pytest.approx([chart.basal_u_per_h], rel=0.05)
    again = live_days("adolescent#003", days=1, seed=5)
    assert np.array_equal(again.cgm_values, history.cgm_values)
