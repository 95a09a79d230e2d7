"""The `vigil` command line: run the platform, manage patients, devices and users, simulate a ward, measure."""

from __future__ import annotations

import typer

from vigil.cli import audit, bench, devices, export, glucose, keys, mqtt, patients, report, risk, run, users

app = typer.Typer(help="Vigil remote patient monitoring.", no_args_is_help=True, add_completion=False)
app.add_typer(run.app)  # serve, worker, simulate, demo
GROUPS = {
    "patients": patients,
    "devices": devices,
    "users": users,
    "mqtt": mqtt,
    "keys": keys,
    "audit": audit,
    "export": export,
    "bench": bench,
    "risk": risk,
    "report": report,
    "glucose": glucose,
}
for name, group in GROUPS.items():
    app.add_typer(group.app, name=name)
