"""The dashboard: login, the live ward list, a patient page with charts, alerts and recommendations."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from vigil.api.context import AppContext, context
from vigil.api.gates import SESSION_COOKIE, log_out, optional_user, visible_patient
from vigil.api.people_routes import ward
from vigil.api.schemas import AlertOut, News2InputsOut, RecommendationOut, Schema
from vigil.domain import User
from vigil.errors import Forbidden, Unauthorised
from vigil.metrics import METRICS
from vigil.security.csrf import CSRF_COOKIE, CSRF_FIELD, csrf_ok, new_csrf_token
from vigil.security.identity import SESSION_LIFETIME, authenticate, issue_token
from vigil.security.policy import patient_ids_visible_to, visible_patient_ids

WEB_DIR = Path(__file__).parent


def _csrf_context(request: Request) -> dict:
    """Every page can embed the CSRF token in its forms (a fresh one on the login page)."""
    return {"csrf_token": getattr(request.state, "csrf_token", None) or request.cookies.get(CSRF_COOKIE, "")}


templates = Jinja2Templates(directory=str(WEB_DIR / "templates"), context_processors=[_csrf_context])
router = APIRouter(include_in_schema=False)
WARD_POLL_SECONDS = 2.0

Ctx = Annotated[AppContext, Depends(context)]
MaybeUser = Annotated[User | None, Depends(optional_user)]


class LoginRequired(Unauthorised):
    """Raised by pages when nobody is logged in; answered with a redirect to /login (fragments and events: 401)."""


def page_user(user: MaybeUser) -> User:
    if user is None:
        raise LoginRequired("login required")
    return user


PageUser = Annotated[User, Depends(page_user)]


def _set_cookie(response: Response, ctx: AppContext, name: str, value: str, readable_by_scripts: bool = False) -> None:
    response.set_cookie(
        name,
        value,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=not readable_by_scripts,
        samesite="strict",
        secure=ctx.secure_cookies,
    )


def _require_csrf(request: Request, submitted: str | None) -> None:
    if not csrf_ok(request.cookies.get(CSRF_COOKIE), submitted):
        raise Forbidden("CSRF token missing or wrong: reload the page and try again")


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, ctx: Ctx, error: str | None = None) -> HTMLResponse:
    request.state.csrf_token = request.cookies.get(CSRF_COOKIE) or new_csrf_token()
    response = templates.TemplateResponse(request, "login.html", {"error": error})
    _set_cookie(response, ctx, CSRF_COOKIE, request.state.csrf_token, readable_by_scripts=True)
    return response


@router.post("/login")
def login(
    request: Request,
    ctx: Ctx,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = "",
    totp: Annotated[str | None, Form(max_length=16)] = None,
) -> Response:
    _require_csrf(request, csrf_token)
    if authenticate(ctx.store, username, password, totp) is None:
        return RedirectResponse("/login?error=Wrong+username,+password+or+code", status_code=303)
    response = RedirectResponse("/", status_code=303)
    _set_cookie(
        response, ctx, SESSION_COOKIE, issue_token(ctx.store, username, ctx.session_secret, "web", SESSION_LIFETIME)
    )
    _set_cookie(response, ctx, CSRF_COOKIE, new_csrf_token(), readable_by_scripts=True)
    return response


@router.post("/logout")
def logout(request: Request, ctx: Ctx, csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = "") -> Response:
    """End the session on the server too: a copy of the cookie is refused from now on."""
    _require_csrf(request, csrf_token)
    log_out(request, ctx)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/", response_class=HTMLResponse)
def ward_page(request: Request, user: PageUser, sort: str = "news2") -> HTMLResponse:
    return templates.TemplateResponse(
        request, "ward.html", {"user": user, "sort": "risk" if sort == "risk" else "news2"}
    )


@router.get("/fragments/ward", response_class=HTMLResponse)
def ward_fragment(request: Request, user: PageUser, ctx: Ctx, sort: str = "news2") -> HTMLResponse:
    rows = [row.model_dump(mode="json") for row in ward(user, ctx, "risk" if sort == "risk" else "news2")]
    return templates.TemplateResponse(request, "ward_rows.html", {"rows": rows, "metrics": METRICS})


@router.get("/fragments/alerts", response_class=HTMLResponse)
def alerts_fragment(request: Request, user: PageUser, ctx: Ctx, patient_id: str | None = None) -> HTMLResponse:
    if patient_id:
        visible_patient(patient_id, user, ctx)
        visible = {patient_id}
    else:
        visible = visible_patient_ids(user, ctx)
    names = {p.patient_id: p.name for p in ctx.store.list_patients(visible)}
    alerts = _json(AlertOut, ctx.store.list_alerts(visible, limit=50))
    return templates.TemplateResponse(request, "alerts.html", {"alerts": alerts, "names": names, "user": user})


@router.get("/patients/{patient_id}", response_class=HTMLResponse)
def patient_page(request: Request, patient_id: str, user: PageUser, ctx: Ctx) -> HTMLResponse:
    patient = visible_patient(patient_id, user, ctx)
    status = ctx.store.list_status([patient_id]).get(patient_id) or {}
    recorded = ctx.store.news2_inputs_history(patient_id, limit=1)
    news2_inputs = _json(News2InputsOut, recorded)[0] if recorded else None
    context = {"user": user, "patient": patient, "status": status, "metrics": METRICS, "news2_inputs": news2_inputs}
    return templates.TemplateResponse(request, "patient.html", context)


@router.get("/fragments/patients/{patient_id}/recommendations", response_class=HTMLResponse)
def recommendations_fragment(request: Request, patient_id: str, user: PageUser, ctx: Ctx) -> HTMLResponse:
    visible_patient(patient_id, user, ctx)
    recs = _json(RecommendationOut, ctx.store.list_recommendations(patient_id, limit=30))
    return templates.TemplateResponse(request, "recommendations.html", {"recommendations": recs, "user": user})


def _json(schema: type[Schema], values: Iterable[object]) -> list[dict]:
    """Domain values as the API answers them, for the templates."""
    return [schema.model_validate(value).model_dump(mode="json") for value in values]


def _ward_digest(user: User, ctx: AppContext) -> str:
    """A hash of the statuses and alerts this user can see: tells a page to refresh, carries no patient data."""
    ids = patient_ids_visible_to(user, ctx.store)
    statuses = ctx.store.list_status(ids)
    alerts = _json(AlertOut, ctx.store.list_alerts(ids, limit=50))
    return hashlib.sha256(orjson.dumps([sorted(ids), statuses, alerts], option=orjson.OPT_SORT_KEYS)).hexdigest()


@router.get("/events/ward")
async def ward_events(request: Request, user: PageUser, ctx: Ctx) -> StreamingResponse:
    """Server-sent events: a 'ward' event whenever what this user can see has changed; ends with the session."""

    async def stream():
        last_digest = None
        while not await request.is_disconnected() and await run_in_threadpool(optional_user, request, ctx):
            digest = await run_in_threadpool(_ward_digest, user, ctx)
            if digest != last_digest:
                last_digest = digest
                yield f"event: ward\ndata: {digest}\n\n"
            else:
                yield ": keep-alive\n\n"
            await asyncio.sleep(WARD_POLL_SECONDS)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
