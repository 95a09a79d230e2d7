"""The access policy over HTTP: who is asking (a bearer token, or the dashboard's session cookie, CSRF-checked on
writes), and the policy's decisions as answers: 401 without a login, 404 for a patient the caller may not see
(exactly as for one that does not exist), 403 for what the caller may not do."""

from __future__ import annotations

from typing import NamedTuple

from fastapi import Depends, Request

from vigil.api.context import AppContext, context
from vigil.domain import Patient, User
from vigil.errors import Forbidden, NotFound, Unauthorised
from vigil.security.csrf import CSRF_COOKIE, CSRF_HEADER, SAFE_METHODS, csrf_ok
from vigil.security.identity import Audience, end_session, session_user
from vigil.security.policy import Decision, HasStore, admin_decision, clinical_decision, patient_access, record

SESSION_COOKIE = "vigil_session"


# -- who is asking -------------------------------------------------------------------------------
def bearer_token(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value, else None."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class Credential(NamedTuple):
    token: str
    audience: Audience


def presented_credential(request: Request) -> Credential | None:
    """The bearer token (API) if the request carries one, else the session cookie (dashboard), else None."""
    if token := bearer_token(request.headers.get("authorization", "")):
        return Credential(token, "api")
    cookie = request.cookies.get(SESSION_COOKIE)
    return Credential(cookie, "web") if cookie else None


def optional_user(request: Request, ctx: AppContext = Depends(context)) -> User | None:
    """The caller from a bearer token (API, 15 min) or the session cookie (dashboard, CSRF-checked on writes);
    None when there is neither, or it expired, was ended (logout, password change, locked account) or is forged."""
    credential = presented_credential(request)
    user = session_user(ctx.store, credential.token, ctx.session_secret, credential.audience) if credential else None
    if (
        user
        and credential.audience == "web"
        and request.method not in SAFE_METHODS
        and not csrf_ok(request.cookies.get(CSRF_COOKIE), request.headers.get(CSRF_HEADER))
    ):
        raise Forbidden("CSRF token missing or wrong")
    return user


def log_out(request: Request, ctx: AppContext) -> None:
    """End the session this request was made with: its token is refused from now on, even a copy of it. Audited."""
    credential = presented_credential(request)
    user = session_user(ctx.store, credential.token, ctx.session_secret, credential.audience) if credential else None
    if user and end_session(ctx.store, credential.token, ctx.session_secret, credential.audience):
        record(ctx, user, "logout")


def current_user(user: User | None = Depends(optional_user)) -> User:
    if user is None:
        raise Unauthorised("login required")
    return user


# -- the gates: the policy decides and records, these answer -----------------------------------
def _enforce(decision: Decision, missing: str, forbidden: str) -> None:
    if decision == "hidden":
        raise NotFound(missing)
    if decision == "forbidden":
        raise Forbidden(forbidden)


def visible_patient(patient_id: str, user: User, ctx: HasStore, action: str = "read") -> Patient:
    """The patient if this user may see it (the access is audited); otherwise 404, existence not revealed."""
    patient = patient_access(patient_id, user, ctx, action)
    if patient is None:
        raise NotFound("patient not found")
    return patient


def clinical_action(patient_id: str, user: User, ctx: HasStore, action: str, missing: str, **details) -> None:
    """Acknowledging alerts and deciding recommendations: 404 `missing` (as if the thing acted on did not exist) for
    a patient the user may not see, 403 unless a clinician or admin; audited either way."""
    _enforce(clinical_decision(patient_id, user, ctx, action, **details), missing, "only clinicians may do this")


def admin_only(
    user: User, ctx: HasStore, action: str, patient_id: str | None = None, missing: str = "patient not found", **details
) -> None:
    """Managing users, assignments and devices: 403 unless an admin; for something of a patient's, 404 `missing` first
    for a caller who may not see that patient. Refusals are audited by the policy."""
    _enforce(admin_decision(user, ctx, action, patient_id, **details), missing, "only admins may do this")
