"""Why the shipped LightGBM boosts only 150 slow rounds: held-out AUROC against the number of rounds.

Usage: python benchmarks/risk_lightgbm_rounds.py DATA [--out docs/figures/risk-lightgbm-rounds.png]

The same patient-level 5 folds (seed 0) and features as ``vigil risk evaluate``; for each leaf size, one
LightGBM per fold boosted to the largest round count, its test fold scored after each checkpoint. Prints the
JSON of AUROC per checkpoint (mean and per fold) and draws the curves.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rich.progress import Progress
from risk_common import FOLDS, development_set, save_figure
from sklearn.metrics import roc_auc_score

from vigil.models.evaluation import Dataset
from vigil.models.zoo import LightGbmRisk

CHECKPOINTS = (50, 100, 150, 200, 300, 400, 600)
LEAF_SIZES = (100, 1000)


def held_out_auroc(data: Dataset, folds: np.ndarray, leaf_size: int, advance) -> dict[int, list[float]]:
    """Test-fold AUROC after each checkpoint, one list entry per fold."""
    curve: dict[int, list[float]] = {rounds: [] for rounds in CHECKPOINTS}
    for fold in np.unique(folds):
        test = folds == fold
        model = LightGbmRisk(seed=int(fold), n_estimators=max(CHECKPOINTS), min_child_samples=leaf_size)
        model.fit(data.X[~test], data.y[~test], data.stays[~test])
        for rounds in CHECKPOINTS:
            scores = model.model.predict_proba(data.X[test], num_iteration=rounds)[:, 1]
            curve[rounds].append(round(float(roc_auc_score(data.y[test], scores)), 4))
        advance()
    return curve


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(6, 3.8))
    for leaf_size, curve in result["auroc"].items():
        rounds = [int(r) for r in curve]
        folds = np.array(list(curve.values()))
        axis.plot(rounds, folds.mean(axis=1), marker="o", label=f"at least {leaf_size} hours a leaf")
        axis.fill_between(rounds, folds.min(axis=1), folds.max(axis=1), alpha=0.15)
    axis.set_xlabel("boosting rounds (learning rate 0.02)")
    axis.set_ylabel("held-out AUROC (mean, fold range)")
    axis.set_title("LightGBM on PhysioNet 2019 set B: more rounds learn individual stays", fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    save_figure(fig, path)


def main() -> None:
    args, data, folds = development_set(__doc__.splitlines()[0], "docs/figures/risk-lightgbm-rounds.png")
    with Progress() as progress:
        task = progress.add_task("boosting", total=len(LEAF_SIZES) * FOLDS)
        auroc = {size: held_out_auroc(data, folds, size, lambda: progress.advance(task)) for size in LEAF_SIZES}
    result = {"data": str(args.data), "folds": FOLDS, "checkpoints": list(CHECKPOINTS), "auroc": auroc}
    plot(result, args.out)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
