"""Does the sepsis model lack data? Held-out AUROC and utility of LightGBM trained on a share of the training stays.

Usage: python benchmarks/risk_learning_curve.py DATA [--out docs/figures/risk-learning-curve.png]

The same patient-level 5 folds (seed 0), features and cross-fitted procedure as ``vigil risk evaluate``; in each
training split a random share of the stays (septic and other stays drawn separately, so the share of septic
stays stays the same) is used to fit, calibrate and choose the threshold; the test fold is the whole fold every
time. Prints the JSON of pooled out-of-fold AUROC and utility per share (with the per-fold values) and draws them
against the number of training stays.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rich.progress import Progress
from risk_common import FOLDS, SEED, development_set, save_figure
from sklearn.metrics import roc_auc_score

from vigil.models.evaluation import Dataset, fit_calibrated, normalized

SHARES = (0.25, 0.5, 0.75, 1.0)


def stay_share(train: Dataset, share: float, seed: int) -> np.ndarray:
    """Row mask of a random ``share`` of the stays, drawn separately among septic and other stays."""
    stays = np.unique(train.stays)
    septic = set(train.stays[train.in_septic_stay()])
    rng = np.random.default_rng(seed)
    chosen = []
    for group in ([s for s in stays if s in septic], [s for s in stays if s not in septic]):
        chosen.extend(rng.choice(group, size=max(1, round(share * len(group))), replace=False))
    return np.isin(train.stays, chosen)


def curve(data: Dataset, folds: np.ndarray, advance) -> list[dict]:
    """For each share: out-of-fold probabilities and alarms over all folds, then AUROC and utility."""
    points = []
    for share in SHARES:
        probability, alarm = np.zeros(len(data.y)), np.zeros(len(data.y), dtype=bool)
        training_stays, per_fold = [], {"auroc": [], "utility": []}
        for fold in range(FOLDS):
            test, train = folds == fold, data.rows(folds != fold)
            subset = train.rows(stay_share(train, share, SEED + fold))
            training_stays.append(len(np.unique(subset.stays)))
            fitted = fit_calibrated("lightgbm", subset, SEED + fold)
            probability[test] = fitted.probability(data.X[test], data.stays[test])
            alarm[test] = probability[test] >= fitted.threshold
            per_fold["auroc"].append(round(float(roc_auc_score(data.y[test], probability[test])), 4))
            per_fold["utility"].append(round(normalized(data.y[test], alarm[test], data.stays[test]), 4))
            advance()
        points.append(
            {
                "share": share,
                "training_stays": int(np.mean(training_stays)),
                "auroc": round(float(roc_auc_score(data.y, probability)), 4),
                "utility": round(normalized(data.y, alarm, data.stays), 4),
                "folds": per_fold,
            }
        )
    return points


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = result["points"]
    stays = [p["training_stays"] for p in points]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
    for axis, metric, target in zip(axes, ("auroc", "utility"), (0.85, 0.40)):
        folds = np.array([p["folds"][metric] for p in points])
        axis.plot(stays, [p[metric] for p in points], marker="o", label="pooled out-of-fold")
        axis.fill_between(stays, folds.min(axis=1), folds.max(axis=1), alpha=0.15, label="fold range")
        axis.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:.2f}")
        axis.set_xscale("log")
        axis.set_xticks(stays, [str(s) for s in stays])
        axis.minorticks_off()
        axis.set_xlabel("training stays (log scale)")
        axis.set_ylabel(f"held-out {metric}")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    fig.suptitle("LightGBM sepsis risk, PhysioNet 2019 set B: held-out metrics against training data", fontsize=9)
    save_figure(fig, path)


def main() -> None:
    args, data, folds = development_set(__doc__.splitlines()[0], "docs/figures/risk-learning-curve.png")
    with Progress() as progress:
        task = progress.add_task("fitting on shares of the training stays", total=len(SHARES) * FOLDS)
        points = curve(data, folds, lambda: progress.advance(task))
    result = {"data": str(args.data), "folds": FOLDS, "seed": SEED, "points": points}
    plot(result, args.out)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
