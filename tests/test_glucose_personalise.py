"""Personalisation: the Bayesian estimate recovers known ISF, carb ratio and basal need from synthetic data, its
uncertainty shrinks with data, and no setting moves more than the daily step."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.glucose.history import GlucoseHistory
from vigil.glucose.personalise import Personaliser, bounded_step, estimate_profile, observation_windows
from vigil.glucose.therapy import TherapyProfile

TRUE_ISF, TRUE_CR, TRUE_BASAL, PROGRAMMED_BASAL = 60.0, 12.0, 1.3, 1.0
PRIOR = TherapyProfile(isf=45.0, carb_ratio=9.0, basal_u_per_h=1.0, isf_sd=16.0, carb_ratio_sd=3.0, basal_sd=0.35)
STEP = 5.0


def synthetic_history(days: int, seed: int = 3) -> GlucoseHistory:
    """Glucose moved by exactly the model the estimator assumes, with the true settings, and sensor noise."""
    rng = np.random.default_rng(seed)
    history, glucose = GlucoseHistory(), 140.0
    history.set_basal(0.0, PROGRAMMED_BASAL)
    for minute in np.arange(0.0, days * 1440.0, STEP):
        if rng.random() < 4 / 288:  # about four meals a day, bolused with a mismatched ratio
            grams = rng.uniform(20, 80)
            history.add_carbs(minute, grams)
            history.add_bolus(minute, grams / (TRUE_CR * rng.uniform(0.7, 1.4)))
        if rng.random() < 2 / 288:
            history.add_bolus(minute, rng.uniform(0.3, 1.5))
        if rng.random() < 6 / 288:
            history.set_basal(minute, rng.choice([0.0, 0.5, 1.0, 2.0]))
        acting = history.insulin_acting(minute, minute - STEP, minute, PROGRAMMED_BASAL)
        absorbed = history.carbs_absorbed(minute, minute - STEP, minute)
        drift = TRUE_ISF * (TRUE_BASAL - PROGRAMMED_BASAL) * STEP / 60
        glucose += TRUE_ISF * (absorbed / TRUE_CR - acting) + drift
        history.add_cgm(minute, glucose + rng.normal(0, 3))
    return history


@pytest.fixture(scope="module")
def three_days() -> GlucoseHistory:
    return synthetic_history(3)


def test_recovers_known_settings(three_days):
    windows = observation_windows(three_days, 0.0, 3 * 1440.0, PROGRAMMED_BASAL)
    estimate = estimate_profile(windows, PRIOR, PROGRAMMED_BASAL)
    assert estimate.isf == pytest.approx(TRUE_ISF, rel=0.10)
    assert estimate.carb_ratio == pytest.approx(TRUE_CR, rel=0.10)
    assert estimate.basal_u_per_h == pytest.approx(TRUE_BASAL, abs=0.1)


def test_uncertainty_shrinks_as_data_accumulate(three_days):
    short = estimate_profile(observation_windows(three_days, 0.0, 720.0, PROGRAMMED_BASAL), PRIOR, PROGRAMMED_BASAL)
    long = estimate_profile(observation_windows(three_days, 0.0, 3 * 1440.0, PROGRAMMED_BASAL), PRIOR, PROGRAMMED_BASAL)
    assert long.isf_sd < short.isf_sd < PRIOR.isf_sd
    assert long.carb_ratio_sd < short.carb_ratio_sd
    assert long.basal_sd < short.basal_sd


def test_without_data_the_estimate_is_the_prior():
    empty = observation_windows(GlucoseHistory(), 0.0, 1440.0, PROGRAMMED_BASAL)
    estimate = estimate_profile(empty, PRIOR, PROGRAMMED_BASAL)
    assert estimate.isf == pytest.approx(PRIOR.isf) and estimate.carb_ratio == pytest.approx(PRIOR.carb_ratio)


def test_daily_update_moves_at_most_ten_percent_towards_the_truth(three_days):
    personaliser = Personaliser(PRIOR)
    days = [personaliser.update(three_days, day * 1440.0) for day in (1, 2, 3)]
    previous = PRIOR
    for profile in days:
        for name in ("isf", "carb_ratio", "basal_u_per_h"):
            old, new = getattr(previous, name), getattr(profile, name)
            assert abs(new - old) <= 0.10 * old + 1e-9
        previous = profile
    assert PRIOR.isf < days[-1].isf <= TRUE_ISF and PRIOR.carb_ratio < days[-1].carb_ratio <= TRUE_CR


def test_bounded_step_clips_both_ways():
    proposed = PRIOR.with_values(isf=100.0, carb_ratio=1.0, basal_u_per_h=1.05)
    stepped = bounded_step(PRIOR, proposed, 0.10)
    assert stepped.isf == pytest.approx(49.5) and stepped.carb_ratio == pytest.approx(8.1)
    assert stepped.basal_u_per_h == pytest.approx(1.05)
