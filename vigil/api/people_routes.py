"""The people-facing API: login, patients, readings, risk, alerts and recommendations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Path, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from vigil.api.context import AppContext, context
from vigil.api.gates import clinical_action, current_user, log_out, visible_patient
from vigil.api.schemas import (
    AlertOut,
    GlucoseOut,
    News2Point,
    PatientDevice,
    PatientRecord,
    PatientSummary,
    ReadingOut,
    RecommendationOut,
    RiskOut,
    ScoreOut,
    SepsisPoint,
    SepsisRisk,
    TokenResponse,
)
from vigil.domain import ScoreKind, User
from vigil.errors import Conflict, InvalidInput, NotFound, Unauthorised
from vigil.glucose.live import RECOMMENDATION_KINDS
from vigil.metrics import MetricName
from vigil.security.identity import authenticate, issue_token
from vigil.security.policy import record, visible_patient_ids
from vigil.timeutil import utc_now

router = APIRouter(prefix="/api/v1")
DEFAULT_WINDOW = timedelta(hours=24)
MAX_READINGS = 50_000
WARD_ORDER = {"news2": (ScoreKind.NEWS2, ScoreKind.SEPSIS_RISK), "risk": (ScoreKind.SEPSIS_RISK, ScoreKind.NEWS2)}
"""The ward list's sort keys: highest NEWS2 first, then highest sepsis risk (or the other way round)."""

Ctx = Annotated[AppContext, Depends(context)]
CurrentUser = Annotated[User, Depends(current_user)]
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]  # what a BIGINT / SQLite INTEGER key can hold


class Decision(BaseModel):
    decision: Literal["accept", "reject"]
    version: int = Field(
        ge=1, le=2**31 - 1, description="the version of the recommendation that was shown and is decided"
    )
    note: str | None = Field(
        default=None, max_length=2000, pattern=r"^[^\x00]*$", description="free text, no NUL characters"
    )


@router.post("/auth/token", tags=["auth"])
async def login_for_token(
    ctx: Ctx,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    totp: Annotated[str | None, Form(max_length=16, description="one-time code, for users who enabled it")] = None,
) -> TokenResponse:
    """OAuth2 password form; a bearer token valid for 15 minutes. Five failures in a row lock the username for 15 minutes."""
    user = await run_in_threadpool(authenticate, ctx.store, username, password, totp)
    if user is None:
        raise Unauthorised("wrong username, password or one-time code")
    return TokenResponse(access_token=issue_token(ctx.store, user.username, ctx.session_secret))


@router.post("/auth/logout", status_code=204, tags=["auth"], dependencies=[Depends(current_user)])
def logout(request: Request, ctx: Ctx) -> Response:
    """End the bearer token (or dashboard session) this request carries: it is refused from now on, even a copy."""
    log_out(request, ctx)
    return Response(status_code=204)


def ward(user: User, ctx: AppContext, sort: str = "news2") -> list[PatientSummary]:
    """The patients this user may see with their latest status, highest NEWS2 (or sepsis risk) first."""
    patients = ctx.store.list_patients(visible_patient_ids(user, ctx))
    ids = [p.patient_id for p in patients]
    statuses = ctx.store.list_status(ids)
    open_alerts: dict[str, int] = {}
    for alert in ctx.store.list_alerts(ids, open_only=True, limit=10_000, history=False):
        open_alerts[alert.patient_id] = open_alerts.get(alert.patient_id, 0) + 1
    rows = [PatientSummary.of(p, statuses.get(p.patient_id), open_alerts.get(p.patient_id, 0)) for p in patients]
    first, second = WARD_ORDER[sort]
    return sorted(rows, key=lambda row: (-row.score(first), -row.score(second), row.name))


@router.get("/patients", tags=["patients"])
def list_patients(
    user: CurrentUser,
    ctx: Ctx,
    sort: Literal["news2", "risk"] = Query(default="news2", description="highest NEWS2 or highest sepsis risk first"),
) -> list[PatientSummary]:
    return ward(user, ctx, sort)


@router.get("/patients/{patient_id}", tags=["patients"])
def get_patient(patient_id: str, user: CurrentUser, ctx: Ctx) -> PatientRecord:
    patient = visible_patient(patient_id, user, ctx)
    status = ctx.store.list_status([patient_id]).get(patient_id)
    open_alerts = len(ctx.store.list_alerts([patient_id], open_only=True, history=False))
    devices = [PatientDevice.model_validate(d) for d in ctx.store.list_devices(patient_id)]
    return PatientRecord.of(patient, status, open_alerts, devices=devices)


