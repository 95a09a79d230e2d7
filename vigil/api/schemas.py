"""What each /api/v1 endpoint returns: pydantic models built from the domain values, so /openapi.json documents it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from vigil.domain import (
    AlertEventKind,
    AlertRule,
    Consciousness,
    Patient,
    Quality,
    RecommendationKind,
    RecommendationStatus,
    Role,
    Score,
    ScoreKind,
    Severity,
)
from vigil.metrics import MetricName
from vigil.timeutil import format_time

DATE_TIME = WithJsonSchema({"type": "string", "format": "date-time"})
Timestamp = Annotated[datetime, PlainSerializer(format_time, return_type=str), DATE_TIME]
"""A time, written as everywhere in Vigil: fixed-width UTC ISO 8601 ('2026-11-27T10:00:00.000000Z')."""
TimeText = Annotated[str, DATE_TIME]
"""A time a stage has already written that way."""
SessionCount = Annotated[int, Field(description="sessions and bearer tokens that were still open, now ended")]
Token = Annotated[str, Field(description="in this answer only; stored only as a hash")]


class Schema(BaseModel):
    """A response body; built from a domain value's attributes (`Model.model_validate(value)`)."""

    model_config = ConfigDict(from_attributes=True)


# -- login and ingestion ---------------------------------------------------------------------------
class TokenResponse(Schema):
    access_token: str
    token_type: Literal["bearer"] = "bearer"


class RejectedReading(Schema):
    index: int = Field(description="position of the reading in the batch")
    error: str = Field(description="`field: reason`")


class ReadingWarningOut(Schema):
    index: int = Field(description="position of the reading in the batch")
    warning: str = Field(description="why it was stored as implausible, and the likely mistake")


class IngestResponse(Schema):
    """The batch's readings after they are stored: how many new, how many seen before, which were rejected, and
    which were stored but flagged implausible (with the likely mistake)."""

    accepted: int
    duplicates: int
    rejected: list[RejectedReading]
    warnings: list[ReadingWarningOut] = []


# -- patients --------------------------------------------------------------------------------------
class LatestScore(Schema):
    """A patient's newest score of a kind; NEWS2 adds band, components and missing, sepsis risk alarm, threshold
    and explanation."""

    model_config = ConfigDict(extra="allow")
    value: float
    time: TimeText | None = None


class PatientStatus(Schema):
    """The latest cleaned vitals, when each was measured, which are in a gap, and the latest scores."""

    time: TimeText | None = None
    values: dict[MetricName, float] = {}
    measured_at: dict[MetricName, TimeText] = {}
    gaps: dict[MetricName, bool] = {}
    scores: dict[ScoreKind, LatestScore] = {}


class PatientSummary(Schema):
    """A patient as the ward list shows them."""

    patient_id: str
    name: str
    birth_date: str | None
    sex: str | None
    conditions: list[str]
    status: PatientStatus | None
    open_alerts: int

    @classmethod
    def of(cls, patient: Patient, status: dict[str, Any] | None, open_alerts: int, **more: Any) -> Self:
        """From the registry's patient, their latest status and count of open alerts (and, for a record, more)."""
        return cls.model_validate({**vars(patient), "status": status, "open_alerts": open_alerts, **more})

    def score(self, kind: ScoreKind) -> float:
        """The latest score of this kind, -1 without one (so that patients without it sort last)."""
        latest = self.status.scores.get(kind) if self.status else None
        return latest.value if latest else -1.0


class PatientDevice(Schema):
    device_id: str
    kind: str
    revoked: bool


class PatientRecord(PatientSummary):
    """One patient's record: the ward-list view, contact details and notes, and their devices."""

    phone: str | None
    email: str | None
    address: str | None
    notes: str | None
    devices: list[PatientDevice]


class ReadingOut(Schema):
    metric: MetricName
    time: Timestamp
    value: float
    unit: str
    quality: Quality
    device_id: str
    seq: int | None


# -- risk ------------------------------------------------------------------------------------------
class ScoreOut(Schema):
    """A score with its details (NEWS2: total, components, band, missing, response...; sepsis risk: threshold,
    alarm, hour_start, the model and the explanation: per input its words, value, earlier value, contribution)."""

    model_config = ConfigDict(extra="allow")
    time: Timestamp
    value: float

    @classmethod
    def of(cls, score: Score) -> ScoreOut:
        return cls(time=score.time, value=score.value, **score.details)


class News2Point(Schema):
    time: Timestamp
    value: float
    band: str | None


class SepsisPoint(Schema):
    time: Timestamp
    value: float
    alarm: bool | None


class SepsisRisk(Schema):
    """The hourly sepsis risk: the latest score, which model scored it and from which inputs, the history."""

    latest: ScoreOut | None
    model: str
    model_inputs: list[str]
    history: list[SepsisPoint]


