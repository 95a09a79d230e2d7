"""Candidate sepsis features not yet in the model: does adding them lift held-out AUROC and utility?

Usage: python benchmarks/risk_candidate_features.py DATA [--seeds 0,1,2]

Adds 49 causal columns to ``vigil.models.features`` (partial SOFA from the last values, with the respiratory
component from SpO2/FiO2, and its rise over the stay and the last 24 h; each lab's change between its last two
measurements; how many lab and vital values were measured in the last 6 and 24 hours; the stay's lowest and
highest lactate, WBC, creatinine, platelets and bilirubin so far; BUN/creatinine), and runs the same
cross-fitted LightGBM evaluation as ``vigil risk evaluate --models lightgbm`` with and without them on the
same patient folds, for each fold seed. Prints the JSON of pooled out-of-fold AUROC and utility per seed.
This is an experiment, not the shipped feature set: adopting it means re-running every model of the table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import Progress
from risk_common import FOLDS
from sklearn.metrics import roc_auc_score

from vigil.datasets.physionet import HOUR, LABS, STAY_ID, VITALS, load_stays
from vigil.models import features
from vigil.models.evaluation import Dataset, cross_validate, normalized

SOFA_LIMITS = {
    "sofa_coagulation": ("Platelets", (150, 100, 50, 20), True),
    "sofa_liver": ("Bilirubin_total", (1.2, 2.0, 6.0, 12.0), False),
    "sofa_renal": ("Creatinine", (1.2, 2.0, 3.5, 5.0), False),
    "sofa_cardiovascular": ("MAP", (70,), True),
    "sofa_respiratory": ("spo2_fio2", (315, 235, 150, 90), True),
}
"""Component -> (value, thresholds of 1, 2, 3, 4 points, whether lower is worse); S/F stands in for P/F."""
EXTREMES = ("Lactate", "WBC", "Creatinine", "Platelets", "Bilirubin_total")


def sofa_components(last: pd.DataFrame) -> pd.DataFrame:
    """Points of each partial-SOFA component from the last values; NaN where its value was never measured."""
    fio2 = last["FiO2"].where(last["FiO2"] <= 1, last["FiO2"] / 100)
    values = last.assign(spo2_fio2=last["O2Sat"] / fio2)
    points = {}
    for component, (column, limits, lower_is_worse) in SOFA_LIMITS.items():
        value = values[column].to_numpy()
        score = np.zeros(len(value))
        for step, limit in enumerate(limits, start=1):
            score = np.where(value < limit if lower_is_worse else value >= limit, step, score)
        points[component] = np.where(np.isnan(value), np.nan, score)
    return pd.DataFrame(points)


def candidate_features(frame: pd.DataFrame) -> pd.DataFrame:
    """The 49 candidate columns for every row, in the input's order, from rows up to that hour only."""
    stays = features.Stays.of(frame)
    history = features._measurement_history(stays)
    last, observed = history.last, stays.values[list(features.VARIABLES)].notna()
    labs_measured, vitals_measured = observed[list(LABS)].sum(axis=1), observed[list(VITALS)].sum(axis=1)
    counts = {
        f"{kind}_measured_{hours}h": measured.rolling(stays.window(hours), min_periods=1).sum()
        for hours in (6, 24)
        for kind, measured in (("labs", labs_measured), ("vitals", vitals_measured))
    }
    sofa = sofa_components(last)

    def sofa_rise(hours: int | None) -> pd.Series:
        return (sofa - sofa.rolling(stays.window(hours), min_periods=1).min()).fillna(0).sum(axis=1)

    stay_so_far = last[list(EXTREMES)].rolling(stays.window(None), min_periods=1)
    blocks = [
        pd.DataFrame(counts),
        _lab_changes(last[list(LABS)], observed[list(LABS)], stays).add_suffix("_change"),
        sofa.fillna(0),
        pd.DataFrame(
            {
                "sofa_total": sofa.fillna(0).sum(axis=1),
                "sofa_rise_stay": sofa_rise(None),
                "sofa_rise_24h": sofa_rise(24),
                "bun_creatinine": last["BUN"] / last["Creatinine"],
            }
        ),
        stay_so_far.min().add_suffix("_lowest"),
        stay_so_far.max().add_suffix("_highest"),
    ]
    table = pd.concat([block.reset_index(drop=True).astype(np.float32) for block in blocks], axis=1)
    return stays.restore(table, frame.index)


def _lab_changes(last: pd.DataFrame, observed: pd.DataFrame, stays: features.Stays) -> pd.DataFrame:
    """Each lab's last value minus the one measured before it (NaN until it has two measurements)."""
    before = last.shift(1)
    before[stays.stay_starts == np.arange(len(last))] = np.nan
    previous = before.where(observed.to_numpy()).groupby(stays.stay_starts).ffill()
    return last - previous


def lightgbm_metrics(data: Dataset, seed: int) -> dict[str, float]:
    results, _ = cross_validate(data, ["lightgbm"], FOLDS, seed)
    predictions = results[-1]
    return {
        "auroc": round(float(roc_auc_score(data.y, predictions.probability)), 4),
        "utility": round(normalized(data.y, predictions.alarm, data.stays), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    frame = load_stays(args.data).sort_values([STAY_ID, HOUR], kind="stable").reset_index(drop=True)
    current = Dataset.from_frame(frame)
    extended = Dataset(
        np.hstack([current.X, candidate_features(frame).to_numpy(np.float32)]), current.y, current.stays, current.rules
    )
    result: dict = {"data": str(args.data), "seeds": {}}
    with Progress() as progress:
        task = progress.add_task("cross-validating", total=2 * len(seeds))
        for seed in seeds:
            result["seeds"][seed] = {}
            for name, data in (("current", current), ("with candidates", extended)):
                result["seeds"][seed][name] = lightgbm_metrics(data, seed)
                progress.advance(task)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
