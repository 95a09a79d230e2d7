"""Clinical-word explanations: contributions summed per vital sign, its value now and its change over the window."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.models.explanations import contributions_by_input, describe, reasons


def test_contributions_are_summed_per_input_and_shared_by_features_of_several():
    totals = contributions_by_input(
        ["Resp_last", "Resp_mean_6h", "shock_index", "SBP_last"], np.array([0.2, 0.1, 0.4, -0.05])
    )
    assert totals == pytest.approx({"Resp": 0.3, "HR": 0.2, "SBP": 0.15})


@pytest.mark.parametrize(
    ("column", "value", "earlier", "hours", "text"),
    [
        ("Resp", 30.0, 18.0, 6, "respiration 30/min, up from 18 over 6 h"),
        ("O2Sat", 90.0, 97.0, 6, "SpO2 90 %, down from 97 over 6 h"),
        ("SBP", 74.0, 74.2, 6, "systolic BP 74 mmHg"),
        ("Temp", 38.94, 36.8, 3, "temperature 38.9 °C, up from 36.8 over 3 h"),
        ("HR", 80.0, None, 0, "heart rate 80/min"),
        ("Resp", None, None, 6, "respiration not measured"),
        ("Age", 64.0, 64.0, 6, "age 64 years"),
        ("Gender", 0.0, 0.0, 6, "female"),
        ("Lactate", 4.0, 2.0, 6, "Lactate 4"),
    ],
)
def test_each_input_is_described_with_its_value_and_change(column, value, earlier, hours, text):
    assert describe(column, value, earlier, hours) == text


def test_reasons_rank_inputs_by_the_size_of_their_contribution():
    ranked = reasons({"Resp": 0.3, "SBP": -0.5, "HR": 0.1}, {"Resp": 30.0, "SBP": 120.0, "HR": 80.0}, {}, 6, top=2)
    assert [(r.input, r.text, r.contribution) for r in ranked] == [
        ("SBP", "systolic BP 120 mmHg", -0.5),
        ("Resp", "respiration 30/min", 0.3),
    ]
