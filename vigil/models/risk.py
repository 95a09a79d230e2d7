"""The shipped sepsis-risk model: LightGBM, isotonic calibration and alarm threshold in one JSON file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from vigil.models.features import FEATURE_NAMES, causal_features

DEFAULT_MODEL = "sepsis_lightgbm.json"
FORMAT = "vigil-sepsis-risk/1"


@dataclass(frozen=True)
class Contribution:
    """One feature's signed contribution to an hour's risk, in log-odds of the uncalibrated model."""

    feature: str
    value: float | None
    contribution: float


@dataclass
class SepsisRiskModel:
    """Hourly P(sepsis within the label window) from causal features, with TreeSHAP explanations."""

    booster_text: str
    calibration_x: list[float]
    calibration_y: list[float]
    threshold: float
    feature_names: list[str] = field(default_factory=lambda: list(FEATURE_NAMES))
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import lightgbm

        if self.feature_names != list(FEATURE_NAMES):
            raise ValueError("model features do not match this version's FEATURE_NAMES; retrain the model")
        self._booster = lightgbm.Booster(model_str=self.booster_text)

    # -- persistence ------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        data = {k: v for k, v in asdict(self).items()}
        path.write_text(json.dumps({"format": FORMAT, **data}))

    @classmethod
    def load(cls, path: Path | str) -> SepsisRiskModel:
        data = json.loads(Path(path).read_text())
        if data.pop("format", None) != FORMAT:
            raise ValueError(f"{path}: not a Vigil sepsis-risk model ({FORMAT})")
        return cls(**data)

    # -- scoring ----------------------------------------------------------------------------------
    def probability_from_features(self, X: NDArray[np.float32]) -> NDArray[np.float64]:
        raw = self._booster.predict(X)
        return np.interp(raw, self.calibration_x, self.calibration_y)

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        """PredictedProbability and PredictedLabel for every row of a long stays frame, causally."""
        probability = self.probability_from_features(causal_features(frame).to_numpy(np.float32))
        return pd.DataFrame(
            {"PredictedProbability": probability, "PredictedLabel": (probability >= self.threshold).astype(int)},
            index=frame.index,
        )

    def explain(self, X: NDArray[np.float32], top: int = 5) -> list[list[Contribution]]:
        """For each row, the ``top`` features pushing its risk up or down most (TreeSHAP, pred_contrib)."""
        contributions = self._booster.predict(X, pred_contrib=True)[:, :-1]  # last column is the bias
        explained = []
        for row, values in zip(contributions, X):
            order = np.argsort(-np.abs(row))[:top]
            explained.append(
                [
                    Contribution(
                        self.feature_names[i],
                        None if np.isnan(values[i]) else round(float(values[i]), 3),
                        round(float(row[i]), 4),
                    )
                    for i in order
                ]
            )
        return explained


def export_lightgbm(fitted, metadata: dict[str, Any]) -> SepsisRiskModel:
    """A fitted, calibrated LightGBM (evaluation.FittedRisk) as a self-contained model."""
    booster = fitted.estimator.model.booster_
    calibrator = fitted.calibrator
    return SepsisRiskModel(
        booster_text=booster.model_to_string(),
        calibration_x=[float(v) for v in calibrator.X_thresholds_],
        calibration_y=[float(v) for v in calibrator.y_thresholds_],
        threshold=float(fitted.threshold),
        metadata=metadata,
    )


@cache
def default_model() -> SepsisRiskModel:
    """The model that ships inside the package (trained on the whole development set)."""
    with resources.as_file(resources.files("vigil.models") / "default" / DEFAULT_MODEL) as path:
        return SepsisRiskModel.load(path)
