"""Glucose-forecast reports from a saved ``vigil glucose forecast-eval`` run: the summary rows, a Markdown table."""

from __future__ import annotations

from typing import Any

COLUMNS = (("rmse", "RMSE", "{:.1f}"), ("mae", "MAE", "{:.1f}"), ("clarke_ab", "Clarke A+B", "{:.1%}"),
           ("rmse_ratio_to_persistence", "RMSE / persistence", "{:.2f}"))


def summary_rows(result: dict[str, Any], scope: tuple[str, ...] = ("overall",)) -> list[list[str]]:
    """One row per model: its name, then each column at each horizon, formatted; ``scope`` picks e.g. an age group
    as ``("groups", "child")``."""
    rows = []
    for model, report in result["models"].items():
        scores = report
        for key in scope:
            scores = scores[key]
        cells = [fmt.format(scores[str(h)][key]) for key, _, fmt in COLUMNS for h in result["horizons"]]
        rows.append([model, *cells])
    return rows


def column_titles(result: dict[str, Any]) -> list[str]:
    return ["model", *(f"{title} {h} min" for _, title, _ in COLUMNS for h in result["horizons"])]


def markdown_table(result: dict[str, Any], scope: tuple[str, ...] = ("overall",)) -> str:
    titles = column_titles(result)
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    lines += ["| " + " | ".join(row) + " |" for row in summary_rows(result, scope)]
    return "\n".join(lines)
