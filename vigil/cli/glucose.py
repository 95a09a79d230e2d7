"""`vigil glucose`: type-1 diabetes on the UVA/Padova simulator: the closed loop and the forecast evaluation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from vigil.cli.common import JsonFlag, emit, err, fail, save_json
from vigil.glucose.band_error import band_error_from_evaluation
from vigil.glucose.body import patient_names
from vigil.glucose.forecast_report import column_titles, summary_rows
from vigil.glucose.simulation import (
    BASELINES,
    CLOSED_LOOP_HEADER,
    closed_loop_line,
    closed_loop_result,
    simulate_cohort,
)

app = typer.Typer(
    help="Type-1 diabetes on the UVA/Padova simulator (simglucose): forecasts and therapy.", no_args_is_help=True
)
PatientsOption = Annotated[str, typer.Option("--patients", help="all, child, adolescent, adult or NAME,NAME,...")]
SaveOption = Annotated[Path | None, typer.Option("--save", help="also write the result (JSON) here")]


@app.command("simulate")
def simulate(
    patients: PatientsOption = "all",
    days: Annotated[int, typer.Option("--days", min=1, max=60)] = 7,
    seed: Annotated[int, typer.Option("--seed")] = 1,
    baseline: Annotated[
        str,
        typer.Option(
            "--baseline",
            help="peers to run on the same bodies and meals: bb (BBController), oref0 (OpenAPS), loop; or all",
        ),
    ] = "",
    workers: Annotated[int, typer.Option("--workers", min=0, help="parallel processes (0: one per CPU)")] = 0,
    save: SaveOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Closed loop: virtual patients follow every piece of Vigil's advice for DAYS days of random meals."""
    names = _virtual_patients(patients)
    controllers = ("vigil", *_baselines(baseline))
    with Progress(console=err) as progress:
        task = progress.add_task("closed loop", total=len(names) * len(controllers))
        runs = simulate_cohort(
            names,
            days,
            seed,
            controllers,
            workers or os.cpu_count() or 1,
            lambda run: progress.update(task, advance=1, description=f"{run.controller} {run.patient}"),
        )
    result = closed_loop_result(runs, controllers, days, seed)
    if save:
        save_json(result, save, indent=True)
    emit(result, as_json, _closed_loop_text(result))


@app.command("forecast-eval")
def forecast_eval(
    patients: PatientsOption = "all",
    train_days: Annotated[int, typer.Option("--train-days", min=1)] = 4,
    test_days: Annotated[int, typer.Option("--test-days", min=1)] = 2,
    seed: Annotated[int, typer.Option("--seed")] = 1,
    save: SaveOption = None,
    save_band: Annotated[
        Path | None,
        typer.Option(
            "--save-band", help="also write the live band's fallback error (vigil/glucose/forecast_error.json)"
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Glucose forecasts at 30 and 60 minutes on held-out simulated days: RMSE, MAE, Clarke A+B, per model."""
    # scikit-learn takes about a second to import: only the command that fits the forecasters loads it
    from vigil.glucose.forecast_eval import forecast_evaluation, model_specs

    names = _virtual_patients(patients)
    with Progress(console=err) as progress:
        task = progress.add_task("forecast evaluation", total=len(names) * (1 + len(model_specs())))
        result = forecast_evaluation(
            patients, train_days, test_days, seed, lambda message: progress.update(task, advance=1, description=message)
        )
    if save:
        save_json(result, save, indent=True)
    if save_band:
        save_json(band_error_from_evaluation(result), save_band, indent=True)
    if as_json:
        emit(result, True, "")
    else:
        Console().print(_forecast_table(result, test_days))


def _baselines(selection: str) -> tuple[str, ...]:
    chosen = BASELINES if selection.strip() == "all" else tuple(p.strip() for p in selection.split(",") if p.strip())
    unknown = [peer for peer in chosen if peer not in BASELINES]
    if unknown:
        fail(f"--baseline: unknown controller(s) {', '.join(unknown)}; use {', '.join(BASELINES)} or all")
    return tuple(dict.fromkeys(chosen))


def _virtual_patients(selection: str) -> list[str]:
    try:
        return patient_names(selection)
    except ValueError as error:
        fail(f"--{error}")  # the error names the field: patients


def _closed_loop_text(result: dict[str, Any]) -> str:
    rows = [("vigil", name, metrics) for name, metrics in result["groups"].items()]
    rows += [
        (controller, name, metrics)
        for controller, summary in result["baselines"].items()
        for name, metrics in summary["groups"].items()
    ]
    rows += [("vigil", "overall", result["overall"])]
    rows += [(controller, "overall", summary["overall"]) for controller, summary in result["baselines"].items()]
    return "\n".join([CLOSED_LOOP_HEADER, *(closed_loop_line(c, g, m) for c, g, m in rows)])


def _forecast_table(result: dict[str, Any], test_days: int) -> Table:
    table = Table(*column_titles(result), title=f"{len(result['patients'])} patients, {test_days} held-out days each")
    for row in summary_rows(result):
        table.add_row(*row)
    return table
