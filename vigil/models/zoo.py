"""The candidate sepsis-risk models, all trained on the same causal hourly features.

Every model follows one small interface: ``fit(X, y, stays)`` and ``score(X, stays)`` returning a raw
risk score per row (higher = more likely septic; calibrated to a probability afterwards). ``stays``
gives each row's stay (rows of a stay in hour order), which only the recurrent network uses.
Tree models take missing values as they are; the others impute with the training median and scale.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

from vigil.models.preprocessing import Matrix, normal_scores, stay_holdout


class RiskEstimator(Protocol):
    name: str
    fits_every_row: bool
    """False: the model is fitted on a subsample of the non-septic hours (evaluation.MAX_FIT_ROWS)."""
    cross_fitted: bool
    """False: too slow to fit four times per fold; calibrated on held-out training stays instead."""

    def fit(self, X: Matrix, y: NDArray[np.int8], stays: NDArray) -> RiskEstimator: ...

    def score(self, X: Matrix, stays: NDArray) -> NDArray[np.float64]: ...

    def loss_curve(self) -> dict[str, list[float]]: ...


class SklearnRisk:
    """A scikit-learn classifier behind the common interface; scores are P(sepsis) or the SVM margin."""

    fits_every_row = False
    cross_fitted = True

    def __init__(self, name: str, estimator) -> None:
        self.name = name
        self.estimator = estimator

    def fit(self, X: Matrix, y, stays) -> SklearnRisk:
        self.estimator.fit(X, y)
        return self

    def score(self, X: Matrix, stays) -> NDArray[np.float64]:
        if hasattr(self.estimator, "predict_proba"):
            return self.estimator.predict_proba(X)[:, 1]
        return self.estimator.decision_function(X)

    def loss_curve(self) -> dict[str, list[float]]:
        return {}


class MlpRisk:
    """A multilayer perceptron (scikit-learn) trained epoch by epoch, stopped early on held-out stays.

    scikit-learn's own early stopping holds out random rows, i.e. hours of the very stays it trains on, so it
    never sees the network memorising stays; here 10 % of the stays are held out and the epoch with the
    lowest log-loss on them is kept. Inputs are mapped to normal scores by their training quantiles (the labs
    are heavily skewed), and a strong L2 penalty keeps the one hidden layer from memorising stays.
    """

    name = "mlp"
    fits_every_row = False
    cross_fitted = True

    def __init__(
        self,
        seed: int = 0,
        *,
        hidden_layer_sizes: tuple[int, ...] = (64,),
        alpha: float = 3.0,
        max_epochs: int = 40,
        patience: int = 4,
        batch_size: int = 512,
    ) -> None:
        self.seed = seed
        self.max_epochs = max_epochs
        self.patience = patience
        self.preprocessing = normal_scores(seed)
        self.network = MLPClassifier(
            hidden_layer_sizes=hidden_layer_sizes,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate_init=1e-3,
            random_state=seed,
        )
        self._curve: dict[str, list[float]] = {"train_log_loss": [], "validation_log_loss": []}

    def fit(self, X: Matrix, y, stays) -> MlpRisk:
        validation = stay_holdout(stays, fraction=0.1, seed=self.seed)
        train_X = self.preprocessing.fit_transform(X[~validation])
        held_X = self.preprocessing.transform(X[validation])
        train_y, held_y = y[~validation], y[validation]
        best = (np.inf, None)
        for epoch in range(self.max_epochs):
            self.network.partial_fit(train_X, train_y, classes=[0, 1])
            self._curve["train_log_loss"].append(float(self.network.loss_))
            held_loss = float(log_loss(held_y, self.network.predict_proba(held_X)[:, 1], labels=[0, 1]))
            self._curve["validation_log_loss"].append(held_loss)
            if held_loss < best[0]:
                best = (held_loss, copy.deepcopy(self.network))
            elif epoch - int(np.argmin(self._curve["validation_log_loss"])) >= self.patience:
                break
        self.network = best[1]
        return self

    def score(self, X: Matrix, stays) -> NDArray[np.float64]:
        return self.network.predict_proba(self.preprocessing.transform(X))[:, 1]

    def loss_curve(self) -> dict[str, list[float]]:
        return {name: list(values) for name, values in self._curve.items()}


class LightGbmRisk:
    """Gradient-boosted trees (LightGBM), strongly regularised; keeps the training log-loss per iteration.

    About 330 septic stays give all the positive hours, so long boosting learns individual stays: on the
    evaluation's 5 patient folds the mean held-out AUROC is 0.855 at 150 rounds and 0.845 at 600
    (``benchmarks/risk_lightgbm_rounds.py``, saved in docs/results/risk-lightgbm-rounds.json). Hence few, slow
    rounds and leaves of at least 1,000 hours.
    """

    name = "lightgbm"
    fits_every_row = True
    cross_fitted = True

    def __init__(self, seed: int = 0, *, n_estimators: int = 150, min_child_samples: int = 1000) -> None:
        import lightgbm

        self.model = lightgbm.LGBMClassifier(
            n_estimators=n_estimators,
            learning_rate=0.02,
            num_leaves=31,
            min_child_samples=min_child_samples,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.3,
            reg_lambda=1.0,
            random_state=seed,
            n_jobs=2,
            verbose=-1,
        )

    def fit(self, X: Matrix, y, stays) -> LightGbmRisk:
        with warnings.catch_warnings():  # LightGBM 4.7 renames eval_set; older versions only know eval_set
            warnings.simplefilter("ignore", category=FutureWarning)
            warnings.simplefilter("ignore", category=DeprecationWarning)
            self.model.fit(X, y, eval_set=[(X, y)], eval_names=["train"], eval_metric="binary_logloss")
        return self

    def score(self, X: Matrix, stays) -> NDArray[np.float64]:
        return self.model.predict_proba(X)[:, 1]

    def loss_curve(self) -> dict[str, list[float]]:
        return {
            f"{name}_log_loss": list(map(float, result["binary_logloss"]))
            for name, result in self.model.evals_result_.items()
        }


MODEL_FACTORIES: dict[str, Callable[[int], RiskEstimator]] = {
    "logistic": lambda seed: SklearnRisk(
        "logistic",
        make_pipeline(normal_scores(seed), LogisticRegression(C=0.01, class_weight="balanced", max_iter=3000)),
    ),
    "decision_tree": lambda seed: SklearnRisk(
        "decision_tree",
        DecisionTreeClassifier(max_depth=8, min_samples_leaf=200, class_weight="balanced", random_state=seed),
    ),
    "random_forest": lambda seed: SklearnRisk(
        "random_forest",
        RandomForestClassifier(
            n_estimators=150,
            max_depth=14,
            min_samples_leaf=50,
            max_features="sqrt",
            class_weight="balanced_subsample",
            n_jobs=2,
            random_state=seed,
        ),
    ),
    "svm": lambda seed: SklearnRisk("svm", _scaled_kernel_svm(seed)),
    "mlp": lambda seed: MlpRisk(seed),
    "lightgbm": lambda seed: LightGbmRisk(seed),
}
"""Each candidate by name; the recurrent network is added when PyTorch is installed (the [deep] extra).
Logistic regression (one weight per normal-scored feature) is the simple baseline the others must beat."""


def _scaled_kernel_svm(seed: int) -> Pipeline:
    """An RBF-kernel SVM made to fit in memory: Nystroem features (300 components) and a linear SVM."""
    return make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        StandardScaler(),
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
