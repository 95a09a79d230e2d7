"""The live forecast band's fallback error: the effects model's RMSE per horizon, read at start-up from a forecast
evaluation saved in the package by ``vigil glucose forecast-eval --save-band``."""

from __future__ import annotations

import json
import os
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

EFFECTS_MODEL = "effects (chart settings)"
"""The forecaster the advice acts on, scored with the patient's chart settings (what a new live patient has)."""
BAND_ERROR_ENV = "VIGIL_FORECAST_ERROR"
"""Environment variable naming another band-error file (the default ships in the package)."""
SHIPPED_NAME = "forecast_error.json"
LONGEST_HORIZON_MIN = 120.0


class BandErrorFileError(ValueError):
    """The band-error file is missing or not what ``vigil glucose forecast-eval --save-band`` writes."""


def band_error_from_evaluation(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The part of a forecast evaluation the live band needs, with where it came from."""
    overall = evaluation["models"][EFFECTS_MODEL]["overall"]
    horizons = sorted(int(h) for h in overall)
    return {
        "model": EFFECTS_MODEL,
        "horizons_min": horizons,
        "rmse_mg_dl": [round(float(overall[str(h)]["rmse"]), 2) for h in horizons],
        "evaluation": {key: evaluation[key] for key in ("seed", "train_days", "test_days", "reference")}
        | {"patients": len(evaluation["patients"])},
    }


def band_error_path() -> Path:
    configured = os.environ.get(BAND_ERROR_ENV)
    return Path(configured) if configured else Path(str(files("vigil.glucose") / SHIPPED_NAME))


@cache
def fallback_rmse(path: Path | None = None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(horizons, RMSE) from the file: 0 mg/dL now, the measured horizons, and the last slope carried on to 2 h."""
    measured_horizons, measured_rmse = _read(path or band_error_path())
    horizons, rmse = [0.0, *measured_horizons], [0.0, *measured_rmse]
    if horizons[-1] < LONGEST_HORIZON_MIN:
        slope = (rmse[-1] - rmse[-2]) / (horizons[-1] - horizons[-2])
        rmse.append(rmse[-1] + slope * (LONGEST_HORIZON_MIN - horizons[-1]))
        horizons.append(LONGEST_HORIZON_MIN)
    return tuple(horizons), tuple(rmse)


def _read(path: Path) -> tuple[list[float], list[float]]:
    try:
        saved = json.loads(path.read_text())
        horizons = [float(h) for h in saved["horizons_min"]]
        rmse = [float(r) for r in saved["rmse_mg_dl"]]
    except FileNotFoundError as error:
        raise BandErrorFileError(f"{path}: no forecast band error file ({BAND_ERROR_ENV} or the package's)") from error
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise BandErrorFileError(f"{path}: not a band error file ({error}); write one with forecast-eval") from error
    if not horizons or len(horizons) != len(rmse) or horizons != sorted(set(horizons)) or horizons[0] <= 0:
        raise BandErrorFileError(f"{path}: horizons_min must be increasing minutes above 0, one rmse_mg_dl each")
    if any(not 0 < value < 400 for value in rmse):
        raise BandErrorFileError(f"{path}: rmse_mg_dl must be between 0 and 400 mg/dL")
    return horizons, rmse
