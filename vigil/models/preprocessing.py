"""Preprocessing shared by the sepsis-risk models: normal scores of the features, and patient-level hold-outs."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import QuantileTransformer

Matrix = NDArray[np.float32]


def normal_scores(seed: int) -> Pipeline:
    """Missing values -> the training median, then each feature -> the normal score of its training quantile."""
    return make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        QuantileTransformer(output_distribution="normal", subsample=20_000, random_state=seed),
    )


def stays_held_out(stays: NDArray, count: int, seed: int) -> NDArray[np.bool_]:
    """Row mask of ``count`` (at least one) stays drawn at random: a patient-level hold-out."""
    chosen = np.random.default_rng(seed).choice(np.unique(stays), size=max(1, count), replace=False)
    return np.isin(stays, chosen)


def stay_holdout(stays: NDArray, fraction: float, seed: int) -> NDArray[np.bool_]:
    """The models' own early-stopping hold-out: ``fraction`` of the stays, rounded down."""
    return stays_held_out(stays, int(fraction * len(np.unique(stays))), seed)
