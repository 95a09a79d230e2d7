"""Who may see which patient: the one access policy applied by every patient-data endpoint."""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request, status

from vigil.api.context import AppContext, context
from vigil.api.security import token_subject
from vigil.domain import Patient, User

SESSION_COOKIE = "vigil_session"


def _credentials(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return request.cookies.get(SESSION_COOKIE)


def optional_user(request: Request, ctx: AppContext = Depends(context)) -> User | None:
    token = _credentials(request)
    username = token_subject(token, ctx.session_secret) if token else None
    return ctx.store.get_user(username) if username else None


def current_user(user: User | None = Depends(optional_user)) -> User:
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "login required", headers={"WWW-Authenticate": "Bearer"})
    return user


def visible_patient_ids(user: User, ctx: AppContext) -> set[str] | None:
    """The patients this user may see; None means all (admins)."""
    if user.role == "admin":
        return None
    if user.role == "clinician":
        return ctx.store.assigned_patient_ids(user.username)
    return {user.patient_id} if user.patient_id else set()


def may_see(user: User, patient_id: str, ctx: AppContext) -> bool:
    visible = visible_patient_ids(user, ctx)
    return visible is None or patient_id in visible


def visible_patient(patient_id: str, user: User, ctx: AppContext) -> Patient:
    """The patient if this user may see it; otherwise 404, so existence is not revealed."""
    patient = ctx.store.get_patient(patient_id) if may_see(user, patient_id, ctx) else None
    if patient is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "patient not found")
    return patient


def require_clinical_role(user: User) -> None:
    """Acknowledging alerts and deciding recommendations is for clinicians and admins."""
    if user.role not in ("clinician", "admin"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only clinicians may do this")
