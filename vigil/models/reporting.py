"""Risk-evaluation reports: the comparison table as text and the figures (model comparison, loss curves)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TABLE_METRICS = ("auroc", "auprc", "utility", "accuracy", "precision", "recall", "f1")


def merge_evaluations(evaluations: list[dict[str, Any]]) -> dict[str, Any]:
    """Runs of ``vigil risk evaluate`` on the same data, folds and seed (e.g. model subsets run side by side) as one.

    The clinical rules appear in every run with the same values; each model (per feature set) or rule is kept once.
    Raises ValueError when the runs differ in data, stays, folds or seed.
    """
    first = evaluations[0]
    same = ("stays", "hours", "folds", "seed", "bootstrap_replicates")
    for other in evaluations[1:]:
        differing = [key for key in same if other.get(key) != first.get(key)]
        if differing:
            raise ValueError(
                f"the runs differ in {', '.join(differing)}; only runs of one data set, folds and seed merge"
            )
    rows: dict[str, dict[str, Any]] = {}
    for evaluation in evaluations:
        for row in table_rows(evaluation):
            rows.setdefault(row_label(row), row)
    return {**first, "table": list(rows.values())}


def table_rows(evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's rows, each model's naming its feature set (runs saved before rows did name the run's)."""
    default = evaluation.get("features", "full")
    return [
        row if row["kind"] == "rule" or row.get("features") else {**row, "features": default}
        for row in evaluation["table"]
    ]


def row_label(row: dict[str, Any]) -> str:
    """A row's name: the model, with its feature set unless every column (``lightgbm (vitals only)``)."""
    if row["kind"] == "rule":
        return f"{row['model']} (rule)"
    features = row.get("features") or "full"
    return row["model"] if features == "full" else f"{row['model']} ({features} only)"


def _cell(metric: dict[str, Any]) -> str:
    low, high = metric["ci95"]
    return f"{metric['value']:.3f} ({low:.3f}-{high:.3f})"


def markdown_table(evaluation: dict[str, Any]) -> str:
    """The comparison as a Markdown table: value (95 % patient-bootstrap interval) and the fold spread."""
    header = "| model | " + " | ".join(TABLE_METRICS) + " | AUROC per fold | utility per fold |"
    lines = [header, "|" + "---|" * (len(TABLE_METRICS) + 3)]
    rows = sorted(table_rows(evaluation), key=lambda row: -row["metrics"]["auroc"]["value"])
    for row in rows:
        name = row_label(row)
        cells = [_cell(row["metrics"][m]) for m in TABLE_METRICS]
        folds = [", ".join(f"{v:.3f}" for v in row["folds"][k]) for k in ("auroc", "utility")]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {folds[0]} | {folds[1]} |")
    return "\n".join(lines)


def comparison_figure(evaluation: dict[str, Any], path: Path) -> None:
    """Bars of AUROC, AUPRC and utility with 95 % intervals for every model and rule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = sorted(evaluation["table"], key=lambda row: row["metrics"]["auroc"]["value"])
    metrics = ("auroc", "auprc", "utility")
    fig, axes = plt.subplots(1, len(metrics), figsize=(13, 0.5 * len(rows) + 2), sharey=True)
    for axis, metric in zip(axes, metrics):
        values = np.array([row["metrics"][metric]["value"] for row in rows])
        intervals = np.array([row["metrics"][metric]["ci95"] for row in rows])
        colours = ["#9aa1a8" if row["kind"] == "rule" else "#2471a3" for row in rows]
        axis.barh(
            range(len(rows)),
            values,
            xerr=[values - intervals[:, 0], intervals[:, 1] - values],
            color=colours,
            capsize=3,
        )
        axis.set_title({"auroc": "AUROC (hourly)", "auprc": "AUPRC (hourly)", "utility": "Normalised utility"}[metric])
        axis.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(rows)), [row_label(row) for row in rows])
    fig.suptitle(
        f"Sepsis prediction, {evaluation['folds']}-fold patient-level CV on {evaluation['stays']} stays "
        "(grey: clinical rules; bars: 95 % patient-bootstrap intervals)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def loss_figure(evaluation: dict[str, Any], path: Path) -> bool:
    """Training and validation loss per epoch or iteration of the neural and boosted models, every fold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {row["model"]: row["loss_curves"] for row in evaluation["table"] if any(row.get("loss_curves") or [])}
    if not curves:
        return False
    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.6))
    for axis, (model, folds) in zip([axes] if len(curves) == 1 else axes, curves.items()):
        for fold, curve in enumerate(folds):
            for series, values in curve.items():
                if "accuracy" in series:
                    continue
                axis.plot(
                    values,
                    label=f"{series} (fold {fold + 1})" if fold == 0 else None,
                    color="#2471a3" if series.startswith("train") else "#c0392b",
                    alpha=0.6,
                )
        axis.set_title(model)
        axis.set_xlabel("iteration" if model == "lightgbm" else "epoch")
        axis.set_ylabel("loss")
        axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
