"""The care stage: scores NEWS2 on each snapshot, raises alerts without storms, recommends escalation.

Recommendations are decision support only: each is a suggestion awaiting a clinician's decision.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, cast

from vigil.care.news2 import MEASURED_PARAMETERS, Consciousness, News2Score, explain, news2_score
from vigil.care.rules import (
    RuleVerdict,
    glucose_high,
    glucose_low,
    heart_rate_rise,
    news2_escalation_level,
    news2_single_red,
    news2_urgent,
)
from vigil.domain import (
    AlertDraft,
    AlertRule,
    News2Inputs,
    RecommendationDraft,
    RecommendationKind,
    Score,
    ScoreKind,
    VitalsSnapshot,
)
from vigil.metrics import MetricName
from vigil.news2_chart import SpO2Scale
from vigil.timeutil import format_time, parse_time

MIN_NEWS2_PARAMETERS = 3
"""NEWS2 is scored only when at least this many of its five measured vital signs are fresh:
fewer would make a low total meaningless. Missing ones are listed in the score's details."""

CONFIRMATION = timedelta(minutes=10)
"""A vital-sign condition must persist this long (in snapshot time) before it raises an alert or an
escalation: continuous wearables see transient spikes that a nurse's spot check would not."""
RESTING_RULES = frozenset(
    {AlertRule.NEWS2_URGENT, AlertRule.NEWS2_SINGLE_RED, AlertRule.HEART_RATE_RISE, RecommendationKind.ESCALATION}
)
"""Rules about vital signs at rest: not judged while the patient is active, and confirmed over time."""
ESCALATION_VALIDITY = timedelta(hours=1)
"""An escalation holds at most an hour (the medium band's minimum monitoring interval): a worse band's escalation
supersedes it, NEWS2 falling below 5 ends it sooner; after the hour it expires (the open NEWS2 alert still stands)."""

SnapshotRule = Callable[[VitalsSnapshot], RuleVerdict | None]
News2Rule = Callable[[News2Score | None], RuleVerdict | None]
SNAPSHOT_RULES: tuple[SnapshotRule, ...] = (heart_rate_rise, glucose_low, glucose_high)
NEWS2_RULES: tuple[News2Rule, ...] = (news2_urgent, news2_single_red)


@dataclass(frozen=True)
class News2Context:
    """What devices cannot measure, as recorded by the care team; None means not recorded (air, Alert).

    ``recorded_at`` and ``recorded_by`` say when and by whom; a device's oxygen flow reading newer than the record
    overrides its supplemental oxygen (flow above 0 is oxygen on)."""

    spo2_scale: SpO2Scale = 1
    supplemental_oxygen: bool | None = None
    consciousness: Consciousness | None = None
    oxygen_flow: float | None = None
    spo2_scale_reason: str | None = None
    recorded_at: datetime | None = None
    recorded_by: str | None = None

    @classmethod
    def of(cls, inputs: News2Inputs) -> News2Context:
        """The context a clinician's stored record gives."""
        scale: SpO2Scale = 2 if inputs.spo2_scale == 2 else 1
        consciousness = None if inputs.consciousness is None else cast(Consciousness, str(inputs.consciousness))
        return cls(
            scale,
            inputs.supplemental_oxygen,
            consciousness,
            inputs.oxygen_flow,
            inputs.spo2_scale_reason,
            inputs.time,
            inputs.recorded_by,
        )

    def with_device_oxygen(self, snapshot: VitalsSnapshot) -> News2Context:
        """This context, with supplemental oxygen from the device's oxygen flow when that is the newer observation."""
        flow = snapshot.values.get(MetricName.OXYGEN_FLOW)
        measured = snapshot.measured_at.get(MetricName.OXYGEN_FLOW)
        if flow is None or measured is None or (self.recorded_at is not None and self.recorded_at > measured):
            return self
        return replace(self, supplemental_oxygen=flow > 0, oxygen_flow=flow)

    def sources(self, snapshot: VitalsSnapshot) -> dict[str, str]:
        """Where each non-measured NEWS2 input came from, in words, for the score's details."""
        recorded = (
            f"recorded by {self.recorded_by} at {self.recorded_at:%Y-%m-%d %H:%M} UTC" if self.recorded_at else ""
        )
        device_time = snapshot.measured_at.get(MetricName.OXYGEN_FLOW)
        from_device = (
            self.oxygen_flow is not None
            and device_time is not None
            and (self.recorded_at is None or device_time >= self.recorded_at)
        )
        oxygen = f"device oxygen flow at {device_time:%Y-%m-%d %H:%M} UTC" if from_device and device_time else recorded
        scale = "scale 1" if self.spo2_scale == 1 else f"scale 2 ({self.spo2_scale_reason or 'no reason given'})"
        return {
            "supplemental_oxygen": oxygen if self.supplemental_oxygen is not None else "assumed on air: not recorded",
            "consciousness": recorded if self.consciousness is not None else "assumed Alert: not recorded",
            "spo2_scale": f"{scale}, {recorded}" if recorded else f"{scale}: default, not recorded",
        }


