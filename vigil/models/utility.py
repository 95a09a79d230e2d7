"""The PhysioNet/CinC 2019 Challenge's normalised utility score of hourly sepsis predictions.

From Reyna et al., Crit Care Med 48(2):210-217 (2020), with the official scorer's parameters and its
piecewise-linear rewards (``compute_prediction_utility`` in evaluate_sepsis_score.py). A septic stay's
onset is t_sepsis = first hour with SepsisLabel = 1, minus DT_OPTIMAL (labels are shifted six hours early).
Around it, a positive prediction earns 0 at t_sepsis - 12 rising to 1 at t_sepsis - 6, falling to 0 at
t_sepsis + 3, and -0.05 before t_sepsis - 12; a negative one costs nothing until t_sepsis - 6 and then
down to -2 at t_sepsis + 3; after t_sepsis + 3 nothing counts. In a stay without sepsis each positive
prediction costs -0.05. All stays are scored at once on concatenated arrays (no loop over hours).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import ArrayLike, NDArray

DT_EARLY = -12
DT_OPTIMAL = -6
DT_LATE = 3
MAX_U_TP = 1.0
MIN_U_FN = -2.0
U_FP = -0.05
U_TN = 0.0

EARLY_SLOPE = MAX_U_TP / (DT_OPTIMAL - DT_EARLY)
LATE_SLOPE = -MAX_U_TP / (DT_LATE - DT_OPTIMAL)
MISS_SLOPE = MIN_U_FN / (DT_LATE - DT_OPTIMAL)

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]


def stay_utility(labels: ArrayLike, predictions: ArrayLike) -> float:
    """One stay's (unnormalised) utility, as the official ``compute_prediction_utility`` sums it."""
    observed, _, _ = _parts(*_concatenate([(labels, predictions)]))
    return float(observed.sum())


def normalized_utility(per_stay: Iterable[tuple[ArrayLike, ArrayLike]]) -> float:
    """(observed - inaction) / (optimal - inaction), each summed over the stays of ``(labels, predictions)`` pairs.

    Optimal is the official scorer's best prediction (positive from t_sepsis - 12 to t_sepsis + 3; later
    hours score 0 either way) and inaction predicts no sepsis anywhere. 1 is perfect, 0 never alarms.
    Raises ValueError without a septic stay, where the score is undefined (0 / 0).
    """
    return normalize(*_parts(*_concatenate(per_stay)))


def utility_parts(
    labels: ArrayLike, predictions: ArrayLike, stays: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per stay, in order of appearance: the observed, optimal and inaction utility of rows grouped by stay.

    ``labels``, ``predictions`` and ``stays`` (a stay id per row) are aligned; each stay's rows must be
    contiguous and in hour order. ``normalize`` turns the parts (or a bootstrap sample of them) into the score.
    """
    label_array, prediction_array, stay_array = np.ravel(labels), np.ravel(predictions), np.ravel(stays)
    if not len(label_array) == len(prediction_array) == len(stay_array):
        raise ValueError(
            f"{len(label_array)} labels, {len(prediction_array)} predictions and {len(stay_array)} stays"
            " must be as many"
        )
    new_stay = np.ones(len(stay_array), dtype=bool)
    new_stay[1:] = stay_array[1:] != stay_array[:-1]
    starts = np.flatnonzero(new_stay)
    if len(starts) != len(np.unique(stay_array)):
        raise ValueError("each stay's rows must be contiguous")
    return _parts(_binary(label_array, "labels", starts), _binary(prediction_array, "predictions", starts), starts)


def normalize(observed: FloatArray, optimal: FloatArray, inaction: FloatArray) -> float:
    """The normalised utility from per-stay parts: (observed - inaction) / (optimal - inaction), summed."""
    best, baseline = float(np.sum(optimal)), float(np.sum(inaction))
    if best == baseline:
        raise ValueError("the normalised utility needs at least one stay with sepsis")
    return (float(np.sum(observed)) - baseline) / (best - baseline)


def _parts(labels: BoolArray, predictions: BoolArray, starts: IntArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Observed, optimal and inaction utility of each stay; stay i's rows begin at ``starts[i]`` (none empty)."""
    if len(starts) == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    from_onset = _hours_from_onset(labels, starts)
    optimal = (from_onset >= DT_EARLY) & (from_onset <= DT_LATE)  # False where NaN: no sepsis
    observed, best, inaction = (
        np.add.reduceat(_utilities(from_onset, alarms), starts)
        for alarms in (predictions, optimal, np.zeros_like(predictions))
    )
    return observed, best, inaction


def _concatenate(per_stay: Iterable[tuple[ArrayLike, ArrayLike]]) -> tuple[BoolArray, BoolArray, IntArray]:
    """All stays' labels and predictions end to end, checked, and where each non-empty stay starts."""
    pairs = [(np.ravel(labels), np.ravel(predictions)) for labels, predictions in per_stay]
    for stay, (labels, predictions) in enumerate(pairs):
        if len(labels) != len(predictions):
            raise ValueError(f"stay {stay}: {len(labels)} labels but {len(predictions)} predictions")
    if not pairs:
        return np.zeros(0, bool), np.zeros(0, bool), np.zeros(0, np.int64)
    lengths = np.array([len(labels) for labels, _ in pairs])
    starts = np.cumsum(lengths) - lengths
    labels = _binary(np.concatenate([labels for labels, _ in pairs]), "labels", starts)
    predictions = _binary(np.concatenate([predictions for _, predictions in pairs]), "predictions", starts)
    return labels, predictions, starts[lengths > 0]


def _utilities(from_onset: FloatArray, alarms: BoolArray) -> FloatArray:
    """Each hour's utility given its time from onset (NaN in a stay without sepsis) and its prediction."""
    dt = from_onset
    early = np.maximum(EARLY_SLOPE * (dt - DT_EARLY), U_FP)
    late = LATE_SLOPE * (dt - DT_LATE)
    missed = MISS_SLOPE * (dt - DT_OPTIMAL)
    if_positive = np.where(dt <= DT_OPTIMAL, early, np.where(dt <= DT_LATE, late, 0.0))
    if_negative = np.where(dt <= DT_OPTIMAL, 0.0, np.where(dt <= DT_LATE, missed, 0.0))
    septic = np.where(alarms, if_positive, if_negative)
    return np.where(np.isnan(dt), np.where(alarms, U_FP, U_TN), septic)


def _hours_from_onset(labels: BoolArray, starts: IntArray) -> FloatArray:
    """t - t_sepsis for each hour t of each stay, t_sepsis = its first positive hour - DT_OPTIMAL; NaN without sepsis."""
    lengths = np.diff(np.append(starts, len(labels)))
    hour = np.arange(len(labels)) - np.repeat(starts, lengths)
    first_positive = np.minimum.reduceat(np.where(labels, hour, np.inf), starts)
    onset = np.where(np.isinf(first_positive), np.nan, first_positive - DT_OPTIMAL)
    return hour - np.repeat(onset, lengths)


def _binary(values: ArrayLike, what: str, starts: IntArray) -> BoolArray:
    array = np.asarray(values)
    bad = np.flatnonzero(~np.isin(array, (0, 1)))
    if len(bad):
        stay = int(np.searchsorted(starts, bad[0], side="right")) - 1
        raise ValueError(f"stay {stay}: {what} must be 0 or 1")
    return array.astype(bool)
