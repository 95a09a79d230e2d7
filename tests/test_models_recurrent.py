"""The GRU risk model on synthetic stays: causal scores in input order, a learnable signal, clear input errors."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.metrics import roc_auc_score

from vigil.models.recurrent import GruRisk
from vigil.models.zoo import make_model

FEATURES = 6
THRESHOLD = 0.0
RUN_HOURS = 3
SMALL = {"hidden_size": 8, "threads": 1}
"""Tiny networks on one thread: quicker than two threads at this size, and robust to a busy machine."""


def synthetic_stays(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stays of 12-40 hours; label 1 once feature 0 has been above THRESHOLD for RUN_HOURS hours in a row.

    The other features are noise with 20 % missing values, so imputation is exercised too.
    """
    rng = np.random.default_rng(seed)
    lengths = rng.integers(12, 41, size=count)
    X = rng.normal(size=(lengths.sum(), FEATURES)).astype(np.float32)
    X[:, 1:][rng.random((len(X), FEATURES - 1)) < 0.2] = np.nan
    stays = np.repeat([f"s{seed}-{index}" for index in range(count)], lengths)
    above = X[:, 0] > THRESHOLD
    y = np.zeros(len(X), dtype=np.int8)
    start = 0
    for length in lengths:
        run = 0
        for row in range(start, start + length):
            run = run + 1 if above[row] else 0
            y[row] = run >= RUN_HOURS
        start += length
    return X, y, stays


@pytest.fixture(scope="module")
def trained() -> GruRisk:
    X, y, stays = synthetic_stays(400, seed=1)
    return GruRisk(
        seed=0, hidden_size=16, dropout=0.0, learning_rate=3e-3, stays_per_batch=8, max_epochs=6, threads=1
    ).fit(X, y, stays)


@pytest.fixture(scope="module")
def held_out() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return synthetic_stays(100, seed=2)


def test_learns_a_run_of_high_values(trained: GruRisk, held_out) -> None:
    X, y, stays = held_out
    assert roc_auc_score(y, X[:, 0]) < 0.85, "the current hour alone must not suffice: the signal needs memory"
    assert roc_auc_score(y, trained.score(X, stays)) > 0.9


def test_scores_are_probabilities_in_input_order(trained: GruRisk, held_out) -> None:
    X, _, stays = held_out
    scores = trained.score(X, stays)
    assert scores.dtype == np.float64 and scores.shape == (len(X),)
    assert ((scores >= 0) & (scores <= 1)).all()
    for stay in np.unique(stays)[:10]:
        rows = stays == stay
        np.testing.assert_allclose(trained.score(X[rows], stays[rows]), scores[rows], rtol=1e-5, atol=1e-6)


def test_stay_order_in_the_input_does_not_matter(trained: GruRisk, held_out) -> None:
    X, _, stays = held_out
    names, first_rows = np.unique(stays, return_index=True)
    reversed_rows = np.concatenate([np.flatnonzero(stays == name) for name in names[np.argsort(first_rows)][::-1]])
    scores = trained.score(X, stays)
    reordered = trained.score(X[reversed_rows], stays[reversed_rows])
    np.testing.assert_allclose(reordered, scores[reversed_rows], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("hour", [0, 5, 10])
def test_a_later_hour_never_changes_earlier_scores(trained: GruRisk, held_out, hour: int) -> None:
    X, _, stays = held_out
    rows = np.flatnonzero(stays == stays[0])
    before = trained.score(X, stays)
    changed = X.copy()
    changed[rows[hour + 1]] = [5.0, np.nan, -5.0, 5.0, np.nan, 5.0]
    after = trained.score(changed, stays)
    np.testing.assert_array_equal(after[rows[: hour + 1]], before[rows[: hour + 1]])
    assert after[rows[hour + 1]] != before[rows[hour + 1]]
    np.testing.assert_array_equal(np.delete(after, rows), np.delete(before, rows))


def test_a_stay_scored_hour_by_hour_matches_the_whole_stay(trained: GruRisk, held_out) -> None:
    X, _, stays = held_out
    rows = np.flatnonzero(stays == stays[0])
    whole = trained.score(X[rows], stays[rows])
    so_far = [trained.score(X[rows[: hour + 1]], stays[rows[: hour + 1]])[-1] for hour in range(len(rows))]
    np.testing.assert_allclose(so_far, whole, rtol=1e-5, atol=1e-6)


def test_loss_curve_has_one_value_per_epoch() -> None:
    X, y, stays = synthetic_stays(60, seed=3)
    model = GruRisk(seed=0, max_epochs=3, patience=3, **SMALL).fit(X, y, stays)
    curve = model.loss_curve()
    assert set(curve) == {"train_bce", "validation_bce"}
    assert len(curve["train_bce"]) == len(curve["validation_bce"]) == 3
    assert all(np.isfinite(value) and value > 0 for values in curve.values() for value in values)


def test_same_seed_same_scores_and_torch_settings_restored() -> None:
    X, y, stays = synthetic_stays(60, seed=3)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    first, second = (GruRisk(seed=7, max_epochs=1, **SMALL).fit(X, y, stays) for _ in range(2))
    np.testing.assert_array_equal(first.score(X, stays), second.score(X, stays))
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic


def test_rows_of_a_stay_must_be_contiguous() -> None:
    X, y, stays = synthetic_stays(3, seed=4)
    shuffled = np.random.default_rng(0).permutation(len(X))
    with pytest.raises(ValueError, match="contiguous"):
        GruRisk().fit(X[shuffled], y[shuffled], stays[shuffled])
    model = GruRisk(seed=0, max_epochs=1, **SMALL).fit(X, y, stays)
    with pytest.raises(ValueError, match="contiguous"):
        model.score(X[shuffled], stays[shuffled])


def test_scoring_before_fitting_is_an_error() -> None:
    X, _, stays = synthetic_stays(2, seed=5)
    with pytest.raises(RuntimeError, match="not fitted"):
        GruRisk().score(X, stays)


def test_the_zoo_makes_it_by_name() -> None:
    assert isinstance(make_model("gru", seed=3), GruRisk)
