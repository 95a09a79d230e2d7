"""Patient-level cross-validation of the risk models against the NEWS2 and qSOFA rules, with bootstrap intervals.

Inside each training split the model is cross-fitted: inner patient-level folds give an out-of-fold score for
every training hour, which fits the isotonic calibration and chooses the alarm threshold that maximises the
Challenge utility; the model itself is then fitted on all the training stays (as scikit-learn's
``CalibratedClassifierCV(ensemble=False)`` does). The recurrent net, whose fits take minutes, is instead fitted
once on two of the inner folds and calibrated on the third. The models that do not fit on every row see every
septic hour and a random share of the others. The test fold is touched only to be scored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold

from vigil import __version__
from vigil.datasets.physionet import HOUR, LABEL, STAY_ID
from vigil.models.features import FEATURE_SETS, causal_features, news2_total, qsofa_total
from vigil.models.risk import SepsisRiskModel, export_lightgbm
from vigil.models.utility import utility_parts
from vigil.models.zoo import RiskEstimator, make_model

MAX_FIT_ROWS = 80_000
"""Models that do not fit on every row (``fits_every_row`` False) see at most this many: every septic hour and a
random share of the others."""
CALIBRATION_FOLDS = 3
BOOTSTRAP_REPLICATES = 200
RULE_THRESHOLDS = {"news2": 5, "qsofa": 2}
"""The rules' own alarm thresholds: NEWS2 >= 5 (RCP urgent response), qSOFA >= 2 (Sepsis-3)."""


@dataclass(frozen=True)
class Dataset:
    """Rows ordered by stay then hour: features (of one of FEATURE_SETS), labels, stay ids, and the rule scores."""

    X: NDArray[np.float32]
    y: NDArray[np.int8]
    stays: NDArray[np.str_]
    rules: dict[str, NDArray[np.float64]]
    feature_set: str = "full"

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, feature_set: str = "full") -> Dataset:
        frame = frame.sort_values([STAY_ID, HOUR], kind="stable").reset_index(drop=True)
        return cls(
            X=causal_features(frame)[FEATURE_SETS[feature_set]].to_numpy(dtype=np.float32),
            y=frame[LABEL].fillna(0).to_numpy(dtype=np.int8),
            stays=frame[STAY_ID].to_numpy(),
            rules={"news2": news2_total(frame).to_numpy(float), "qsofa": qsofa_total(frame).to_numpy(float)},
            feature_set=feature_set,
        )

    def in_septic_stay(self) -> NDArray[np.bool_]:
        """Per row: whether its stay has a septic hour."""
        return pd.Series(self.y).groupby(self.stays).transform("max").to_numpy() == 1

    def rows(self, mask: NDArray[np.bool_]) -> Dataset:
        rules = {k: v[mask] for k, v in self.rules.items()}
        return Dataset(self.X[mask], self.y[mask], self.stays[mask], rules, self.feature_set)


@dataclass
class FittedRisk:
    """A model with its isotonic calibration and alarm threshold, all learned from training stays only."""

    estimator: RiskEstimator
    calibrator: IsotonicRegression
    threshold: float

    def probability(self, X: NDArray[np.float32], stays: NDArray) -> NDArray[np.float64]:
        return self.calibrator.predict(self.estimator.score(X, stays))


def subsample_negatives(data: Dataset, max_rows: int, seed: int) -> NDArray[np.bool_]:
    """Keep every septic hour and a random share of the others, at most ``max_rows`` rows in all."""
    positive = data.y == 1
    keep_share = min(1.0, max(max_rows - positive.sum(), 0) / max((~positive).sum(), 1))
    return positive | (np.random.default_rng(seed).random(len(data.y)) < keep_share)


def choose_threshold(probability: NDArray, data: Dataset) -> float:
    """The alarm threshold with the highest normalised utility on these (training) stays."""
    candidates = np.unique(np.quantile(probability, np.linspace(0.5, 0.995, 60)))
    scores = [normalized(data.y, probability >= t, data.stays) for t in candidates]
    return float(candidates[int(np.argmax(scores))])