@dataclass(frozen=True)
class CareOutcome:
    """What the care stage derived from one snapshot."""

    scores: list[Score] = field(default_factory=list)
    alerts: list[AlertDraft] = field(default_factory=list)
    recommendations: list[RecommendationDraft] = field(default_factory=list)
    ended: list[RecommendationKind] = field(default_factory=list)
    """Kinds of the patient's pending advice that no longer hold (an escalation once NEWS2 falls below 5)."""


class PersistenceGate:
    """Holds back a resting-vitals verdict until its condition has lasted ``CONFIRMATION``.

    While the patient is active the verdict cannot be judged: it is dropped and the clock restarts,
    so only a condition that persists at rest is raised. Other rules pass straight through.
    """

    def __init__(self, confirmation: timedelta = CONFIRMATION, activity_aware: bool = True) -> None:
        self.confirmation = confirmation
        self.activity_aware = activity_aware
        self._since: dict[tuple[str, str], datetime] = {}

    def judge(self, snapshot: VitalsSnapshot, verdict: RuleVerdict | None) -> RuleVerdict | None:
        """The verdict to act on now: as given, None (cannot judge yet), or held back while unconfirmed."""
        if verdict is None or verdict.rule not in RESTING_RULES:
            return verdict
        key = (snapshot.patient_id, verdict.rule)
        if self.activity_aware and is_active(snapshot):
            self._since.pop(key, None)
            return None
        if verdict.level == 0:
            self._since.pop(key, None)
            return verdict
        since = self._since.setdefault(key, snapshot.time)
        return verdict if snapshot.time - since >= self.confirmation else None

    def state_of(self, patient_id: str) -> dict[str, str]:
        """Since when each of the patient's conditions has been waiting for confirmation (rule -> time)."""
        return {str(rule): format_time(since) for (pid, rule), since in self._since.items() if pid == patient_id}

    def restore(self, patient_id: str, state: dict[str, str]) -> None:
        self._since = {key: since for key, since in self._since.items() if key[0] != patient_id}
        self._since.update({(patient_id, rule): parse_time(since) for rule, since in state.items()})


def is_active(snapshot: VitalsSnapshot) -> bool:
    """Whether the patient has been walking or exercising in the last minutes (from the step count)."""
    return snapshot.features.get("activity", {}).get("active", 0.0) > 0


class EpisodeTracker:
    """Remembers, per key, the most severe level raised while a condition persists.

    A verdict is raised when its condition starts, or when it reaches a higher level than any
    raised since it started. A clear verdict (level 0) ends the episode. Rules that cannot judge
    (missing or stale data) are simply not passed in, so missing data neither raises nor resets.
    """

    def __init__(self) -> None:
        self._levels: dict[tuple[str, str], int] = {}

    def should_raise(self, patient_id: str, verdict: RuleVerdict) -> bool:
        """Record the verdict; True when it starts a new episode or worsens the current one."""
        key = (patient_id, verdict.rule)
        if verdict.level == 0:
            self._levels.pop(key, None)
            return False
        previous = self._levels.get(key, 0)
        self._levels[key] = max(previous, verdict.level)
        return verdict.level > previous

    def state_of(self, patient_id: str) -> dict[str, int]:
        """The level raised in each of the patient's ongoing episodes (rule -> level)."""
        return {str(rule): level for (pid, rule), level in self._levels.items() if pid == patient_id}

    def restore(self, patient_id: str, state: dict[str, int]) -> None:
        self._levels = {key: level for key, level in self._levels.items() if key[0] != patient_id}
        self._levels.update({(patient_id, rule): int(level) for rule, level in state.items()})


def snapshot_news2(snapshot: VitalsSnapshot, context: News2Context, min_parameters: int) -> News2Score | None:
    """NEWS2 from the snapshot's fresh vitals, or None when fewer than ``min_parameters`` are fresh."""
    measured = {name: snapshot.values[name] for name in MEASURED_PARAMETERS if name in snapshot.values}
    if len(measured) < min_parameters:
        return None
    context = context.with_device_oxygen(snapshot)
    return news2_score(
        **measured,
        supplemental_oxygen=context.supplemental_oxygen,
        consciousness=context.consciousness,
        spo2_scale=context.spo2_scale,
    )


def news2_input_details(context: News2Context, snapshot: VitalsSnapshot) -> dict[str, object]:
    """The score's record of its non-measured inputs: where each came from, and the oxygen flow if known."""
    return {"sources": context.sources(snapshot), "oxygen_flow_l_min": context.oxygen_flow}


