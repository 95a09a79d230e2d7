"""The candidate sepsis-risk models, all trained on the same causal hourly features.

Every model follows one small interface: ``fit(X, y, stays)`` and ``score(X, stays)`` returning a raw
risk score per row (higher = more likely septic; calibrated to a probability afterwards). ``stays``
gives each row's stay (rows of a stay in hour order), which only the recurrent network uses.
Tree models take missing values as they are; the others impute with the training median and scale.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.kernel_approximation import Nystroem
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

Matrix = NDArray[np.float32]


class RiskEstimator(Protocol):
    name: str

    def fit(self, X: Matrix, y: NDArray[np.int8], stays: NDArray) -> "RiskEstimator": ...

    def score(self, X: Matrix, stays: NDArray) -> NDArray[np.float64]: ...

    def loss_curve(self) -> dict[str, list[float]]: ...


class SklearnRisk:
    """A scikit-learn classifier behind the common interface; scores are P(sepsis) or the SVM margin."""

    def __init__(self, name: str, estimator) -> None:
        self.name = name
        self.estimator = estimator

    def fit(self, X: Matrix, y, stays) -> "SklearnRisk":
        self.estimator.fit(X, y)
        return self

    def score(self, X: Matrix, stays) -> NDArray[np.float64]:
        if hasattr(self.estimator, "predict_proba"):
            return self.estimator.predict_proba(X)[:, 1]
        return self.estimator.decision_function(X)

    def loss_curve(self) -> dict[str, list[float]]:
        final = self.estimator[-1] if isinstance(self.estimator, Pipeline) else self.estimator
        if isinstance(final, MLPClassifier):
            curve = {"train_log_loss": [float(v) for v in final.loss_curve_]}
            if final.validation_scores_ is not None:
                curve["validation_accuracy"] = [float(v) for v in final.validation_scores_]
            return curve
        return {}


class LightGbmRisk:
    """Gradient-boosted trees (LightGBM); keeps the training and validation log-loss per iteration."""

    name = "lightgbm"

    def __init__(self, seed: int = 0, n_estimators: int = 500) -> None:
        import lightgbm

        self.model = lightgbm.LGBMClassifier(
            n_estimators=n_estimators, learning_rate=0.05, num_leaves=31, min_child_samples=100,
            subsample=0.8, subsample_freq=1, colsample_bytree=0.5, reg_lambda=1.0,
            random_state=seed, n_jobs=2, verbose=-1,
        )

    def fit(self, X: Matrix, y, stays) -> "LightGbmRisk":
        import lightgbm

        validation = _stay_holdout(stays, fraction=0.1, seed=self.model.random_state)
        with warnings.catch_warnings():  # LightGBM 4.7 renames eval_set; older versions only know eval_set
            warnings.simplefilter("ignore", category=FutureWarning)
            warnings.simplefilter("ignore", category=DeprecationWarning)
            self.model.fit(
                X[~validation], y[~validation],
                eval_set=[(X[~validation], y[~validation]), (X[validation], y[validation])],
                eval_names=["train", "validation"], eval_metric="binary_logloss",
                callbacks=[lightgbm.early_stopping(50, verbose=False)],
            )
        return self

    def score(self, X: Matrix, stays) -> NDArray[np.float64]:
        return self.model.predict_proba(X)[:, 1]

    def loss_curve(self) -> dict[str, list[float]]:
        return {f"{name}_log_loss": list(map(float, result["binary_logloss"])) for name, result in self.model.evals_result_.items()}


def stays_held_out(stays: NDArray, count: int, seed: int) -> NDArray[np.bool_]:
    """Row mask of ``count`` (at least one) stays drawn at random: a patient-level hold-out."""
    chosen = np.random.default_rng(seed).choice(np.unique(stays), size=max(1, count), replace=False)
    return np.isin(stays, chosen)


def _stay_holdout(stays: NDArray, fraction: float, seed: int) -> NDArray[np.bool_]:
    """The models' own early-stopping hold-out: ``fraction`` of the stays, rounded down."""
    return stays_held_out(stays, int(fraction * len(np.unique(stays))), seed)


def _scaled(model) -> Pipeline:
    return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(), model)


MODEL_FACTORIES: dict[str, Callable[[int], RiskEstimator]] = {
    "decision_tree": lambda seed: SklearnRisk("decision_tree", DecisionTreeClassifier(
        max_depth=8, min_samples_leaf=200, class_weight="balanced", random_state=seed)),
    "random_forest": lambda seed: SklearnRisk("random_forest", RandomForestClassifier(
        n_estimators=150, max_depth=14, min_samples_leaf=50, max_features="sqrt", class_weight="balanced_subsample",
        n_jobs=2, random_state=seed)),
    "svm": lambda seed: SklearnRisk("svm", _scaled_kernel_svm(seed)),
    "mlp": lambda seed: SklearnRisk("mlp", _scaled(MLPClassifier(
        hidden_layer_sizes=(128, 64), alpha=1e-3, batch_size=512, learning_rate_init=1e-3, max_iter=40,
        early_stopping=True, validation_fraction=0.1, n_iter_no_change=5, random_state=seed))),
    "lightgbm": lambda seed: LightGbmRisk(seed),
}
"""Each candidate by name; the recurrent network is added when PyTorch is installed (the [deep] extra)."""


def _scaled_kernel_svm(seed: int) -> Pipeline:
    """An RBF-kernel SVM made to fit in memory: Nystroem features (300 components) and a linear SVM."""
    return make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
        Nystroem(kernel="rbf", gamma=1.0 / 256, n_components=300, random_state=seed),
        LinearSVC(C=0.05, class_weight="balanced", random_state=seed),
    )


def available_models() -> list[str]:
    """The model names that can run here (the GRU needs PyTorch)."""
    try:
        from vigil.models.recurrent import GruRisk  # noqa: F401
    except ImportError:
        return list(MODEL_FACTORIES)
    return [*MODEL_FACTORIES, "gru"]


def make_model(name: str, seed: int = 0) -> RiskEstimator:
    if name == "gru":
        from vigil.models.recurrent import GruRisk

        return GruRisk(seed)
    if name not in MODEL_FACTORIES:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(available_models())}")
    return MODEL_FACTORIES[name](seed)
