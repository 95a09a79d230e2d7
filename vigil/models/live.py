"""Live sepsis risk: the monitored stream aggregated by the hour into the Challenge's shape, scored by the same features.

A monitored patient has vital signs, age and sex, nothing an ICU record adds (hours in the ICU, time from hospital
admission, units, labs), so the live scorer takes only a model whose inputs are those (the vitals-only model) and
builds the hourly frame from those columns alone: no ICU field is made up.
"""

from __future__ import annotations

import threading
from array import array
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


COLUMNS = tuple(dict.fromkeys(COLUMN_OF_METRIC.values()))
"""The Challenge columns a monitored patient's hours are binned into, in the order of a settled row."""


@dataclass
class PatientHours:
    """One patient's monitored vitals by clock hour: the values of each hour not yet scored, and of each scored hour
    only its row of medians, packed, so a patient's memory is bounded by MAX_HOURS rows and not by their readings."""

    age: float | None
    gender: float | None
    open_hours: dict[datetime, dict[str, list[float]]] = field(default_factory=dict)
    first_hour: datetime | None = None
    settled: array = field(default_factory=lambda: array("d"))  # rows of COLUMNS medians from first_hour (NaN: none)
    scored_through: datetime | None = None

    def add(self, reading: Reading) -> None:
        column = COLUMN_OF_METRIC.get(reading.metric)
        if column is None or reading.quality != Quality.OK:
            return
        hour = hour_of(reading.time)
        if self.scored_through is not None and hour <= self.scored_through:
            return  # that hour is scored and its row settled: a reading this late changes no score
        self.open_hours.setdefault(hour, {}).setdefault(column, []).append(reading.value)
        if self.first_hour is None or hour < self.first_hour:
            self.first_hour = hour

    def settle(self, through: datetime) -> None:
        """Reduce every hour up to ``through`` to its row of medians; keep at most MAX_HOURS rows."""
        hour = self.scored_through + timedelta(hours=1) if self.scored_through else self.first_hour
        while hour is not None and hour <= through:
            values = self.open_hours.pop(hour, {})
            self.settled.extend(_median_row(values))
            hour += timedelta(hours=1)
        self.scored_through = through
        excess = len(self.settled) // len(COLUMNS) - MAX_HOURS
        if excess > 0 and self.first_hour is not None:
            del self.settled[: excess * len(COLUMNS)]
            self.first_hour += timedelta(hours=excess)

    def rows(self, through: datetime) -> np.ndarray:
        """Hourly rows of COLUMNS medians from the first hour to ``through`` (NaN: nothing that hour)."""
        assert self.first_hour is not None, "no hour to frame"
        count = int((through - self.first_hour) / timedelta(hours=1)) + 1
        settled = np.frombuffer(self.settled, dtype=float).reshape(-1, len(COLUMNS))[:count]
        open_rows = [
            _median_row(values)
            for values in (
                self.open_hours.get(self.first_hour + timedelta(hours=n), {}) for n in range(len(settled), count)
            )
        ]
        return np.vstack([settled, np.array(open_rows).reshape(-1, len(COLUMNS))])

    def frame(self, through: datetime) -> pd.DataFrame:
        """Hourly rows from the first hour to ``through`` (empty hours stay missing): MONITORED_INPUTS only."""
        return hours_frame([(self, self.rows(through))])


def _median_row(values: dict[str, list[float]]) -> list[float]:
    """One hour's median of each of COLUMNS (NaN where nothing was measured)."""
    return [float(np.median(values[c])) if c in values else np.nan for c in COLUMNS]


