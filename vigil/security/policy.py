"""Who may see which patient and who may manage accounts and devices: the one access policy, applied and
audited by every patient-data endpoint, admin endpoint, dashboard page, export and command.

Admins see every patient, clinicians their assigned patients, a patient only themselves. A patient
the caller may not see is answered exactly like one that does not exist (404). Only admins manage
users, assignments and devices. Every decision, allowed or denied, is appended to the audit log with
who asked, from where, and for what. ``vigil.api.gates`` gives the decisions their HTTP answers.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Literal, Protocol

from vigil.domain import Patient, Role, User
from vigil.security.audit import AuditEvent, AuditLog, current_origin, origin_details

CLINICAL_ROLES = ("clinician", "admin")
Decision = Literal["allowed", "hidden", "forbidden"]
"""A gate's answer: allowed; hidden (the caller may not see the patient: answered as if it did not exist, 404);
forbidden (the caller sees the patient but may not do this, 403)."""


class PatientDirectory(AuditLog, Protocol):
    """What the policy needs from a store (``vigil.store.SqlStore`` is one): the patients, who is assigned to whom,
    and the audit log."""

    def get_patient(self, patient_id: str) -> Patient | None: ...

    def all_patient_ids(self) -> set[str]: ...

    def assigned_patient_ids(self, username: str) -> set[str]: ...


class HasStore(Protocol):
    """What the gates need from their caller: the store. An AppContext has one; commands use StoreOnly."""

    @property
    def store(self) -> PatientDirectory: ...


@dataclass(frozen=True)
class StoreOnly:
    store: PatientDirectory


# -- who is asking -------------------------------------------------------------------------------
def operator() -> User:
    """Whoever runs a `vigil` command on the server: they hold the keys and the database, so they act as admin."""
    return User(f"cli:{getpass.getuser()}", Role.ADMIN, "")


def actor_of(user: User) -> str:
    """user:NAME for people; the operator's name (cli:NAME) as it is. Usernames cannot contain ':'."""
    return user.username if ":" in user.username else f"user:{user.username}"


# -- the rule ------------------------------------------------------------------------------------
def patient_ids_visible_to(user: User, store: PatientDirectory) -> set[str]:
    if user.role == "admin":
        return store.all_patient_ids()
    if user.role == "clinician":
        return store.assigned_patient_ids(user.username)
    return {user.patient_id} if user.patient_id else set()


# -- the gates: check, then record ---------------------------------------------------------------
def audit_event(user: User, action: str, patient_id: str | None = None, outcome: str = "ok", **details) -> AuditEvent:
    """One access or change by this user, with the request it came from (none: a command)."""
    origin = current_origin.get()
    resource = f"{origin.method} {origin.path}" if origin else "cli"
    return AuditEvent(actor_of(user), action, patient_id, resource, outcome, {**details, **origin_details()})


def record(
    ctx: HasStore, user: User, action: str, patient_id: str | None = None, outcome: str = "ok", **details
) -> None:
    """Append one access or change by this user to the audit log."""
    ctx.store.append_audit([audit_event(user, action, patient_id, outcome, **details)])


def _patient_if_visible(patient_id: str, user: User, ctx: HasStore) -> Patient | None:
    return ctx.store.get_patient(patient_id) if patient_id in patient_ids_visible_to(user, ctx.store) else None


def patient_access(patient_id: str, user: User, ctx: HasStore, action: str = "read") -> Patient | None:
    """The patient if this user may see it, else None (also for one that does not exist); audited either way."""
    patient = _patient_if_visible(patient_id, user, ctx)
    record(ctx, user, action, patient_id, "ok" if patient else "denied")
    return patient


def visible_patient_ids(user: User, ctx: HasStore, action: str = "read") -> set[str]:
    """The patients this user may see, for a response listing several; audited with their ids."""
    ids = patient_ids_visible_to(user, ctx.store)
    record(ctx, user, action, patients=sorted(ids))
    return ids


def clinical_decision(patient_id: str, user: User, ctx: HasStore, action: str, **details) -> Decision:
    """Acknowledging alerts and deciding recommendations: the patient must be visible and the user a clinician or
    admin; audited either way."""
    patient = _patient_if_visible(patient_id, user, ctx)
    decision: Decision = "hidden" if patient is None else "allowed" if user.role in CLINICAL_ROLES else "forbidden"
    record(ctx, user, action, patient_id, "ok" if decision == "allowed" else "denied", **details)
    return decision


def admin_decision(user: User, ctx: HasStore, action: str, patient_id: str | None = None, **details) -> Decision:
    """Managing users, assignments and devices: admins only. For something of a patient's, a caller who may not see
    that patient is refused as hidden first, as for any patient data. A refusal is recorded here; an admin's change
    is recorded by vigil.admin once it is made."""
    visible = patient_id is None or _patient_if_visible(patient_id, user, ctx) is not None
    if visible and user.role == "admin":
        return "allowed"
    record(ctx, user, action, patient_id, "denied", **details)
    return "forbidden" if visible else "hidden"
