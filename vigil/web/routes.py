"""The dashboard: login, the live ward list, a patient page with charts, alerts and recommendations."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from vigil.api.context import AppContext, context
from vigil.api.people_routes import ward
from vigil.api.policy import SESSION_COOKIE, optional_user, visible_patient, visible_patient_ids
from vigil.api.security import TOKEN_LIFETIME, issue_token, verify_password
from vigil.api.views import alert_json, recommendation_json
from vigil.domain import User
from vigil.metrics import METRICS

WEB_DIR = Path(__file__).parent
templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))
router = APIRouter(include_in_schema=False)
WARD_POLL_SECONDS = 2.0

Ctx = Annotated[AppContext, Depends(context)]
MaybeUser = Annotated[User | None, Depends(optional_user)]


class LoginRequired(Exception):
    """Raised by pages when nobody is logged in; answered with a redirect to /login."""


def page_user(user: MaybeUser) -> User:
    if user is None:
        raise LoginRequired()
    return user


PageUser = Annotated[User, Depends(page_user)]


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, error: str | None = None) -> HTMLResponse:
    return templates.TemplateResponse(request, "login.html", {"error": error})


@router.post("/login")
def login(ctx: Ctx, username: Annotated[str, Form()], password: Annotated[str, Form()]) -> Response:
    user = ctx.store.get_user(username)
    if not verify_password(user, password):
        return RedirectResponse("/login?error=Wrong+username+or+password", status_code=303)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE, issue_token(username, ctx.session_secret), max_age=int(TOKEN_LIFETIME.total_seconds()),
        httponly=True, samesite="strict", secure=ctx.secure_cookies,
    )
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/", response_class=HTMLResponse)
def ward_page(request: Request, user: PageUser, sort: str = "news2") -> HTMLResponse:
    return templates.TemplateResponse(request, "ward.html", {"user": user, "sort": "risk" if sort == "risk" else "news2"})


@router.get("/fragments/ward", response_class=HTMLResponse)
def ward_fragment(request: Request, user: PageUser, ctx: Ctx, sort: str = "news2") -> HTMLResponse:
    rows = ward(user, ctx, "risk" if sort == "risk" else "news2")
    return templates.TemplateResponse(request, "ward_rows.html", {"rows": rows, "metrics": METRICS})


@router.get("/fragments/alerts", response_class=HTMLResponse)
def alerts_fragment(request: Request, user: PageUser, ctx: Ctx, patient_id: str | None = None) -> HTMLResponse:
    visible = visible_patient_ids(user, ctx)
    if patient_id:
        visible_patient(patient_id, user, ctx)
        visible = {patient_id}
    names = {p.patient_id: p.name for p in ctx.store.list_patients(visible)}
    alerts = [alert_json(a) for a in ctx.store.list_alerts(visible, limit=50)]
    return templates.TemplateResponse(request, "alerts.html", {"alerts": alerts, "names": names, "user": user})


@router.get("/patients/{patient_id}", response_class=HTMLResponse)
def patient_page(request: Request, patient_id: str, user: PageUser, ctx: Ctx) -> HTMLResponse:
    patient = visible_patient(patient_id, user, ctx)
    status = ctx.store.list_status([patient_id]).get(patient_id) or {}
    return templates.TemplateResponse(
        request, "patient.html", {"user": user, "patient": patient, "status": status, "metrics": METRICS}
    )


@router.get("/fragments/patients/{patient_id}/recommendations", response_class=HTMLResponse)
def recommendations_fragment(request: Request, patient_id: str, user: PageUser, ctx: Ctx) -> HTMLResponse:
    visible_patient(patient_id, user, ctx)
    recs = [recommendation_json(r) for r in ctx.store.list_recommendations(patient_id, limit=30)]
    return templates.TemplateResponse(request, "recommendations.html", {"recommendations": recs, "user": user})


@router.get("/events/ward")
async def ward_events(request: Request, user: PageUser, ctx: Ctx) -> StreamingResponse:
    """Server-sent events: a 'ward' event whenever what this user can see has changed."""

    async def stream():
        last_digest = None
        while not await request.is_disconnected():
            rows = await run_in_threadpool(ward, user, ctx)
            alerts = await run_in_threadpool(ctx.store.list_alerts, visible_patient_ids(user, ctx), False, 50)
            digest = hashlib.sha256(orjson.dumps([rows, [alert_json(a) for a in alerts]])).hexdigest()
            if digest != last_digest:
                last_digest = digest
                yield f"event: ward\ndata: {digest}\n\n"
            else:
                yield ": keep-alive\n\n"
            await asyncio.sleep(WARD_POLL_SECONDS)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