def fit_calibrated(name: str, train: Dataset, seed: int, calibration_folds: int = CALIBRATION_FOLDS) -> FittedRisk:
    """Cross-fit: calibrate and choose the threshold on inner out-of-fold scores, then fit on every training stay."""
    inner = patient_folds(train, calibration_folds, seed)
    if not make_model(name, seed).cross_fitted:
        return _fit_on_held_out_calibration(name, train, inner == 0, seed)
    out_of_fold = np.empty(len(train.y))
    for fold in range(calibration_folds):
        held = inner == fold
        out_of_fold[held] = _fitted_estimator(name, train.rows(~held), seed + fold).score(
            train.X[held], train.stays[held]
        )
    calibrator = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(out_of_fold, train.y)
    threshold = choose_threshold(calibrator.predict(out_of_fold), train)
    return FittedRisk(_fitted_estimator(name, train, seed), calibrator, threshold)


def train_shipped_model(stays: pd.DataFrame, source: str, seed: int, feature_set: str = "full") -> SepsisRiskModel:
    """The calibrated LightGBM fitted on every stay (what `vigil risk train` writes), recording what it learnt from."""
    dataset = Dataset.from_frame(stays, feature_set)
    fitted = fit_calibrated("lightgbm", dataset, seed)
    metadata = {
        "trained_on": source,
        "stays": len(set(dataset.stays)),
        "hours": len(dataset.y),
        "seed": seed,
        "date": date.today().isoformat(),
        "vigil": __version__,
    }
    return export_lightgbm(fitted, metadata, feature_set)


def _fit_on_held_out_calibration(name: str, train: Dataset, held: NDArray[np.bool_], seed: int) -> FittedRisk:
    """Fit once on the stays outside ``held``; calibrate and choose the threshold on ``held``."""
    estimator = _fitted_estimator(name, train.rows(~held), seed)
    calibration = train.rows(held)
    score = estimator.score(calibration.X, calibration.stays)
    calibrator = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(score, calibration.y)
    return FittedRisk(estimator, calibrator, choose_threshold(calibrator.predict(score), calibration))


def _fitted_estimator(name: str, fit: Dataset, seed: int) -> RiskEstimator:
    estimator = make_model(name, seed)
    if not estimator.fits_every_row:
        fit = fit.rows(subsample_negatives(fit, MAX_FIT_ROWS, seed))
    return estimator.fit(fit.X, fit.y, fit.stays)


def patient_folds(data: Dataset, k: int, seed: int) -> NDArray[np.int64]:
    """Fold number of each row: stays never straddle folds; septic stays spread evenly."""
    folds = np.empty(len(data.y), dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, test) in enumerate(splitter.split(data.X[:, :1], data.in_septic_stay(), groups=data.stays)):
        folds[test] = fold
    return folds


def normalized(y: NDArray, predictions: NDArray, stays: NDArray) -> float:
    observed, best, inaction = utility_parts(y, predictions, stays)
    return float((observed.sum() - inaction.sum()) / (best.sum() - inaction.sum()))


# -- metrics -----------------------------------------------------------------------------------
@dataclass
class Predictions:
    """Out-of-fold predictions of one model (or rule) for every row."""

    name: str
    probability: NDArray[np.float64]
    alarm: NDArray[np.bool_]
    thresholds: list[float] = field(default_factory=list)
    loss_curves: list[dict[str, list[float]]] = field(default_factory=list)


