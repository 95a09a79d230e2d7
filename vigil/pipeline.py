"""The stream processor: stored readings -> signal (clean, features) -> care (NEWS2, alerts), hourly risk and glucose
advice -> care (their alerts) -> store."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from vigil.care import CareEngine, CareOutcome, News2Context
from vigil.care.predictive import GlucoseForecastAlerts, SepsisRiskAlerts
from vigil.config import renotify_intervals
from vigil.domain import (
    Alert,
    AlertDraft,
    AlertEventKind,
    News2Inputs,
    Reading,
    RecommendationDraft,
    Score,
    Severity,
    VitalsSnapshot,
)
from vigil.glucose.live import GLUCOSE_METRICS, LiveGlucose, TherapySource
from vigil.glucose.live import WARM_UP_WINDOW as GLUCOSE_WARM_UP_WINDOW
from vigil.models.live import LiveRiskScorer, patient_demographics
from vigil.models.risk import SepsisRiskModel, default_vitals_model
from vigil.security.crypto import UnknownKeyError
from vigil.signal import SignalProcessor
from vigil.store import SqlStore
from vigil.timeutil import format_time, utc_now

log = logging.getLogger(__name__)

WARM_UP_WINDOW = timedelta(hours=24)
SNAPSHOT_STEP = timedelta(minutes=5)
"""A batch spanning longer than this (a device catching up after being offline) is evaluated in steps
of this length, so alerts do not depend on how a device happens to batch its readings."""
CARE_STAGE, GLUCOSE_STAGE = "care", "glucose"
"""What the care engine (conditions confirming, episodes raised) and the glucose advice (personalised settings,
insulin recommended and not yet given) remember beyond the data is checkpointed under these names with every processed
batch, so a restarted or new owner raises and advises exactly what the old one would have, no more, no less."""
RENOTIFY_CHECK_SECONDS = 15.0
"""How often a serving process looks for unacknowledged alerts due to be raised again."""


@dataclass(frozen=True)
class DerivedBatch:
    """What one batch of readings derived, not yet written: care's outcome per snapshot, the hourly risk scores, the
    stages' checkpoints, the glucose advice and the alerts the risk and forecast scores raise."""

    evaluated: list[tuple[VitalsSnapshot, CareOutcome]]
    risk_scores: list[Score]
    care_states: dict[str, dict]
    glucose_recommendations: list[RecommendationDraft]
    glucose_states: dict[str, dict]
    model_alerts: list[AlertDraft]


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
        renotify: Mapping[Severity, timedelta] | None = None,
        risk_model: SepsisRiskModel | None = None,
    ):
        self.store = store
        self.renotify = renotify_intervals(os.environ) if renotify is None else renotify
        self.signal = signal or SignalProcessor()
        self.care = care or CareEngine()
        self.risk = risk or LiveRiskScorer(risk_model or default_vitals_model(), self._demographics)
        self.glucose = glucose or LiveGlucose()
        self.risk_alerts = SepsisRiskAlerts()
        self.forecast_alerts = GlucoseForecastAlerts()
        self._lock = threading.Lock()
        self._latest_scores: dict[str, dict[str, dict]] = {}

    def warm_up(self, window: timedelta = WARM_UP_WINDOW, belongs: Callable[[str], bool] = lambda _: True) -> int:
        """Rebuild the state of the patients that `belongs` picks from their recent processed readings, without
        re-raising alerts (readings still waiting in the stream are left to ``process``, which raises them)."""
        recent = self.store.query_readings(start=utc_now() - window, processed_only=True)
        readings = [reading for reading in recent if belongs(reading.patient_id)]
        with self._lock:
            for inputs in self.store.latest_news2_inputs().values():
                if belongs(inputs.patient_id):
                    self.care.set_news2_context(inputs.patient_id, News2Context.of(inputs))
            for snapshot in self.signal.process(readings):
                outcome = self.care.evaluate(snapshot)
                self._remember_scores(snapshot.patient_id, outcome.scores)
            for patient_id, state in self.store.stage_states(CARE_STAGE).items():
                if belongs(patient_id):  # what processing raised, not what the replay would have
                    self.care.restore(patient_id, state)
            scores = self.risk.update(readings)
            self.risk_alerts.update(scores)  # resumes streaks and open episodes; their alerts were raised before
            for score in scores:
                self._remember_scores(score.patient_id, [score])
            self.glucose.warm_up(r for r in self._stored_glucose_readings() if belongs(r.patient_id))
            self.glucose.resume({p: s for p, s in self.store.stage_states(GLUCOSE_STAGE).items() if belongs(p)})
        log.info("warmed up from %d stored readings", len(readings))
        return len(readings)

    def process(self, readings: Sequence[Reading]) -> list[Alert]:
        """Run newly stored readings through signal and care; returns the alerts raised."""
        return self.record(self.derive(readings))

    def derive(self, readings: Sequence[Reading]) -> DerivedBatch:
        """Every stage's outcome for a batch, advancing the per-patient state, and writing nothing: the stream
        processor derives before it opens the batch's unit of work, so the heavy part (an hour's risk scoring for
        every patient, glucose forecasts) never holds the database's write lock (SQLite has one, for everyone)."""
        with self._lock:
            evaluated = [
                (snapshot, self.care.evaluate(snapshot))
                for chunk in time_slices(readings)
                for snapshot in self.signal.process(chunk, as_of_batch=True)
            ]
            risk_scores = self.risk.update(readings)
            patients = sorted({reading.patient_id for reading in readings})
            care_states = {pid: self.care.state_of(pid) for pid in patients}
            glucose = self.glucose.update(readings)
            return DerivedBatch(
                evaluated,
                risk_scores,
                care_states,
                glucose.recommendations,
                self.glucose.checkpoints(patients),
                self.risk_alerts.update(risk_scores) + self.forecast_alerts.update(glucose.checks),
            )

    def record(self, derived: DerivedBatch) -> list[Alert]:
        """Write what a batch derived (in the processor's unit of work); returns the alerts raised."""
        with self._lock:
            for score in derived.risk_scores:
                self._remember_scores(score.patient_id, [score])
            self.store.add_scores(derived.risk_scores)
            self.store.save_stage_states(CARE_STAGE, derived.care_states)
            self.store.save_stage_states(GLUCOSE_STAGE, derived.glucose_states)
            for draft in derived.glucose_recommendations:
                self.store.add_recommendation(draft)
            self.store.expire_recommendations()  # stale advice is closed as time passes, not only when read
            return self._record(derived.evaluated) + self._raise(derived.model_alerts)

    def record_news2_inputs(self, inputs: News2Inputs) -> list[Alert]:
        """Store a clinician's NEWS2 inputs, use them from now on, and re-score the patient's latest vitals with them
        (so the ward list and alerts reflect them at once); returns the alerts raised."""
        with self._lock:
            self.store.record_news2_inputs(inputs)
            return self._apply_news2_inputs(inputs)

    def refresh_news2_inputs(self, belongs: Callable[[str], bool]) -> list[Alert]:
        """Take up NEWS2 inputs recorded through another server for the patients that `belongs` picks, re-scoring
        each one's latest vitals with them; returns the alerts raised."""
        with self._lock:
            return [
                alert
                for inputs in self.store.latest_news2_inputs().values()
                if belongs(inputs.patient_id) and News2Context.of(inputs) != self.care.news2_context(inputs.patient_id)
                for alert in self._apply_news2_inputs(inputs)
            ]

    def _apply_news2_inputs(self, inputs: News2Inputs) -> list[Alert]:
        self.care.set_news2_context(inputs.patient_id, News2Context.of(inputs))
        snapshot = self.signal.latest_snapshot(inputs.patient_id)
        return [] if snapshot is None else self._record([(snapshot, self.care.evaluate(snapshot))])

    def renotify_due(self, now: datetime | None = None) -> list[Alert]:
        """Raise again every open alert left unacknowledged for its severity's interval; returns them."""
        renotified = self.store.renotify_due(now or utc_now(), self.renotify)
        for alert in renotified:
            log.warning(
                "alert %s for %s unacknowledged, raised again (%d): %s",
                alert.rule,
                alert.patient_id,
                alert.notified_count,
                alert.message,
            )
        return renotified

    def stored_glucose_view(self, patient_id: str, therapy: TherapySource | None = None) -> dict | None:
        """The glucose panel of a patient whose state another process owns, as that owner has it: rebuilt from the
        processed readings and the checkpoint it wrote to the store (never from this process's memory)."""
        live = LiveGlucose()
        if therapy is not None:
            live.prescribe(patient_id, therapy)
        live.warm_up(self._stored_glucose_readings(patient_id))
        checkpoint = self.store.stage_states(GLUCOSE_STAGE).get(patient_id)
        live.resume({patient_id: checkpoint} if checkpoint else {})
        return live.view(patient_id)

    def _stored_glucose_readings(self, patient_id: str | None = None) -> list[Reading]:
        """The diabetes data the glucose advice looks back over (longer than the vitals' warm-up)."""
        start = utc_now() - GLUCOSE_WARM_UP_WINDOW
        return [
            reading
            for metric in GLUCOSE_METRICS
            for reading in self.store.query_readings(patient_id, metric, start, processed_only=True)
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
            event = alert.history[-1].kind if alert.history else AlertEventKind.RAISED
            log.warning(
                "alert %s for %s %s (%s): %s", alert.rule, alert.patient_id, event, alert.severity, alert.message
            )
        return raised

    def _demographics(self, patient_id: str) -> tuple[float | None, float | None]:
        """Age and sex for the risk model; unknown (with a warning) when the patient's record cannot be decrypted
        with the keys at hand, so one unreadable record never stops processing for everyone else."""
        try:
            patient = self.store.get_patient(patient_id)
        except UnknownKeyError as error:
            log.warning("patient %s scored without age and sex: %s", patient_id, error)
            patient = None
        return patient_demographics(patient, utc_now().date())

    def _remember_scores(self, patient_id: str, scores) -> None:
        """Keep each kind's newest score (a late device batch may bring older ones)."""
        latest = self._latest_scores.setdefault(patient_id, {})
        for score in scores:
            time = format_time(score.time)
            if score.kind not in latest or time >= latest[score.kind]["time"]:
                latest[score.kind] = {"value": score.value, "time": time, **_summary(score.details)}


class RenotifySource(Protocol):
    def renotify_due(self) -> list[Alert]: ...


class Renotifier:
    """Calls ``source.renotify_due`` every ``period`` seconds in a background thread until stopped."""

    def __init__(self, source: RenotifySource, period: float = RENOTIFY_CHECK_SECONDS) -> None:
        self.source = source
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="renotify", daemon=True)

    def start(self) -> Renotifier:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.period + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.source.renotify_due()
            except Exception:  # a failed check must not end re-notification: the next one retries
                log.exception("re-notifying due alerts failed")


def _summary(details: dict) -> dict:
    """The parts of a score's details worth showing in the ward list."""
    return {
        k: details[k]
        for k in ("band", "components", "missing", "alarm", "threshold", "model", "explanation")
        if k in details
    }


__all__ = ["Pipeline", "Renotifier", "status_of"]
