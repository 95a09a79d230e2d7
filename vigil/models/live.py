"""Live sepsis risk: the monitored stream aggregated by the hour into the Challenge's shape, scored by the same features.

A monitored patient has vital signs, age and sex, nothing an ICU record adds (hours in the ICU, time from hospital
admission, units, labs), so the live scorer takes only a model whose inputs are those (the vitals-only model) and
builds the hourly frame from those columns alone: no ICU field is made up.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from vigil.datasets.physionet import HOUR, STAY_ID, VITAL_METRICS
from vigil.domain import Patient, Quality, Reading, Score, ScoreKind
from vigil.models.features import MONITORED_INPUTS, TREND_HOURS
from vigil.models.risk import SepsisRiskModel

MAX_HOURS = 24 * 7
"""Hours of history kept per patient (the features look back at most 24 h, the baseline over the stay)."""
COLUMN_OF_METRIC: dict[str, str] = {
    metric: column for column, metric in VITAL_METRICS.items() if column in MONITORED_INPUTS
}
"""Metric -> Challenge column for the monitored vitals (a CGM's glucose is not the ICU's lab glucose)."""


def hour_of(time: datetime) -> datetime:
    return time.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass
class PatientHours:
    """One patient's readings binned by clock hour: per Challenge column, the values seen in each hour."""

    age: float | None
    gender: float | None
    bins: dict[datetime, dict[str, list[float]]] = field(default_factory=dict)
    scored_through: datetime | None = None

    def add(self, reading: Reading) -> None:
        column = COLUMN_OF_METRIC.get(reading.metric)
        if column is not None and reading.quality == Quality.OK:
            self.bins.setdefault(hour_of(reading.time), {}).setdefault(column, []).append(reading.value)
        if not self.bins:  # nothing the model uses yet (only carbs or insulin, say)
            return
        cutoff = max(self.bins) - timedelta(hours=MAX_HOURS)
        for old in [h for h in self.bins if h < cutoff]:
            del self.bins[old]

    def frame(self, through: datetime) -> pd.DataFrame:
        """Hourly rows from the first binned hour to ``through`` (empty hours stay missing): MONITORED_INPUTS only."""
        first = min(self.bins)
        hours = pd.date_range(first, through, freq="h")
        rows = [{column: float(np.median(values)) for column, values in self.bins.get(h, {}).items()} for h in hours]
        frame = pd.DataFrame(rows, index=range(len(hours)))
        if {"SBP", "DBP"} <= set(frame.columns):
            frame["MAP"] = (frame["SBP"] + 2 * frame["DBP"]) / 3
        frame["Age"], frame["Gender"] = self.age, self.gender
        frame = frame.reindex(columns=list(MONITORED_INPUTS))
        frame[STAY_ID], frame[HOUR] = "live", range(len(hours))
        return frame


def patient_demographics(patient: Patient | None, today: date) -> tuple[float | None, float | None]:
    """Age in years and the Challenge's Gender code (1 male, 0 female) from the registry, when known."""
    if patient is None:
        return None, None
    age = None
    if patient.birth_date:
        born = date.fromisoformat(patient.birth_date)
        age = float(today.year - born.year - ((today.month, today.day) < (born.month, born.day)))
    gender = {"male": 1.0, "female": 0.0}.get((patient.sex or "").lower())
    return age, gender


def check_monitored_inputs(model: SepsisRiskModel) -> None:
    """Refuse a model that needs inputs a monitored patient does not have (ICU times, units, labs, EtCO2)."""
    lacking = [column for column in model.inputs if column not in MONITORED_INPUTS]
    if lacking:
        raise ValueError(f"{model.name} needs inputs monitored patients do not have: {', '.join(lacking)}")


class LiveRiskScorer:
    """Scores each patient's hour once it has closed (a reading from a later hour has arrived), by a model of the
    monitored inputs only."""

    def __init__(self, model: SepsisRiskModel, demographics=lambda patient_id: (None, None), explain_top: int = 5):
        check_monitored_inputs(model)
        self.model = model
        self.demographics = demographics
        self.explain_top = explain_top
        self._patients: dict[str, PatientHours] = {}
        self._lock = threading.Lock()

    def update(self, readings: Sequence[Reading]) -> list[Score]:
        """The scores of the hours these readings closed, each patient's in hour order."""
        scores: list[Score] = []
        with self._lock:
            for patient_id, batch in _by_patient(readings).items():
                hours = self._hours(patient_id)
                for reading in batch:
                    hours.add(reading)
                scores += self._score_closed_hours(patient_id, hours)
        return scores

    def _hours(self, patient_id: str) -> PatientHours:
        if patient_id not in self._patients:
            self._patients[patient_id] = PatientHours(*self.demographics(patient_id))
        return self._patients[patient_id]

    def _score_closed_hours(self, patient_id: str, hours: PatientHours) -> list[Score]:
        """Scores for every hour that closed since the last call (the latest bin's hour is still open)."""
        if not hours.bins:
            return []
        closed_through = max(hours.bins) - timedelta(hours=1)
        start = hours.scored_through + timedelta(hours=1) if hours.scored_through else min(hours.bins)
        if closed_through < start:
            return []
        frame = hours.frame(closed_through)
        features = self.model.features(frame)
        new = np.arange(len(frame))[-(int((closed_through - start) / timedelta(hours=1)) + 1) :]
        earlier = np.maximum(new - TREND_HOURS, 0)
        probability = self.model.probability_from_features(features[new])
        explanations = self.model.reasons(features[new], features[earlier], new - earlier, self.explain_top)
        hours.scored_through = closed_through
        first_hour = min(hours.bins)
        model = {"name": self.model.name, "features": self.model.feature_set, "inputs": self.model.inputs}
        return [
            Score(
                patient_id,
                ScoreKind.SEPSIS_RISK,
                first_hour + timedelta(hours=int(i) + 1),
                float(p),
                {
                    "threshold": self.model.threshold,
                    "alarm": bool(p >= self.model.threshold),
                    "hour_start": (first_hour + timedelta(hours=int(i))).isoformat(),
                    "model": model,
                    "explanation": [vars(reason) for reason in explanation],
                },
            )
            for i, p, explanation in zip(new, probability, explanations)
        ]


def _by_patient(readings: Iterable[Reading]) -> dict[str, list[Reading]]:
    grouped: dict[str, list[Reading]] = {}
    for reading in sorted(readings, key=lambda r: r.time):
        grouped.setdefault(reading.patient_id, []).append(reading)
    return grouped