def threshold_metrics(y: NDArray, probability: NDArray, alarm: NDArray) -> dict[str, float]:
    """The metrics of hourly alarms that need no stays: discrimination and the confusion matrix."""
    tp = int(np.sum(alarm & (y == 1)))
    fp = int(np.sum(alarm & (y == 0)))
    fn = int(np.sum(~alarm & (y == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "auroc": float(roc_auc_score(y, probability)),
        "auprc": float(average_precision_score(y, probability)),
        "accuracy": float(np.mean(alarm == (y == 1))),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
    }


@dataclass(frozen=True)
class StayIndex:
    """Where each stay's rows are (rows are grouped by stay), for resampling whole stays."""

    starts: NDArray[np.int64]
    lengths: NDArray[np.int64]

    @classmethod
    def of(cls, stays: NDArray) -> StayIndex:
        boundaries = np.flatnonzero(np.concatenate([[True], stays[1:] != stays[:-1]]))
        return cls(boundaries, np.diff(np.append(boundaries, len(stays))))

    def rows(self, chosen: NDArray[np.int64]) -> NDArray[np.int64]:
        """Row indices of the chosen stays (with repeats), each stay's hours kept together."""
        counts = self.lengths[chosen]
        offsets = np.repeat(self.starts[chosen] - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
        return np.arange(counts.sum()) + offsets


def metrics_with_intervals(y, predictions: Predictions, stays, replicates: int, seed: int) -> dict[str, dict]:
    """Each metric on all rows, with a 95 % patient-bootstrap interval (stays drawn with replacement)."""
    index = StayIndex.of(stays)
    parts = np.stack(utility_parts(y, predictions.alarm, stays))  # observed, best, inaction per stay

    def all_metrics(rows, chosen) -> dict[str, float]:
        observed, best, inaction = parts[:, chosen].sum(axis=1)
        utility = {"utility": float((observed - inaction) / (best - inaction))}
        return {**threshold_metrics(y[rows], predictions.probability[rows], predictions.alarm[rows]), **utility}

    every = np.arange(len(index.starts))
    estimate = all_metrics(np.arange(len(y)), every)
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {name: [] for name in estimate}
    for _ in range(replicates):
        chosen = rng.integers(0, len(every), len(every))
        for name, value in all_metrics(index.rows(chosen), chosen).items():
            samples[name].append(value)
    return {
        name: {
            "value": round(value, 4),
            "ci95": [round(float(np.percentile(samples[name], q)), 4) for q in (2.5, 97.5)],
        }
        for name, value in estimate.items()
    }


# -- the comparison ----------------------------------------------------------------------------
def cross_validate(
    data: Dataset,
    model_names: list[str],
    k: int = 5,
    seed: int = 0,
    progress: Callable[[str], None] = lambda message: None,
) -> tuple[list[Predictions], NDArray[np.int64]]:
    """Out-of-fold predictions of every model and rule over k patient-level folds."""
    folds = patient_folds(data, k, seed)
    results = [rule_predictions(name, data) for name in RULE_THRESHOLDS]
    for name in model_names:
        predictions = Predictions(name, np.zeros(len(data.y)), np.zeros(len(data.y), dtype=bool))
        for fold in range(k):
            test = folds == fold
            fitted = fit_calibrated(name, data.rows(~test), seed + fold)
            held = data.rows(test)
            predictions.probability[test] = fitted.probability(held.X, held.stays)
            predictions.alarm[test] = predictions.probability[test] >= fitted.threshold
            predictions.thresholds.append(fitted.threshold)
            predictions.loss_curves.append(fitted.estimator.loss_curve())
            progress(f"{name} fold {fold + 1}/{k}")
        results.append(predictions)
    return results, folds


def rule_predictions(name: str, data: Dataset) -> Predictions:
    """A clinical rule as a predictor: its score ranks the hours, its own threshold raises the alarm."""
    score = data.rules[name]
    return Predictions(name, score, score >= RULE_THRESHOLDS[name], [float(RULE_THRESHOLDS[name])])


def fold_spread(data: Dataset, predictions: Predictions, folds: NDArray) -> dict[str, list[float]]:
    """AUROC and utility of each test fold (their spread is the cross-validation spread)."""
    spread: dict[str, list[float]] = {"auroc": [], "utility": []}
    for fold in np.unique(folds):
        rows = folds == fold
        spread["auroc"].append(round(float(roc_auc_score(data.y[rows], predictions.probability[rows])), 4))
        spread["utility"].append(round(normalized(data.y[rows], predictions.alarm[rows], data.stays[rows]), 4))
    return spread


def comparison_table(
    data: Dataset, results: list[Predictions], folds: NDArray, replicates: int, seed: int
) -> list[dict]:
    """One row per model or rule: metrics with intervals, per-fold spread, thresholds."""
    return [
        {
            "model": p.name,
            "kind": "rule" if p.name in RULE_THRESHOLDS else "model",
            "features": None if p.name in RULE_THRESHOLDS else data.feature_set,
            "metrics": metrics_with_intervals(data.y, p, data.stays, replicates, seed),
            "folds": fold_spread(data, p, folds),
            "thresholds": [round(t, 4) for t in p.thresholds],
            "loss_curves": p.loss_curves,
        }
        for p in results
    ]


def evaluate(
    data: Dataset,
    model_names: list[str],
    k: int = 5,
    seed: int = 0,
    replicates: int = BOOTSTRAP_REPLICATES,
    progress: Callable[[str], None] = lambda message: None,
) -> dict:
    """The whole comparison as one JSON-ready value."""
    results, folds = cross_validate(data, model_names, k, seed, progress)
    return {
        "stays": len(np.unique(data.stays)),
        "hours": len(data.y),
        "septic_stays": int(pd.Series(data.y).groupby(data.stays).max().sum()),
        "features": data.feature_set,
        "folds": k,
        "seed": seed,
        "bootstrap_replicates": replicates,
        "table": comparison_table(data, results, folds, replicates, seed),
    }
