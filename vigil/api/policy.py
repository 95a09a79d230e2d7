"""Who may see which patient and who may manage accounts and devices: the one access policy, applied and
audited by every patient-data endpoint, admin endpoint, dashboard page, export and command.

Admins see every patient, clinicians their assigned patients, a patient only themselves. A patient
the caller may not see is answered exactly like one that does not exist (404). Only admins manage
users, assignments and devices. Every decision, allowed or denied, is appended to the audit log with
who asked, from where, and for what.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from fastapi import Depends, Request

from vigil.api.context import AppContext, context
from vigil.api.security import Audience, end_session, session_user
from vigil.domain import Patient, Role, User
from vigil.errors import Forbidden, NotFound, Unauthorised
from vigil.security.audit import AuditEvent, current_origin, origin_details
from vigil.security.csrf import CSRF_COOKIE, CSRF_HEADER, SAFE_METHODS, csrf_ok
from vigil.store import SqlStore

SESSION_COOKIE = "vigil_session"
CLINICAL_ROLES = ("clinician", "admin")


class HasStore(Protocol):
    """What the gates need from their caller: the store. An AppContext has one; commands use StoreOnly."""

    store: SqlStore


@dataclass(frozen=True)
class StoreOnly:
    store: SqlStore


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
    if user and credential.audience == "web" and request.method not in SAFE_METHODS and not csrf_ok(
        request.cookies.get(CSRF_COOKIE), request.headers.get(CSRF_HEADER)
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


def operator() -> User:
    """Whoever runs a `vigil` command on the server: they hold the keys and the database, so they act as admin."""
    return User(f"cli:{getpass.getuser()}", Role.ADMIN, "")


def actor_of(user: User) -> str:
    """user:NAME for people; the operator's name (cli:NAME) as it is. Usernames cannot contain ':'."""
    return user.username if ":" in user.username else f"user:{user.username}"


# -- the rule ------------------------------------------------------------------------------------
def patient_ids_visible_to(user: User, store: SqlStore) -> set[str]:
    if user.role == "admin":
        return store.all_patient_ids()
    if user.role == "clinician":
        return store.assigned_patient_ids(user.username)
    return {user.patient_id} if user.patient_id else set()


# -- the gates: check, then record ---------------------------------------------------------------
def record(ctx: HasStore, user: User, action: str, patient_id: str | None = None, outcome: str = "ok", **details) -> None:
    """Append one access or change by this user to the audit log."""
    origin = current_origin.get()
    resource = f"{origin.method} {origin.path}" if origin else "cli"
    event = AuditEvent(actor_of(user), action, patient_id, resource, outcome, {**details, **origin_details()})
    ctx.store.append_audit([event])


def _patient_if_visible(patient_id: str, user: User, ctx: HasStore) -> Patient | None:
    return ctx.store.get_patient(patient_id) if patient_id in patient_ids_visible_to(user, ctx.store) else None


def visible_patient(patient_id: str, user: User, ctx: HasStore, action: str = "read") -> Patient:
    """The patient if this user may see it (the access is audited); otherwise 404, existence not revealed."""
    patient = _patient_if_visible(patient_id, user, ctx)
    record(ctx, user, action, patient_id, "ok" if patient else "denied")
    if patient is None:
        raise NotFound("patient not found")
    return patient


def visible_patient_ids(user: User, ctx: HasStore, action: str = "read") -> set[str]:
    """The patients this user may see, for a response listing several; audited with their ids."""
    ids = patient_ids_visible_to(user, ctx.store)
    record(ctx, user, action, patients=sorted(ids))
    return ids


def clinical_action(patient_id: str, user: User, ctx: HasStore, action: str, missing: str, **details) -> Patient:
    """Acknowledging alerts and deciding recommendations: the patient must be visible (else 404 `missing`,
    as if the thing acted on did not exist) and the user a clinician or admin (else 403); audited either way."""
    patient = _patient_if_visible(patient_id, user, ctx)
    allowed = patient is not None and user.role in CLINICAL_ROLES
    record(ctx, user, action, patient_id, "ok" if allowed else "denied", **details)
    if patient is None:
        raise NotFound(missing)
    if not allowed:
        raise Forbidden("only clinicians may do this")
    return patient


def admin_only(user: User, ctx: HasStore, action: str, patient_id: str | None = None, missing: str = "patient not found",
               **details) -> None:
    """Managing users, assignments and devices: admins only (else 403). For something of a patient's, a caller
    who may not see that patient gets 404 `missing` first, as for any patient data. A refusal is recorded here;
    an admin's change is recorded by vigil.admin once it is made."""
    visible = patient_id is None or _patient_if_visible(patient_id, user, ctx) is not None
    if visible and user.role == "admin":
        return
    record(ctx, user, action, patient_id, "denied", **details)
    if not visible:
        raise NotFound(missing)
    raise Forbidden("only admins may do this")
