"""`vigil report`: figures and tables of the measured results, from saved runs."""

from __future__ import annotations

import os
from datetime import tzinfo
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import typer

from vigil.cli.common import DbOption, JsonFlag, emit, err, fail, refusing, store_for
from vigil.cli.risk import EVALUATION_FILE
from vigil.config import load_settings
from vigil.glucose.agp import CONSENSUS_DAYS, AgpError
from vigil.glucose.agp_report import agp_figure, agp_summary, simulated_agp, stored_agp, summary_text
from vigil.glucose.body import patient_names
from vigil.glucose.forecast_report import forecast_figure
from vigil.models.reporting import comparison_figure, loss_figure, markdown_table, merge_evaluations
from vigil.security.policy import StoreOnly, operator, patient_access

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
    agp_simulated: Annotated[
        str | None,
        typer.Option(
            "--agp-simulated",
            help="a virtual patient (e.g. adult#001): the AGP of a Vigil closed-loop run; alone, only it",
        ),
    ] = None,
    agp_days: Annotated[int, typer.Option("--agp-days", min=1, help="days of that run")] = CONSENSUS_DAYS,
    seed: Annotated[int, typer.Option("--seed", help="seed of that run")] = 1,
) -> None:
    """Model-comparison and loss-curve figures from saved `vigil risk evaluate` runs, the glucose-forecast figure,
    and the AGP of a simulated patient."""
    out.mkdir(parents=True, exist_ok=True)
    written = _glucose_forecast_figure(glucose_forecast, out) if glucose_forecast else []
    if agp_simulated:
        written += _simulated_agp_figure(agp_simulated, agp_days, seed, out)
    if evaluation or not (glucose_forecast or agp_simulated):
        written += _risk_figures(_saved_evaluation(evaluation), out)
    err.print(f"wrote {', '.join(written)} to {out}")


@app.command("agp")
def agp(
    patient: Annotated[str, typer.Argument(help="patient id")],
    out: Annotated[Path, typer.Option("--out", help="the figure: FILE.png, .pdf or .svg")],
    days: Annotated[
        int, typer.Option("--days", min=1, help="days up to the patient's latest CGM reading")
    ] = CONSENSUS_DAYS,
    tz: Annotated[
        str | None, typer.Option("--tz", help="time zone of the time-of-day axis (VIGIL_TZ, else the server's)")
    ] = None,
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """The ambulatory glucose profile of a patient's stored CGM: percentiles by time of day, time in ranges, mean,
    GMI, CV, GRI and wear (international consensus, Battelino 2019)."""
    zone = _time_zone(tz)
    store = store_for(load_settings(db))
    record = patient_access(patient, operator(), StoreOnly(store), "report.agp")
    if record is None:
        fail(f"no patient {patient!r}")
    with refusing(AgpError):
        report = stored_agp(store, patient, days, zone)
    out.parent.mkdir(parents=True, exist_ok=True)
    agp_figure(report, out, f"Ambulatory glucose profile: {record.name} ({patient})")
    err.print(f"wrote {out}")
    emit(agp_summary(report), as_json, summary_text(report))


def _time_zone(name: str | None) -> tzinfo | None:
    """--tz, else VIGIL_TZ, else None: the server's own zone."""
    name = name or os.environ.get("VIGIL_TZ")
    if not name:
        return None
    with refusing(ZoneInfoNotFoundError, ValueError, option="--tz"):
        return ZoneInfo(name)


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


def _simulated_agp_figure(name: str, days: int, seed: int, out: Path) -> list[str]:
    with refusing(ValueError, option="--agp-simulated"):
        names = patient_names(name)
    if len(names) != 1:
        fail(f"--agp-simulated: one virtual patient, such as adult#001, not {name!r}")
    name = names[0]
    err.print(f"simulating {name} for {days} days under Vigil's closed loop (seed {seed})")
    report = simulated_agp(name, days, seed)
    filename = "glucose-agp.png"
    title = f"Ambulatory glucose profile: virtual {name} (UVA/Padova blood glucose), Vigil's closed loop, seed {seed}"
    agp_figure(report, out / filename, title, source="simulated glucose")
    return [filename]
