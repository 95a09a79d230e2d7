"""The GRU glucose forecaster: learns a predictable signal, is deterministic, and fine-tunes without harm."""

import numpy as np
import pytest

pytest.importorskip("torch")

from tests.test_glucose_forecast import DAY, series_of
from vigil.glucose.forecast import DaysWindow, Persistence
from vigil.glucose.recurrent import GruForecaster


def wave(period: float, phase: float = 0.0):
    return lambda t: 140 + 60 * np.sin(2 * np.pi * t / period + phase)


def test_gru_beats_persistence_on_a_wave_and_is_deterministic():
    cohort = [
        series_of(wave(240, phase), days=1.0, name=name) for name, phase in (("adult#001", 0.0), ("child#002", 1.0))
    ]
    training = [DaysWindow(series, 0.0, 0.75 * DAY) for series in cohort]
    held_out = DaysWindow(cohort[0], 0.75 * DAY, DAY)
    now, truth = held_out.origins(30), held_out.targets(30)

    def rmse(model):
        return float(np.sqrt(np.mean((model.predict(cohort[0], now, 30) - truth) ** 2)))

    first = GruForecaster(hidden_size=8, epochs=15, batch_size=32).fit(training)
    second = GruForecaster(hidden_size=8, epochs=15, batch_size=32).fit(training)
    assert np.array_equal(first.predict(cohort[0], now, 30), second.predict(cohort[0], now, 30))
    assert rmse(first) < 0.5 * rmse(Persistence())
    tuned = first.personalised(training[0])
    assert tuned.network is not first.network
    assert rmse(tuned) < 0.5 * rmse(Persistence())


def test_unfitted_gru_says_so():
    with pytest.raises(RuntimeError, match="fit first"):
        GruForecaster().personalised(None)
    with pytest.raises(ValueError, match="windows"):
        GruForecaster().fit([])
