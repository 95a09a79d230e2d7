"""The Challenge utility on hand-computed stays, and the vectorised score against an hour-by-hour reading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.datasets.physionet import load_stays
from vigil.models.utility import normalize, normalized_utility, stay_utility, utility_parts

FIXTURE = Path(__file__).parent / "fixtures" / "physionet2019"

# A 24-hour septic stay labelled from hour 10, so t_sepsis = 16 and hours 4..19 are 12 h before to 3 h after.
LABELS = np.r_[np.zeros(10), np.ones(14)]
MISSED = -2 / 9 * sum(range(1, 10))  # no alarm: hours 11..19 cost 2/9, 4/9, ..., 2
OPTIMAL = sum(range(7)) / 6 + sum(range(9)) / 9  # alarm on hours 4..19: 0, 1/6, ..., 1, then 8/9, ..., 0


def alarm_from(hour: int, length: int = 24) -> np.ndarray:
    return (np.arange(length) >= hour).astype(int)


def test_hand_computed_totals() -> None:
    assert MISSED == pytest.approx(-10)
    assert OPTIMAL == pytest.approx(7.5)


@pytest.mark.parametrize(
    ("predictions", "expected"),
    [
        (alarm_from(10), 1 + sum(range(9)) / 9),  # perfect alarm, 6 h before onset: 1, 8/9, ..., 0
        (alarm_from(0), OPTIMAL - 4 * 0.05),  # too early: hours 0..3 are false alarms
        (alarm_from(17), -2 / 9 * sum(range(1, 7)) + (2 + 1 + 0) / 9),  # too late: misses 11..16
        (np.zeros(24, dtype=int), MISSED),  # a miss
        (alarm_from(4) * (np.arange(24) <= 19), OPTIMAL),  # the official best predictions
        (alarm_from(4), OPTIMAL),  # alarms after onset + 3 h count for nothing
    ],
    ids=["perfect", "too-early", "too-late", "miss", "optimal", "optimal-held"],
)
def test_septic_stay(predictions: np.ndarray, expected: float) -> None:
    assert stay_utility(LABELS, predictions) == pytest.approx(expected)


def test_false_alarms_in_a_stay_without_sepsis() -> None:
    predictions = np.zeros(10, dtype=int)
    predictions[[2, 3, 7]] = 1
    assert stay_utility(np.zeros(10), predictions) == pytest.approx(-0.15)
    assert stay_utility(np.zeros(10), np.zeros(10)) == 0


def test_stay_shorter_than_the_window() -> None:
    labels = np.ones(3)  # labelled from hour 0: onset at hour 6, the stay ends 4 h before it
    assert stay_utility(labels, np.zeros(3)) == pytest.approx(-6 / 9)  # 0, -2/9, -4/9
    assert stay_utility(labels, np.ones(3)) == pytest.approx(24 / 9)  # 1, 8/9, 7/9
    assert normalized_utility([(labels, [0, 1, 1])]) == pytest.approx((15 / 9 + 6 / 9) / (24 / 9 + 6 / 9))


def test_normalised_utility_of_never_alarming_is_0_and_of_the_optimum_is_1() -> None:
    stays = load_stays(FIXTURE)
    labelled = [group["SepsisLabel"].to_numpy() for _, group in stays.groupby("stay_id")]
    assert normalized_utility((labels, np.zeros_like(labels)) for labels in labelled) == 0
    optimum = [(labels, official_best_predictions(labels)) for labels in labelled]
    assert normalized_utility(optimum) == pytest.approx(1)
    everything = normalized_utility((labels, np.ones_like(labels)) for labels in labelled)
    assert everything == pytest.approx(expected_normalised((labels, np.ones_like(labels)) for labels in labelled))


def test_normalised_utility_sums_before_dividing() -> None:
    septic, healthy = (LABELS, alarm_from(10)), (np.zeros(30), np.ones(30))
    observed = stay_utility(*septic) + stay_utility(*healthy)
    assert normalized_utility([septic, healthy]) == pytest.approx((observed - MISSED) / (OPTIMAL - MISSED))


def test_utility_parts_of_rows_grouped_by_stay() -> None:
    septic, healthy = (LABELS, alarm_from(10)), (np.zeros(30), np.ones(30))
    labels, predictions = np.r_[septic[0], healthy[0]], np.r_[septic[1], healthy[1]]
    stays = np.array(["p2"] * 24 + ["p1"] * 30, dtype=object)
    observed, optimal, inaction = utility_parts(labels, predictions, stays)
    assert observed == pytest.approx([stay_utility(*septic), stay_utility(*healthy)])
    assert optimal == pytest.approx([OPTIMAL, 0])
    assert inaction == pytest.approx([MISSED, 0])
    assert normalize(observed, optimal, inaction) == pytest.approx(normalized_utility([septic, healthy]))
    with pytest.raises(ValueError, match="contiguous"):
        utility_parts(labels, predictions, np.r_[stays[:10], stays[-5:], stays[10:-5]])
    with pytest.raises(ValueError, match="must be as many"):
        utility_parts(labels, predictions[1:], stays)


def test_invalid_input() -> None:
    with pytest.raises(ValueError, match="stay 1: 3 labels but 2 predictions"):
        normalized_utility([(LABELS, alarm_from(0)), ([0, 0, 1], [0, 1])])
    with pytest.raises(ValueError, match="stay 0: predictions must be 0 or 1"):
        stay_utility([0, 1], [0.3, 0.9])
    with pytest.raises(ValueError, match="stay 0: labels must be 0 or 1"):
        stay_utility([0, np.nan], [0, 1])
    with pytest.raises(ValueError, match="at least one stay with sepsis"):
        normalized_utility([(np.zeros(5), np.ones(5))])
    with pytest.raises(ValueError, match="at least one stay with sepsis"):
        normalized_utility([])
    with pytest.raises(ValueError, match="stay 2: labels must be 0 or 1"):
        normalized_utility([([1], [1]), ([], []), ([0, 2], [0, 0])])


def test_an_empty_stay_scores_nothing() -> None:
    assert stay_utility([], []) == 0
    assert normalized_utility([([], []), (LABELS, alarm_from(10))]) == normalized_utility([(LABELS, alarm_from(10))])


stays_strategy = st.lists(
    st.integers(1, 60).flatmap(
        lambda length: st.tuples(
            st.one_of(st.none(), st.integers(0, length - 1)),
            st.lists(st.integers(0, 1), min_size=length, max_size=length),
        )
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=80, deadline=None)
@given(stays_strategy)
def test_vectorised_score_matches_an_hour_by_hour_reading(stays: list[tuple[int | None, list[int]]]) -> None:
    per_stay = [
        (labels_from(first_positive, len(predictions)), np.array(predictions)) for first_positive, predictions in stays
    ]
    for labels, predictions in per_stay:
        assert stay_utility(labels, predictions) == pytest.approx(hourly_reading(labels, predictions))
    if any(labels.any() for labels, _ in per_stay):
        assert normalized_utility(per_stay) == pytest.approx(expected_normalised(per_stay))


def labels_from(first_positive: int | None, length: int) -> np.ndarray:
    hours = np.arange(length)
    return np.zeros(length, dtype=int) if first_positive is None else (hours >= first_positive).astype(int)


def hourly_reading(labels: np.ndarray, predictions: np.ndarray) -> float:
    """The paper's utility read hour by hour, written independently of the module."""
    if not labels.any():
        return -0.05 * predictions.sum()
    onset = int(np.argmax(labels)) + 6
    total = 0.0
    for hour, alarm in enumerate(predictions):
        dt = hour - onset
        if dt > 3:
            continue
        if alarm:
            total += max((dt + 12) / 6, -0.05) if dt <= -6 else (3 - dt) / 9
        elif dt > -6:
            total += -2 * (dt + 6) / 9
    return total


def official_best_predictions(labels: np.ndarray) -> np.ndarray:
    """As the official scorer builds them: 1 from t_sepsis - 12 to t_sepsis + 3 inclusive."""
    best = np.zeros(len(labels), dtype=int)
    if labels.any():
        onset = int(np.argmax(labels)) + 6
        best[max(0, onset - 12) : min(onset + 3 + 1, len(labels))] = 1
    return best


def expected_normalised(per_stay) -> float:
    pairs = list(per_stay)
    observed = sum(hourly_reading(labels, predictions) for labels, predictions in pairs)
    best = sum(hourly_reading(labels, official_best_predictions(labels)) for labels, _ in pairs)
    inaction = sum(hourly_reading(labels, np.zeros_like(labels)) for labels, _ in pairs)
    return (observed - inaction) / (best - inaction)
