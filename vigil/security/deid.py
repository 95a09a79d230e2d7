"""De-identified export for research, after HIPAA Safe Harbor (45 CFR 164.514(b)(2)).

What leaves: a random research id per patient (new in every export, derived from nothing), sex,
conditions, age in years (90 and over grouped as "90+"), and the patient's readings and alerts with
every time shifted back by a whole number of days drawn at random per patient (intervals within a
patient are kept, calendar dates are not). What never leaves: names, birth dates, contact details,
notes, patient, device and alert ids, sequence numbers and alert texts.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Protocol

from vigil.domain import Alert, Patient, Reading, User
from vigil.security.policy import PatientDirectory, StoreOnly, visible_patient_ids
from vigil.timeutil import format_time, utc_now

OLDEST_EXACT_AGE = 89
MAX_SHIFT_DAYS = 365
PATIENT_COLUMNS = ["research_id", "sex", "age", "conditions"]
READING_COLUMNS = ["research_id", "metric", "time", "value", "unit", "quality"]
ALERT_COLUMNS = ["research_id", "rule", "severity", "time"]
ALL_ALERTS = 1_000_000


class ResearchSource(PatientDirectory, Protocol):
    """What the export reads from a store (``vigil.store.SqlStore`` is one): patients, their readings and alerts."""

    def list_patients(self, patient_ids: Iterable[str] | None = None) -> list[Patient]: ...

    def query_readings(self, patient_id: str | None = None) -> list[Reading]: ...

    def list_alerts(self, patient_ids: Iterable[str] | None = None, *, limit: int = ...) -> list[Alert]: ...


@dataclass(frozen=True)
class DeidentifiedData:
    patients: list[dict]
    readings: list[dict]
    alerts: list[dict]


def age_group(birth_date: str | None, on: date) -> str:
    """Whole years on `on`; 90 and over as '90+'; empty when unknown."""
    if not birth_date:
        return ""
    born = date.fromisoformat(birth_date)
    years = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    return "90+" if years > OLDEST_EXACT_AGE else str(years)


def deidentify(
    patients: Iterable[Patient],
    readings_of: Callable[[str], list[Reading]],
    alerts_of: Callable[[str], list[Alert]],
    today: date,
    rng: random.Random | None = None,
) -> DeidentifiedData:
    """The de-identified rows of these patients, their readings and their alerts."""
    rng = rng or random.SystemRandom()
    data = DeidentifiedData([], [], [])
    for patient in patients:
        research_id = f"r{rng.getrandbits(48):012x}"
        shift = timedelta(days=rng.randint(1, MAX_SHIFT_DAYS))
        data.patients.append(
            {
                "research_id": research_id,
                "sex": patient.sex or "",
                "age": age_group(patient.birth_date, today),
                "conditions": ";".join(patient.conditions),
            }
        )
        data.readings.extend(
            {
                "research_id": research_id,
                "metric": r.metric,
                "time": _shifted(r.time, shift),
                "value": r.value,
                "unit": r.unit,
                "quality": r.quality,
            }
            for r in readings_of(patient.patient_id)
        )
        data.alerts.extend(
            {"research_id": research_id, "rule": a.rule, "severity": a.severity, "time": _shifted(a.time, shift)}
            for a in alerts_of(patient.patient_id)
        )
    return data


def _shifted(time: datetime, shift: timedelta) -> str:
    return format_time(time - shift)


def write_csv(data: DeidentifiedData, out_dir: Path) -> list[Path]:
    """patients.csv, readings.csv and alerts.csv in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, columns, rows in (
        ("patients", PATIENT_COLUMNS, data.patients),
        ("readings", READING_COLUMNS, data.readings),
        ("alerts", ALERT_COLUMNS, data.alerts),
    ):
        path = out_dir / f"{name}.csv"
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        written.append(path)
    return written


def export_deidentified(store: ResearchSource, actor: User, out_dir: Path) -> tuple[DeidentifiedData, list[Path]]:
    """Every patient `actor` may see (an audited read), de-identified as of today into CSV files in `out_dir`."""
    patients = store.list_patients(visible_patient_ids(actor, StoreOnly(store), "export.deid"))
    data = deidentify(
        patients, store.query_readings, lambda pid: store.list_alerts([pid], limit=ALL_ALERTS), utc_now().date()
    )
    return data, write_csv(data, out_dir)
