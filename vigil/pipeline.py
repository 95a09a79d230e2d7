"""The stream processor: stored readings -> signal (clean, features) -> care (NEWS2, alerts), hourly risk and glucose
advice -> care (their alerts) -> store."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import timedelta

from vigil.care import CareEngine, CareOutcome
from vigil.care.predictive import GlucoseForecastAlerts, SepsisRiskAlerts
from vigil.domain import Alert, AlertDraft, Reading, VitalsSnapshot
from vigil.glucose.live import GLUCOSE_METRICS, LiveGlucose
from vigil.glucose.live import WARM_UP_WINDOW as GLUCOSE_WARM_UP_WINDOW
from vigil.models.live import LiveRiskScorer, patient_demographics
from vigil.models.risk import default_model
from vigil.signal import SignalProcessor
from vigil.store import SqlStore
from vigil.timeutil import format_time, utc_now

log = logging.getLogger(__name__)

WARM_UP_WINDOW = timedelta(hours=24)
SNAPSHOT_STEP = timedelta(minutes=5)
"""A batch spanning longer than this (a device catching up after being offline) is evaluated in steps
of this length, so alerts do not depend on how a device happens to batch its readings."""


def time_slices(readings: Sequence[Reading], step: timedelta = SNAPSHOT_STEP) -> list[list[Reading]]:
    """Readings in time order, cut into consecutive slices each spanning less than ``step``."""
    ordered = sorted(readings, key=lambda r: r.time)
    slices: list[list[Reading]] = []
    for reading in ordered:
        if not slices or reading.time - slices[-1][0].time >= step:
            slices.append([])
        slices[-1].append(reading)
    return slices


def status_of(snapshot: VitalsSnapshot, scores: dict[str, dict]) -> dict:
    """The ward-list view of a patient: latest cleaned vitals, when measured, and latest scores."""
    return {
        "time": format_time(snapshot.time),
        "values": {m: round(v, 2) for m, v in snapshot.values.items()},
        "measured_at": {m: format_time(t) for m, t in snapshot.measured_at.items()},
        "gaps": snapshot.gaps,
        "scores": scores,
    }


class Pipeline:
    """Keeps per-patient streaming state in memory; thread-safe; writes derived events to the store."""

    def __init__(
        self,
        store: SqlStore,
        signal: SignalProcessor | None = None,
        care: CareEngine | None = None,
        risk: LiveRiskScorer | None = None,
        glucose: LiveGlucose | None = None,
    ):
        self.store = store
        self.signal = signal or SignalProcessor()
        self.care = care or CareEngine()
        self.risk = risk or LiveRiskScorer(default_model(), self._demographics)
        self.glucose = glucose or LiveGlucose()
        self.risk_alerts = SepsisRiskAlerts()
        self.forecast_alerts = GlucoseForecastAlerts()
        self._lock = threading.Lock()
        self._latest_scores: dict[str, dict[str, dict]] = {}

    def warm_up(self, window: timedelta = WARM_UP_WINDOW) -> int:
        """Rebuild streaming state from the recent stored readings, without re-raising alerts."""
        readings = self.store.query_readings(start=utc_now() - window)
        with self._lock:
            for snapshot in self.signal.process(readings):
                outcome = self.care.evaluate(snapshot)
                self._remember_scores(snapshot.patient_id, outcome.scores)
            scores = self.risk.update(readings)
            self.risk_alerts.update(scores)  # resumes streaks and open episodes; their alerts were raised before
            for score in scores:
                self._remember_scores(score.patient_id, [score])
            self.glucose.warm_up(self._stored_glucose_readings())
        log.info("warmed up from %d stored readings", len(readings))
        return len(readings)

    def process(self, readings: Sequence[Reading]) -> list[Alert]:
        """Run newly stored readings through signal and care; returns the alerts raised."""
        with self._lock:
            evaluated = [
                (snapshot, self.care.evaluate(snapshot))
                for chunk in time_slices(readings)
                for snapshot in self.signal.process(chunk, as_of_batch=True)
            ]
            risk_scores = self.risk.update(readings)
            for score in risk_scores:
                self._remember_scores(score.patient_id, [score])
            self.store.add_scores(risk_scores)
            glucose = self.glucose.update(readings)
            for draft in glucose.recommendations:
                self.store.add_recommendation(draft)
            self.store.expire_recommendations()  # stale advice is closed as time passes, not only when read
            return (
                self._record(evaluated)
                + self._raise(self.risk_alerts.update(risk_scores))
                + self._raise(self.forecast_alerts.update(glucose.checks))
            )

    def _stored_glucose_readings(self) -> list[Reading]:
        """The diabetes data the glucose advice looks back over (longer than the vitals' warm-up)."""
        start = utc_now() - GLUCOSE_WARM_UP_WINDOW
        return [
            reading for metric in GLUCOSE_METRICS for reading in self.store.query_readings(metric=metric, start=start)
        ]

    def _record(self, evaluated: list[tuple[VitalsSnapshot, CareOutcome]]) -> list[Alert]:
        """Write the batch's derived events: scores and statuses in one go, then alerts and advice."""
        latest: dict[str, VitalsSnapshot] = {}
        for snapshot, outcome in evaluated:
            self._remember_scores(snapshot.patient_id, outcome.scores)
            if snapshot.patient_id not in latest or snapshot.time >= latest[snapshot.patient_id].time:
                latest[snapshot.patient_id] = snapshot
        self.store.add_scores([score for _, outcome in evaluated for score in outcome.scores])
        self.store.save_statuses({pid: status_of(s, self._latest_scores.get(pid, {})) for pid, s in latest.items()})
        for snapshot, outcome in evaluated:
            for draft in outcome.recommendations:
                self.store.add_recommendation(draft)
            for kind in outcome.ended:
                self.store.end_recommendations(snapshot.patient_id, kind, snapshot.time)
        return self._raise([draft for _, outcome in evaluated for draft in outcome.alerts])

    def _raise(self, drafts: list[AlertDraft]) -> list[Alert]:
        raised = [alert for draft in drafts if (alert := self.store.raise_alert(draft))]
        for alert in raised:
            log.warning("alert %s for %s: %s", alert.rule, alert.patient_id, alert.message)
        return raised

    def _demographics(self, patient_id: str) -> tuple[float | None, float | None]:
        return patient_demographics(self.store.get_patient(patient_id), utc_now().date())

    def _remember_scores(self, patient_id: str, scores) -> None:
        """Keep each kind's newest score (a late device batch may bring older ones)."""
        latest = self._latest_scores.setdefault(patient_id, {})
        for score in scores:
            time = format_time(score.time)
            if score.kind not in latest or time >= latest[score.kind]["time"]:
                latest[score.kind] = {"value": score.value, "time": time, **_summary(score.details)}


def _summary(details: dict) -> dict:
    """The parts of a score's details worth showing in the ward list."""
    return {
        k: details[k] for k in ("band", "components", "missing", "alarm", "threshold", "explanation") if k in details
    }


__all__ = ["Pipeline", "status_of"]
