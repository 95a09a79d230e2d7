"""Glucose-forecast reports from a saved ``vigil glucose forecast-eval`` run: summary rows, Markdown table, figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vigil.glucose.body import AGE_GROUPS

COLUMNS = (
    ("rmse", "RMSE", "{:.1f}"),
    ("mae", "MAE", "{:.1f}"),
    ("clarke_ab", "Clarke A+B", "{:.1%}"),
    ("rmse_ratio_to_persistence", "RMSE / persistence", "{:.2f}"),
)


def summary_rows(result: dict[str, Any], scope: tuple[str, ...] = ("overall",)) -> list[list[str]]:
    """One row per model: its name, then each column at each horizon, formatted; ``scope`` picks e.g. an age group
    as ``("groups", "child")``."""
    rows = []
    for model, report in result["models"].items():
        scores = _scope(report, scope)
        cells = [_formatted(scores[str(h)][key], fmt) for key, _, fmt in COLUMNS for h in result["horizons"]]
        rows.append([model, *cells])
    return rows


def _formatted(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def _scope(report: dict[str, Any], scope: tuple[str, ...]) -> dict[str, Any]:
    for key in scope:
        report = report[key]
    return report


def column_titles(result: dict[str, Any]) -> list[str]:
    return ["model", *(f"{title} {h} min" for _, title, _ in COLUMNS for h in result["horizons"])]


def markdown_table(result: dict[str, Any], scope: tuple[str, ...] = ("overall",)) -> str:
    titles = column_titles(result)
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    lines += ["| " + " | ".join(row) + " |" for row in summary_rows(result, scope)]
    return "\n".join(lines)


def forecast_figure(result: dict[str, Any], path: Path) -> None:
    """Bars of forecast RMSE per model, by age group and over all patients, one panel per horizon."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    models = list(result["models"])
    groups = sorted(result["models"][models[0]]["groups"], key=AGE_GROUPS.index)
    scopes = [*(("groups", group) for group in groups), ("overall",)]
    labels = [scope[-1] if scope[0] == "groups" else "all patients" for scope in scopes]
    width = 0.8 / len(models)
    fig, axes = plt.subplots(1, len(result["horizons"]), figsize=(6 * len(result["horizons"]), 4.5), sharey=True)
    for axis, horizon in zip(np.atleast_1d(axes), result["horizons"]):
        for offset, model in enumerate(models):
            values = [_scope(result["models"][model], scope)[str(horizon)]["rmse"] for scope in scopes]
            axis.bar(np.arange(len(scopes)) + (offset - (len(models) - 1) / 2) * width, values, width, label=model)
        axis.set_xticks(np.arange(len(scopes)), labels)
        axis.set_title(f"{horizon}-minute forecast")
        axis.grid(axis="y", alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("RMSE against CGM (mg/dL)")
    fig.legend(*np.atleast_1d(axes)[0].get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=9)
    fig.suptitle(
        f"Glucose forecasts on {result['test_days']} held-out days of {len(result['patients'])} virtual "
        f"patients (seed {result['seed']})"
    )
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
