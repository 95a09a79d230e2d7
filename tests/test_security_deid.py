"""De-identified export: Safe Harbor identifiers removed, dates shifted per patient, ages over 89 grouped."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from datetime import date, timedelta

from vigil.domain import AlertDraft, Patient, Reading
from vigil.security.deid import age_group, deidentify, export_deidentified
from vigil.store import SqlStore
from vigil.timeutil import parse_time, utc_now


def test_age_is_in_whole_years_and_grouped_from_90():
    on = date(2026, 6, 15)
    assert age_group("1976-06-15", on) == "50" and age_group("1976-06-16", on) == "49"
    assert age_group("1936-06-15", on) == "90+" and age_group("1936-06-16", on) == "89"
    assert age_group(None, on) == ""


def _readings(patient_id: str, start, minutes: list[int]) -> list[Reading]:
    return [
        Reading(patient_id, "d-secret", "heart_rate", start + timedelta(minutes=m), 70.0, "/min", m) for m in minutes
    ]


def test_times_shift_per_patient_and_keep_their_intervals():
    start = utc_now() - timedelta(hours=1)
    patients = [Patient("p1", "A", "1950-01-01"), Patient("p2", "B", "1930-01-01")]
    readings = {"p1": _readings("p1", start, [0, 7, 30]), "p2": _readings("p2", start, [0, 7, 30])}
    data = deidentify(patients, readings.get, lambda pid: [], date(2026, 6, 1), random.Random(3))
    by_patient = {}
    for row in data.readings:
        by_patient.setdefault(row["research_id"], []).append(parse_time(row["time"]))
    shifts = []
    for times in by_patient.values():
        assert [(t - times[0]).total_seconds() / 60 for t in times] == [0, 7, 30]
        shift = start - times[0]
        assert shift >= timedelta(days=1) and shift.seconds == 0  # whole days, into the past
        shifts.append(shift)
    assert shifts[0] != shifts[1]
    assert [p["age"] for p in data.patients] == ["76", "90+"]
    assert not {"p1", "p2"} & {p["research_id"] for p in data.patients}


def test_export_command_writes_no_identifier_and_is_audited(settings):
    store = SqlStore(settings.db_url)
    patient = store.add_patient(
        "Octavia Nonagenarian",
        "1921-04-05",
        "female",
        ["hypertension"],
        "+44 20 7946 0001",
        "octavia@example.org",
        "3 Rook Lane, Little Snoring",
        "daughter visits Tuesdays",
    )
    device, _ = store.add_device(patient.patient_id, "wearable")
    now = utc_now()
    store.insert_readings(
        [
            Reading(patient.patient_id, device.device_id, "heart_rate", now - timedelta(minutes=m), 72.0, "/min", m)
            for m in range(3)
        ]
    )
    store.raise_alert(AlertDraft(patient.patient_id, "glucose_low", "urgent", now, "Octavia glucose 52 mg/dL"))
    out = settings.home / "export"
    env = {**os.environ, "VIGIL_HOME": str(settings.home), "VIGIL_DB": settings.db_url}
    result = subprocess.run(
        [sys.executable, "-m", "vigil", "export", "deid", "--out", str(out), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(result.stdout)["readings"] == 3, result.stderr
    exported = "".join(p.read_text() for p in out.iterdir())
    for identifier in (
        "Octavia",
        "Nonagenarian",
        "1921",
        "7946",
        "octavia@",
        "Rook Lane",
        "Tuesdays",
        patient.patient_id,
        device.device_id,
        now.date().isoformat(),
    ):
        assert identifier not in exported, identifier
    rows = list(csv.DictReader((out / "patients.csv").open()))
    assert rows == [
        {"research_id": rows[0]["research_id"], "sex": "female", "age": "90+", "conditions": "hypertension"}
    ]
    assert [r["rule"] for r in csv.DictReader((out / "alerts.csv").open())] == ["glucose_low"]
    export = [e for e in store.audit_entries() if e.action == "export.deid"]
    assert len(export) == 1 and json.loads(export[0].details)["patients"] == [patient.patient_id]


def test_the_export_holds_only_the_patients_its_actor_may_see(ward, tmp_path):
    store = ward.ctx.store
    data, files = export_deidentified(store, store.get_user("dr_who"), tmp_path / "out")
    assert [p.name for p in files] == ["patients.csv", "readings.csv", "alerts.csv"] and len(data.patients) == 1
    assert data.patients[0]["conditions"] == "hypertension"  # Ada, the one patient dr_who cares for
    entry = store.audit_entries()[-1]
    assert (entry.action, entry.actor, json.loads(entry.details)["patients"]) == (
        "export.deid",
        "user:dr_who",
        [ward.patient_id],
    )
