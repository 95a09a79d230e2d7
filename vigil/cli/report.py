"""`vigil report`: figures and tables of the measured results, from saved runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from vigil.cli.common import JsonFlag, emit, err, fail, refusing
from vigil.cli.risk import EVALUATION_FILE
from vigil.config import load_settings
from vigil.glucose.forecast_report import forecast_figure
from vigil.models.reporting import comparison_figure, loss_figure, markdown_table, merge_evaluations

app = typer.Typer(help="Figures of the measured results.", no_args_is_help=True)
EvaluationFiles = Annotated[
    list[Path] | None,
    typer.Option(
        "--evaluation", help=f"saved run(s), repeatable to merge model subsets; default VIGIL_HOME/{EVALUATION_FILE}"
    ),
]


@app.command("figures")
def figures(
    out: Annotated[Path, typer.Option("--out", help="directory for the PNG files")],
    evaluation: EvaluationFiles = None,
    glucose_forecast: Annotated[
        Path | None,
        typer.Option(
            "--glucose-forecast", help="a saved `vigil glucose forecast-eval --save` run; alone, only its figure"
        ),
    ] = None,
) -> None:
    """Model-comparison and loss-curve figures from saved `vigil risk evaluate` runs, and the glucose-forecast figure."""
    out.mkdir(parents=True, exist_ok=True)
    written = _glucose_forecast_figure(glucose_forecast, out) if glucose_forecast else []
    if evaluation or not glucose_forecast:
        written += _risk_figures(_saved_evaluation(evaluation), out)
    err.print(f"wrote {', '.join(written)} to {out}")


@app.command("table")
def table(evaluation: EvaluationFiles = None, as_json: JsonFlag = False) -> None:
    """The model-comparison table (Markdown, or --json) of saved `vigil risk evaluate` runs."""
    result = _saved_evaluation(evaluation)
    emit(result, as_json, markdown_table(result))


def _saved_evaluation(sources: list[Path] | None) -> dict[str, Any]:
    """One or more saved `vigil risk evaluate` runs, merged (model subsets of one data set, folds and seed)."""
    paths = sources or [load_settings().home / EVALUATION_FILE]
    for path in paths:
        if not path.exists():
            fail(f"--evaluation: {path} not found; run `vigil risk evaluate DATA` first")
    with refusing(ValueError, option="--evaluation"):
        return merge_evaluations([orjson.loads(path.read_bytes()) for path in paths])


def _risk_figures(result: dict[str, Any], out: Path) -> list[str]:
    comparison_figure(result, out / "risk-model-comparison.png")
    return ["risk-model-comparison.png"] + (
        ["risk-loss-curves.png"] if loss_figure(result, out / "risk-loss-curves.png") else []
    )


def _glucose_forecast_figure(saved: Path, out: Path) -> list[str]:
    if not saved.exists():
        fail(f"--glucose-forecast: {saved} not found; run `vigil glucose forecast-eval --save {saved}` first")
    forecast_figure(orjson.loads(saved.read_bytes()), out / "glucose-forecast.png")
    return ["glucose-forecast.png"]