@router.get("/patients/{patient_id}/readings", tags=["patients"])
def get_readings(
    patient_id: str,
    user: CurrentUser,
    ctx: Ctx,
    metric: MetricName | None = Query(default=None, description="one metric only"),
    start: datetime | None = Query(default=None, description="ISO 8601; default 24 h before end"),
    end: datetime | None = Query(default=None, description="ISO 8601; default now"),
) -> list[ReadingOut]:
    visible_patient(patient_id, user, ctx)
    end = _aware(end) or utc_now() + timedelta(minutes=5)
    start = _aware(start) or end - DEFAULT_WINDOW
    if start >= end:
        raise InvalidInput("must be before end", field="start")
    readings = ctx.store.query_readings(patient_id, metric, start, end, limit=MAX_READINGS)
    return [ReadingOut.model_validate(r) for r in readings]


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@router.get("/patients/{patient_id}/risk", tags=["patients"])
def get_risk(
    patient_id: str, user: CurrentUser, ctx: Ctx, hours: float = Query(default=24, gt=0, le=24 * 30)
) -> RiskOut:
    visible_patient(patient_id, user, ctx)
    since = utc_now() - timedelta(hours=hours)
    news2 = ctx.store.query_scores(patient_id, ScoreKind.NEWS2, start=since)
    sepsis = ctx.store.query_scores(patient_id, ScoreKind.SEPSIS_RISK, start=since)
    live = ctx.pipeline.risk.model
    model = sepsis[-1].details.get("model") if sepsis else None
    model = model or {"name": live.name, "inputs": live.inputs}
    return RiskOut(
        patient_id=patient_id,
        news2=ScoreOut.of(news2[-1]) if news2 else None,
        history=[News2Point(time=s.time, value=s.value, band=s.details.get("band")) for s in news2],
        sepsis=SepsisRisk(
            latest=ScoreOut.of(sepsis[-1]) if sepsis else None,
            model=f"{model['name']} (see the model card); decision support only",
            model_inputs=model["inputs"],
            history=[SepsisPoint(time=s.time, value=s.value, alarm=s.details.get("alarm")) for s in sepsis],
        ),
    )


@router.get("/patients/{patient_id}/glucose", tags=["patients"])
def get_glucose(patient_id: str, user: CurrentUser, ctx: Ctx) -> GlucoseOut:
    """The last 6 h of CGM, the 2 h forecast (every 5 min) with its band, insulin and carbs on board, the therapy
    settings with their uncertainty, and the glucose recommendations with their decisions. Decision support only."""
    visible_patient(patient_id, user, ctx)
    live = ctx.processor.glucose_view(patient_id)
    recommendations = [
        RecommendationOut.model_validate(r)
        for r in ctx.store.list_recommendations(patient_id)
        if r.kind in RECOMMENDATION_KINDS
    ]
    return GlucoseOut(
        patient_id=patient_id, streaming=live is not None, recommendations=recommendations, **(live or {})
    )


@router.get("/alerts", tags=["alerts"])
def list_alerts(
    user: CurrentUser,
    ctx: Ctx,
    open: bool = Query(default=False, description="only unacknowledged"),
    patient_id: str | None = None,
    limit: int = Query(default=200, ge=1, le=10_000),
) -> list[AlertOut]:
    if patient_id is not None:
        visible_patient(patient_id, user, ctx)
        visible = {patient_id}
    else:
        visible = visible_patient_ids(user, ctx)
    return [AlertOut.model_validate(a) for a in ctx.store.list_alerts(visible, open_only=open, limit=limit)]


@router.post("/alerts/{alert_id}/ack", tags=["alerts"])
def acknowledge_alert(alert_id: RowId, user: CurrentUser, ctx: Ctx) -> AlertOut:
    alert = ctx.store.get_alert(alert_id)
    if alert is None:
        raise NotFound("alert not found")
    clinical_action(alert.patient_id, user, ctx, "alert.acknowledge", "alert not found", alert_id=alert_id)
    return AlertOut.model_validate(ctx.store.acknowledge_alert(alert_id, user.username))


@router.get("/patients/{patient_id}/recommendations", tags=["recommendations"])
def list_recommendations(patient_id: str, user: CurrentUser, ctx: Ctx) -> list[RecommendationOut]:
    visible_patient(patient_id, user, ctx)
    return [RecommendationOut.model_validate(r) for r in ctx.store.list_recommendations(patient_id)]


@router.post("/recommendations/{recommendation_id}/decision", tags=["recommendations"])
def decide_recommendation(
    recommendation_id: RowId, decision: Decision, user: CurrentUser, ctx: Ctx
) -> RecommendationOut:
    rec = ctx.store.get_recommendation(recommendation_id)
    if rec is None:
        raise NotFound("recommendation not found")
    clinical_action(
        rec.patient_id,
        user,
        ctx,
        "recommendation.decide",
        "recommendation not found",
        recommendation_id=recommendation_id,
        decision=decision.decision,
        version=decision.version,
        recommendation_action=rec.action,
    )
    try:
        decided = ctx.store.decide_recommendation(
            recommendation_id, user.username, decision.decision == "accept", decision.note, version=decision.version
        )
    except Conflict as refused:
        record(
            ctx,
            user,
            "recommendation.decide",
            rec.patient_id,
            "conflict",
            recommendation_id=recommendation_id,
            version=decision.version,
            reason=refused.reason,
        )
        raise
    return RecommendationOut.model_validate(decided)
