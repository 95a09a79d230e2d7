"""`vigil patients`: register and list patients; assign them to clinicians."""

from __future__ import annotations

from typing import Annotated

import typer

from vigil import admin
from vigil.cli.common import DbOption, JsonFlag, admin_context, admin_errors, emit
from vigil.security.policy import operator

app = typer.Typer(help="Register and list patients; assign them to clinicians.", no_args_is_help=True)
PatientOption = Annotated[str, typer.Option("--patient", help="patient id")]
ClinicianOption = Annotated[str, typer.Option("--clinician", help="clinician's username")]


@app.command("add")
def add(
    name: Annotated[str, typer.Option("--name", help="full name")],
    birth_date: Annotated[str | None, typer.Option("--birth-date", help="YYYY-MM-DD")] = None,
    sex: Annotated[str | None, typer.Option("--sex", help="female, male, other, unknown")] = None,
    condition: Annotated[list[str] | None, typer.Option("--condition", help="repeatable")] = None,
    phone: Annotated[str | None, typer.Option("--phone")] = None,
    email: Annotated[str | None, typer.Option("--email")] = None,
    address: Annotated[str | None, typer.Option("--address")] = None,
    notes: Annotated[str | None, typer.Option("--notes", help="free-text notes")] = None,
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a patient; name, birth date, contact details and notes are stored encrypted."""
    with admin_errors():
        patient = admin.add_patient(
            admin_context(db), operator(), name, birth_date, sex, condition, phone, email, address, notes
        )
    emit({"patient_id": patient.patient_id}, as_json, f"patient {patient.patient_id} added")


@app.command("list")
def list_(db: DbOption = None, as_json: JsonFlag = False) -> None:
    """List every patient (an audited read)."""
    rows = [
        {
            "patient_id": p.patient_id,
            "name": p.name,
            "birth_date": p.birth_date,
            "sex": p.sex,
            "conditions": list(p.conditions),
        }
        for p in admin.list_patients(admin_context(db), operator())
    ]
    emit(
        rows,
        as_json,
        "\n".join(f"{r['patient_id']}  {r['name']}  {', '.join(r['conditions'])}" for r in rows) or "no patients",
    )


@app.command("assign")
def assign(patient: PatientOption, clinician: ClinicianOption, db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Give a clinician access to a patient."""
    with admin_errors():
        admin.assign(admin_context(db), operator(), patient, clinician)
    emit({"patient_id": patient, "clinician": clinician}, as_json, f"{clinician} now cares for {patient}")


@app.command("unassign")
def unassign(
    patient: PatientOption, clinician: ClinicianOption, db: DbOption = None, as_json: JsonFlag = False
) -> None:
    """End a clinician's access to a patient."""
    with admin_errors():
        admin.unassign(admin_context(db), operator(), patient, clinician)
    emit(
        {"patient_id": patient, "clinician": clinician, "assigned": False},
        as_json,
        f"{clinician} no longer cares for {patient}",
    )