class RiskOut(Schema):
    """NEWS2 and the hourly sepsis risk: the latest of each and their history."""

    patient_id: str
    news2: ScoreOut | None
    history: list[News2Point]
    sepsis: SepsisRisk


class News2InputsOut(Schema):
    """A clinician's record of what NEWS2 needs and a wearable cannot measure; None: not recorded (assumed)."""

    patient_id: str
    time: Timestamp
    recorded_by: str
    supplemental_oxygen: bool | None
    oxygen_flow: float | None = Field(description="L/min")
    consciousness: Consciousness | None
    spo2_scale: Literal[1, 2]
    spo2_scale_reason: str | None


class News2InputsHistory(Schema):
    current: News2InputsOut | None
    history: list[News2InputsOut] = Field(description="newest first")


# -- alerts and recommendations --------------------------------------------------------------------
class AlertEventOut(Schema):
    """One change in an alert's life."""

    time: Timestamp = Field(description="reading time for raised/escalated/updated; clock time otherwise")
    event: AlertEventKind = Field(validation_alias="kind")
    severity: Severity
    message: str


class AlertOut(Schema):
    alert_id: int
    patient_id: str
    rule: AlertRule
    severity: Severity = Field(description="the current (worst) severity of the open condition")
    time: Timestamp = Field(description="reading time of the latest raise, escalation or update")
    message: str = Field(description="the latest (worst) verdict, e.g. the current NEWS2")
    data: dict[str, Any] = Field(description="the numbers behind it; glucose_low below 54 mg/dL carries `confirmed`")
    acknowledged_by: str | None
    acknowledged_at: Timestamp | None
    raised_at: Timestamp = Field(description="reading time of the first raise")
    last_notified_at: Timestamp = Field(description="when it was last raised, escalated, updated or re-notified")
    notified_count: int = Field(description="how many times the care team was notified of it")
    history: list[AlertEventOut] = Field(description="each change, oldest first")


class RecommendationOut(Schema):
    recommendation_id: int
    patient_id: str
    kind: RecommendationKind
    time: Timestamp
    action: str
    reason: str
    data: dict[str, Any] = Field(description="the numbers behind it")
    status: RecommendationStatus = Field(
        description="only a pending one can be decided (it is expired once past valid_until)"
    )
    version: int = Field(description="changes with every change of status; a decision names the version it decides")
    valid_until: Timestamp = Field(description="when it stops holding")
    superseded_by: int | None = Field(description="the recommendation that replaced it, when superseded")
    decided_by: str | None
    decided_at: Timestamp | None
    decision_note: str | None


# -- glucose ---------------------------------------------------------------------------------------
class CgmPoint(Schema):
    time: TimeText
    value: float


class ForecastPoint(Schema):
    time: TimeText
    minutes_ahead: int
    value: float
    low: float
    high: float
    band: Literal["patient", "fallback"] = Field(description="whose forecast errors the band comes from")


class TherapySettings(Schema):
    """The settings in use, with their standard deviations, and what they started from."""

    isf_mg_dl_per_u: float
    isf_sd: float
    carb_ratio_g_per_u: float
    carb_ratio_sd: float
    basal_u_per_h: float
    basal_sd: float
    target_mg_dl: float
    total_daily_insulin_u: float
    programmed_basal_u_per_h: float
    source: str
    personalised_at: TimeText | None


class GlucoseOut(Schema):
    """The last 6 h of CGM, the 2 h forecast with its band, insulin and carbs on board, the settings, and the
    glucose recommendations; empty (streaming false) for a patient who has not streamed glucose."""

    patient_id: str
    streaming: bool
    as_of: TimeText | None = None
    cgm: list[CgmPoint] = []
    forecast: list[ForecastPoint] = []
    band: str | None = None
    iob_u: float | None = None
    cob_g: float | None = None
    profile: TherapySettings | None = None
    recommendations: list[RecommendationOut]


# -- administration --------------------------------------------------------------------------------
class DeadLetterOut(Schema):
    """A broker message acknowledged without being ingested: when, from which device, why; its SHA-256 and size, never
    its body."""

    received_at: Timestamp
    device_id: str | None
    topic: str
    reason: str
    payload_sha256: str
    payload_bytes: int


class UserOut(Schema):
    username: str
    role: Role
    patient_id: str | None
    totp_enabled: bool
    locked: bool


class SessionsEnded(Schema):
    username: str
    sessions_ended: SessionCount


class LockState(Schema):
    username: str
    locked: bool


class UserLocked(LockState):
    sessions_ended: SessionCount


class AssignmentOut(Schema):
    patient_id: str
    clinician: str


class UnassignmentOut(AssignmentOut):
    assigned: bool


class DeviceOut(PatientDevice):
    patient_id: str


class DeviceWithToken(DeviceOut):
    token: Token


class DeviceToken(Schema):
    device_id: str
    token: Token
