"""`vigil export`: de-identified exports of patient data for research."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vigil.cli.common import DbOption, JsonFlag, emit, store_for
from vigil.config import load_settings
from vigil.security.deid import export_deidentified
from vigil.security.policy import operator

app = typer.Typer(help="Exports of patient data.", no_args_is_help=True)


@app.command("deid")
def deid(
    out: Annotated[Path, typer.Option("--out", help="directory for patients.csv, readings.csv, alerts.csv")],
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """De-identified research export (HIPAA Safe Harbor): no identifiers, dates shifted per patient, ages 90+ grouped."""
    data, written = export_deidentified(store_for(load_settings(db)), operator(), out)
    counts = {"patients": len(data.patients), "readings": len(data.readings), "alerts": len(data.alerts)}
    emit(
        {**counts, "files": [str(p) for p in written]}, as_json, f"wrote {', '.join(p.name for p in written)} to {out}"
    )
