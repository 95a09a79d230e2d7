"""The shipped sepsis-risk models: LightGBM, isotonic calibration and alarm threshold in one JSON file each.

Two ship: ``default/`` on every Challenge column (ICU stays with labs; `vigil risk score`) and ``default_vitals/`` on
the monitored vitals, age and sex only (what the live pipeline has for a monitored patient).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from vigil.models.explanations import Reason, contributions_by_input, reasons
from vigil.models.features import FEATURE_NAMES, FEATURE_SETS, causal_features, inputs_of

DEFAULT_MODEL = "sepsis_lightgbm.json"
FORMAT = "vigil-sepsis-risk/1"
MODEL_NAMES = {
    "full": "LightGBM on PhysioNet 2019, every Challenge column (vitals, labs, demographics, ICU times)",
    "vitals": "LightGBM on PhysioNet 2019, vitals only (HR, SpO2, Temp, SBP/DBP/MAP, Resp, age, sex)",
}
SHIPPED_DIRECTORIES = {"full": "default", "vitals": "default_vitals"}


@dataclass
class SepsisRiskModel:
    """Hourly P(sepsis within the label window) from causal features, with TreeSHAP explanations."""

    booster_text: str
    calibration_x: list[float]
    calibration_y: list[float]
    threshold: float
    feature_names: list[str] = field(default_factory=lambda: list(FEATURE_NAMES))
    metadata: dict[str, Any] = field(default_factory=dict)
    feature_set: str = "full"

    def __post_init__(self) -> None:
        import lightgbm

        if self.feature_names != FEATURE_SETS.get(self.feature_set):
            raise ValueError(f"model features do not match this version's {self.feature_set!r} features; retrain it")
        self._booster = lightgbm.Booster(model_str=self.booster_text)
        if self._booster.num_feature() != len(self.feature_names):
            raise ValueError(f"the booster has {self._booster.num_feature()} features, not {len(self.feature_names)}")

    @property
    def name(self) -> str:
        """What the model is and what it was trained on."""
        return MODEL_NAMES[self.feature_set]

    @property
    def inputs(self) -> list[str]:
        """The Challenge columns its features are computed from (nothing else changes its score)."""
        return inputs_of(self.feature_names)

    def features(self, frame: pd.DataFrame) -> NDArray[np.float32]:
        """This model's causal features of every row of a long stays frame."""
        return causal_features(frame)[self.feature_names].to_numpy(np.float32)

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
        probability = self.probability_from_features(self.features(frame))
        return pd.DataFrame(
            {"PredictedProbability": probability, "PredictedLabel": (probability >= self.threshold).astype(int)},
            index=frame.index,
        )

    def reasons(
        self, X: NDArray[np.float32], earlier: NDArray[np.float32], hours: Sequence[int], top: int = 5
    ) -> list[list[Reason]]:
        """For each row, the ``top`` inputs pushing its risk most, in clinical words; ``earlier`` holds the feature
        rows ``hours`` before each (the change is told over that span)."""
        contributions = self._booster.predict(X, pred_contrib=True)[:, :-1]
        return [
            reasons(contributions_by_input(self.feature_names, row), self._values(now), self._values(then), int(h), top)
            for row, now, then, h in zip(contributions, X, earlier, hours)
        ]

    def _values(self, row: NDArray[np.float32]) -> dict[str, float | None]:
        """Each input's value in one feature row: the last value carried forward, or the input passed through."""
        index = {name: i for i, name in enumerate(self.feature_names)}
        values: dict[str, float | None] = {}
        for column in self.inputs:
            i = index.get(f"{column}_last", index.get(column))
            values[column] = None if i is None or np.isnan(row[i]) else float(row[i])
        return values


def export_lightgbm(fitted, metadata: dict[str, Any], feature_set: str = "full") -> SepsisRiskModel:
    """A fitted, calibrated LightGBM (evaluation.FittedRisk) as a self-contained model."""
    booster = fitted.estimator.model.booster_
    calibrator = fitted.calibrator
    return SepsisRiskModel(
        booster_text=booster.model_to_string(),
        calibration_x=[float(v) for v in calibrator.X_thresholds_],
        calibration_y=[float(v) for v in calibrator.y_thresholds_],
        threshold=float(fitted.threshold),
        feature_names=list(FEATURE_SETS[feature_set]),
        metadata=metadata,
        feature_set=feature_set,
    )


@cache
def default_model(feature_set: str = "full") -> SepsisRiskModel:
    """The model of that feature set that ships inside the package (trained on the whole development set)."""
    directory = resources.files("vigil.models") / SHIPPED_DIRECTORIES[feature_set]
    with resources.as_file(directory / DEFAULT_MODEL) as path:
        return SepsisRiskModel.load(path)


def default_vitals_model() -> SepsisRiskModel:
    """The shipped vitals-only model: what a monitored patient is scored by."""
    return default_model("vitals")