def hours_frame(parts: Sequence[tuple[PatientHours, np.ndarray]]) -> pd.DataFrame:
    """Several patients' hourly rows as one long frame of MONITORED_INPUTS, one stay (0, 1, ...) per patient."""
    lengths = [len(rows) for _, rows in parts]
    frame = pd.DataFrame(np.vstack([rows for _, rows in parts]), columns=COLUMNS)
    frame["MAP"] = (frame["SBP"] + 2 * frame["DBP"]) / 3
    frame["Age"] = np.repeat([np.nan if h.age is None else h.age for h, _ in parts], lengths)
    frame["Gender"] = np.repeat([np.nan if h.gender is None else h.gender for h, _ in parts], lengths)
    frame = frame.reindex(columns=list(MONITORED_INPUTS))
    frame[STAY_ID] = np.repeat(np.arange(len(parts)), lengths)
    frame[HOUR] = np.concatenate([np.arange(n) for n in lengths])
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
        """The scores of the hours these readings closed, each patient's in hour order; every patient's hours are
        framed together and scored in one pass of the model (a clock hour closes for a whole ward at once)."""
        with self._lock:
            due: list[_ClosedHours] = []
            for patient_id, batch in _by_patient(readings).items():
                hours = self._hours(patient_id)
                for reading in batch:
                    hours.add(reading)
                closed = _closed_hours(patient_id, hours)
                if closed is not None:
                    due.append(closed)
            return self._score(due) if due else []

    def _hours(self, patient_id: str) -> PatientHours:
        if patient_id not in self._patients:
            self._patients[patient_id] = PatientHours(*self.demographics(patient_id))
        return self._patients[patient_id]

    def _score(self, due: list[_ClosedHours]) -> list[Score]:
        """Score the newly closed hours of every patient in ``due``, then settle those hours."""
        features = self.model.features(hours_frame([(closed.hours, closed.rows) for closed in due]))
        offsets = np.cumsum([0] + [len(closed.rows) for closed in due])
        new = np.concatenate([offset + closed.new_rows for offset, closed in zip(offsets, due, strict=False)])
        earlier = np.concatenate(
            [
                offset + np.maximum(closed.new_rows - TREND_HOURS, 0)
                for offset, closed in zip(offsets, due, strict=False)
            ]
        )
        probability = self.model.probability_from_features(features[new])
        explanations = self.model.reasons(features[new], features[earlier], new - earlier, self.explain_top)
        scores, n = [], 0
        for closed in due:
            for row in closed.new_rows:
                scores.append(self._score_of(closed, int(row), float(probability[n]), explanations[n]))
                n += 1
            closed.hours.settle(closed.through)
        return scores

    def _score_of(self, closed: _ClosedHours, row: int, probability: float, explanation: list) -> Score:
        hour_start = closed.first_hour + timedelta(hours=row)
        return Score(
            closed.patient_id,
            ScoreKind.SEPSIS_RISK,
            hour_start + timedelta(hours=1),
            probability,
            {
                "threshold": self.model.threshold,
                "alarm": bool(probability >= self.model.threshold),
                "hour_start": hour_start.isoformat(),
                "model": {"name": self.model.name, "features": self.model.feature_set, "inputs": self.model.inputs},
                "explanation": [vars(reason) for reason in explanation],
            },
        )


@dataclass(frozen=True)
class _ClosedHours:
    """A patient's hourly rows for scoring: ``new_rows`` of them closed since the last score."""

    patient_id: str
    hours: PatientHours
    rows: np.ndarray
    first_hour: datetime
    through: datetime
    new_rows: np.ndarray


def _closed_hours(patient_id: str, hours: PatientHours) -> _ClosedHours | None:
    """The hours that closed since the last score (the latest hour with a reading is still open), or None."""
    if not hours.open_hours or hours.first_hour is None:
        return None
    through = max(hours.open_hours) - timedelta(hours=1)
    start = hours.scored_through + timedelta(hours=1) if hours.scored_through else hours.first_hour
    if through < start:
        return None
    rows = hours.rows(through)
    new_rows = np.arange(len(rows))[-(int((through - start) / timedelta(hours=1)) + 1) :]
    return _ClosedHours(patient_id, hours, rows, hours.first_hour, through, new_rows)


def _by_patient(readings: Iterable[Reading]) -> dict[str, list[Reading]]:
    grouped: dict[str, list[Reading]] = {}
    for reading in sorted(readings, key=lambda r: r.time):
        grouped.setdefault(reading.patient_id, []).append(reading)
    return grouped