def escalation_recommendation(snapshot: VitalsSnapshot, score: News2Score) -> RecommendationDraft:
    """The RCP response to a medium or high NEWS2, as a suggestion for the care team."""
    response = score.response
    return RecommendationDraft(
        patient_id=snapshot.patient_id,
        kind=RecommendationKind.ESCALATION,
        time=snapshot.time,
        action=f"{response.action} Monitoring: {response.monitoring}.",
        reason=f"{explain(score)} {response.trigger}.",
        data=score.details(),
        valid_until=snapshot.time + ESCALATION_VALIDITY,
    )


class CareEngine:
    """Evaluates each snapshot: a NEWS2 score, alerts for new or worsening conditions, escalation advice."""

    def __init__(
        self,
        min_news2_parameters: int = MIN_NEWS2_PARAMETERS,
        confirmation: timedelta = CONFIRMATION,
        activity_aware: bool = True,
    ) -> None:
        self.min_news2_parameters = min_news2_parameters
        self._contexts: dict[str, News2Context] = {}
        self._episodes = EpisodeTracker()
        self._gate = PersistenceGate(confirmation, activity_aware)
        self._escalated: set[str] = set()
        self._lock = threading.Lock()

    def set_news2_context(self, patient_id: str, context: News2Context) -> None:
        """Record a patient's SpO2 scale, oxygen and consciousness for future NEWS2 scores."""
        with self._lock:
            self._contexts[patient_id] = context

    def news2_context(self, patient_id: str) -> News2Context:
        """The patient's recorded context (the defaults when none was recorded)."""
        with self._lock:
            return self._contexts.get(patient_id, News2Context())

    def state_of(self, patient_id: str) -> dict[str, Any]:
        """What the engine remembers of a patient beyond their recorded context: conditions awaiting confirmation,
        episodes already raised, an escalation outstanding. JSON-able, for the processor's checkpoint."""
        with self._lock:
            return {
                "confirming": self._gate.state_of(patient_id),
                "episodes": self._episodes.state_of(patient_id),
                "escalated": patient_id in self._escalated,
            }

    def restore(self, patient_id: str, state: dict[str, Any]) -> None:
        """Resume a patient from ``state_of``: alerts the checkpointed run raised are not raised again, and ones it
        had not yet raised still are."""
        with self._lock:
            self._gate.restore(patient_id, state["confirming"])
            self._episodes.restore(patient_id, state["episodes"])
            (self._escalated.add if state["escalated"] else self._escalated.discard)(patient_id)

    def evaluate(self, snapshot: VitalsSnapshot) -> CareOutcome:
        """Score, alert and recommend on one snapshot; remembers which conditions were already raised."""
        with self._lock:
            context = self._contexts.get(snapshot.patient_id, News2Context())
            score = snapshot_news2(snapshot, context, self.min_news2_parameters)
            verdicts = [rule(score) for rule in NEWS2_RULES] + [rule(snapshot) for rule in SNAPSHOT_RULES]
            judged = [self._gate.judge(snapshot, verdict) for verdict in verdicts]
            known = [verdict for verdict in judged if verdict is not None]
            alerts = [
                self._alert(snapshot, verdict)
                for verdict in known
                if self._episodes.should_raise(snapshot.patient_id, verdict)
            ]
            recommendations, ended = self._escalation(snapshot, score)
            return CareOutcome(
                scores=[] if score is None else [self._score(snapshot, score, context)],
                alerts=alerts,
                recommendations=recommendations,
                ended=ended,
            )

    def _escalation(
        self, snapshot: VitalsSnapshot, score: News2Score | None
    ) -> tuple[list[RecommendationDraft], list[RecommendationKind]]:
        """An escalation on entering a worse NEWS2 band; the end of the one raised when NEWS2 falls below 5."""
        if score is None:
            return [], []
        verdict = RuleVerdict(RecommendationKind.ESCALATION, news2_escalation_level(score))
        escalation = self._gate.judge(snapshot, verdict)
        if escalation is None:
            return [], []
        raised = self._episodes.should_raise(snapshot.patient_id, escalation)
        if escalation.level == 0 and snapshot.patient_id in self._escalated:
            self._escalated.discard(snapshot.patient_id)
            return [], [RecommendationKind.ESCALATION]
        if not raised:
            return [], []
        self._escalated.add(snapshot.patient_id)
        return [escalation_recommendation(snapshot, score)], []

    @staticmethod
    def _alert(snapshot: VitalsSnapshot, verdict: RuleVerdict) -> AlertDraft:
        return AlertDraft(
            patient_id=snapshot.patient_id,
            rule=AlertRule(verdict.rule),
            severity=verdict.severity,
            time=snapshot.time,
            message=verdict.message,
            data=verdict.data,
            level=verdict.level,
        )

    @staticmethod
    def _score(snapshot: VitalsSnapshot, score: News2Score, context: News2Context) -> Score:
        return Score(
            patient_id=snapshot.patient_id,
            kind=ScoreKind.NEWS2,
            time=snapshot.time,
            value=float(score.total),
            details=score.details() | news2_input_details(context.with_device_oxygen(snapshot), snapshot),
        )
