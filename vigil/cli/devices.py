"""`vigil devices`: register devices and manage their tokens."""

from __future__ import annotations

from typing import Annotated

import typer

from vigil import admin
from vigil.cli.common import DbOption, JsonFlag, admin_context, admin_errors, emit
from vigil.security.policy import operator

app = typer.Typer(help="Register devices and manage their tokens.", no_args_is_help=True)
DeviceOption = Annotated[str, typer.Option("--device")]


@app.command("add")
def add(
    patient: Annotated[str, typer.Option("--patient", help="patient id")],
    kind: Annotated[str, typer.Option("--kind", help="wearable, bp_cuff, cgm, pump, ...")],
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a device; its token is printed once and stored only as a hash."""
    with admin_errors():
        device, token = admin.add_device(admin_context(db), operator(), patient, kind)
    emit(
        {"device_id": device.device_id, "token": token},
        as_json,
        f"device {device.device_id}\ntoken  {token}\n(the token is shown only once)",
    )


@app.command("revoke")
def revoke(device: DeviceOption, db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Revoke a device's token: its readings are refused from now on."""
    with admin_errors():
        admin.revoke_device(admin_context(db), operator(), device)
    emit({"device_id": device, "revoked": True}, as_json, f"device {device} revoked")


@app.command("rotate")
def rotate(device: DeviceOption, db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Issue a device a new token; the old one stops working."""
    with admin_errors():
        token = admin.rotate_device(admin_context(db), operator(), device)
    emit({"device_id": device, "token": token}, as_json, f"device {device}\ntoken  {token}")


@app.command("list")
def list_(db: DbOption = None, as_json: JsonFlag = False) -> None:
    """List devices (never their tokens; an audited read)."""
    rows = [
        {"device_id": d.device_id, "patient_id": d.patient_id, "kind": d.kind, "revoked": d.revoked}
        for d in admin.list_devices(admin_context(db), operator())
    ]
    emit(
        rows,
        as_json,
        "\n".join(
            f"{r['device_id']}  {r['patient_id']}  {r['kind']}{'  revoked' if r['revoked'] else ''}" for r in rows
        )
        or "no devices",
    )
