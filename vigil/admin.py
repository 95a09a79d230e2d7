"""Managing patients, accounts, clinicians' access to patients, and devices: the one implementation behind the admin
API and the `vigil users|patients|devices|audit show` commands. Each change is recorded in the audit log as its actor's."""

from __future__ import annotations

import fcntl
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Protocol

from vigil.config import Settings
from vigil.domain import DeadLetter, Device, Patient, Role, User
from vigil.errors import AlreadyExists, InvalidInput, NotFound
from vigil.ingest.mosquitto import SERVICE_PASSWORD_SECRET, reload_broker, write_broker_files
from vigil.security.audit import AuditEntry
from vigil.security.identity import USERNAME_PATTERN, hash_password
from vigil.security.policy import patient_access, record, visible_patient_ids
from vigil.security.totp import new_secret, provisioning_uri
from vigil.store import SqlStore

ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"  # patient and device ids; anything else names nothing, so is never looked up
KIND_PATTERN = r"[A-Za-z0-9_. -]{1,64}"
MIN_PASSWORD_LENGTH = 8


class AdminContext(Protocol):
    """What a change needs: the store, and the settings saying where Mosquitto's files live. An AppContext has both."""

    store: SqlStore
    settings: Settings


@dataclass(frozen=True)
class CommandContext:
    store: SqlStore
    settings: Settings


def _well_formed(pattern: str, value: str | None) -> bool:
    return value is not None and re.fullmatch(pattern, value) is not None


def _patient_exists(store: SqlStore, patient_id: str | None) -> bool:
    return _well_formed(ID_PATTERN, patient_id) and store.get_patient(patient_id) is not None


def _user_named(store: SqlStore, username: str) -> User | None:
    return store.get_user(username) if _well_formed(USERNAME_PATTERN, username) else None


# -- patients ------------------------------------------------------------------------------------
def add_patient(
    ctx: AdminContext,
    actor: User,
    name: str,
    birth_date: str | None = None,
    sex: str | None = None,
    conditions: list[str] | None = None,
    phone: str | None = None,
    email: str | None = None,
    address: str | None = None,
    notes: str | None = None,
) -> Patient:
    """Register a patient; name, birth date, contact details and notes are stored encrypted."""
    if birth_date and not _is_date(birth_date):
        raise InvalidInput(f"{birth_date!r} is not a date in YYYY-MM-DD form", field="birth_date")
    if not name.strip():
        raise InvalidInput("must not be empty", field="name")
    patient = ctx.store.add_patient(name.strip(), birth_date, sex, conditions or [], phone, email, address, notes)
    record(ctx, actor, "patient.add", patient.patient_id)
    return patient


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def list_patients(ctx: AdminContext, actor: User) -> list[Patient]:
    """Every patient the actor may see (an audited read)."""
    return ctx.store.list_patients(visible_patient_ids(actor, ctx, "patients.list"))


def patient_audit_trail(ctx: AdminContext, actor: User, patient_id: str) -> list[AuditEntry]:
    """Who read or changed this patient's data, and when (itself an audited read)."""
    if patient_access(patient_id, actor, ctx, "audit.show") is None:
        raise NotFound(f"no patient {patient_id!r}", field="patient_id")
    return ctx.store.audit_entries_for_patient(patient_id)


# -- accounts ------------------------------------------------------------------------------------
def check_new_user(store: SqlStore, username: str, role: str, patient_id: str | None) -> None:
    """Why this account cannot be created (InvalidInput or AlreadyExists naming the field), if it cannot."""
    if role not in set(Role):
        raise InvalidInput(f"{role!r} is not one of {', '.join(Role)}", field="role")
    if not _well_formed(USERNAME_PATTERN, username):
        raise InvalidInput("1-64 letters, digits or _ . @ -", field="username")
    if role == Role.PATIENT and not _patient_exists(store, patient_id):
        raise InvalidInput(f"role patient needs an existing patient id, got {patient_id!r}", field="patient_id")
    if role != Role.PATIENT and patient_id is not None:
        raise InvalidInput(f"only for role patient, not {role}", field="patient_id")
    if store.get_user(username) is not None:
        raise AlreadyExists(f"{username!r} already exists", field="username")


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"must be at least {MIN_PASSWORD_LENGTH} characters", field="password")


def add_user(
    ctx: AdminContext, actor: User, username: str, role: str, password: str, patient_id: str | None = None
) -> User:
    check_new_user(ctx.store, username, role, patient_id)
    check_password(password)
    user = ctx.store.add_user(username, Role(role), hash_password(password), patient_id)
    record(ctx, actor, "permission.user_add", patient_id, username=username, role=role)
    return user


def list_users(ctx: AdminContext, actor: User) -> list[User]:
    """Every account (never a password hash leaves); a read naming the patients that patient accounts belong to."""
    users = ctx.store.list_users()
    record(ctx, actor, "users.list", patients=sorted({u.patient_id for u in users if u.patient_id}))
    return users


def _existing_user(store: SqlStore, username: str) -> User:
    user = _user_named(store, username)
    if user is None:
        raise NotFound(f"no user {username!r}", field="username")
    return user


def set_password(ctx: AdminContext, actor: User, username: str, password: str) -> int:
    """A new password; every session and bearer token of the user ends. Returns how many were still open."""
    _existing_user(ctx.store, username)
    check_password(password)
    ended = ctx.store.set_password(username, hash_password(password))
    record(ctx, actor, "permission.password", username=username, sessions_ended=ended)
    return ended


def lock_user(ctx: AdminContext, actor: User, username: str) -> int:
    """No login until unlocked; every session and bearer token of the user ends. Returns how many were still open."""
    _existing_user(ctx.store, username)
    ended = ctx.store.lock_user(username)
    record(ctx, actor, "permission.lock", username=username, sessions_ended=ended)
    return ended


def unlock_user(ctx: AdminContext, actor: User, username: str) -> None:
    """Logins allowed again (also lifting a lockout after failed logins)."""
    _existing_user(ctx.store, username)
    ctx.store.unlock_user(username)
    record(ctx, actor, "permission.unlock", username=username)


def set_totp(ctx: AdminContext, actor: User, username: str, enabled: bool) -> str | None:
    """Require a one-time code (RFC 6238) at this user's login, or no longer; returns the provisioning URI of the
    new secret (to show once), None when turned off."""
    _existing_user(ctx.store, username)
    secret = new_secret() if enabled else None
    ctx.store.set_totp_secret(username, secret)
    record(ctx, actor, "permission.totp", username=username, enabled=enabled)
    return provisioning_uri(secret, username) if secret else None


def end_sessions(ctx: AdminContext, actor: User, username: str) -> int:
    """Log a user out everywhere: every session and bearer token ends. Returns how many were still open."""
    _existing_user(ctx.store, username)
    ended = ctx.store.end_sessions(username)
    record(ctx, actor, "permission.end_sessions", username=username, sessions_ended=ended)
    return ended


# -- clinicians' access to patients -----------------------------------------------------------------
def assign(ctx: AdminContext, actor: User, patient_id: str, clinician: str) -> None:
    """Give a clinician access to a patient."""
    user = _user_named(ctx.store, clinician)
    if user is None or user.role != Role.CLINICIAN:
        raise InvalidInput(f"no clinician named {clinician!r}", field="clinician")
    if not _patient_exists(ctx.store, patient_id):
        raise NotFound(f"no patient {patient_id!r}", field="patient_id")
    ctx.store.assign(patient_id, clinician)
    record(ctx, actor, "permission.assign", patient_id, clinician=clinician)


def unassign(ctx: AdminContext, actor: User, patient_id: str, clinician: str) -> None:
    """End a clinician's access to a patient."""
    if _user_named(ctx.store, clinician) is None or not ctx.store.unassign(patient_id, clinician):
        raise NotFound(f"{clinician!r} is not assigned to patient {patient_id!r}", field="clinician")
    record(ctx, actor, "permission.unassign", patient_id, clinician=clinician)


# -- devices -------------------------------------------------------------------------------------
def broker_directory(settings: Settings) -> Path:
    """Where `vigil mqtt config` writes Mosquitto's files unless told otherwise."""
    return settings.home / "mosquitto"


def refresh_broker_files(settings: Settings, store: SqlStore) -> None:
    """Keep Mosquitto's password and ACL files in step with the registry once they exist (`vigil mqtt config`),
    one writer at a time so the files always hold the registry as it was last read; a broker started from
    Vigil's config is told to reload them, so a revoked or rotated-out token is refused at once."""
    directory = broker_directory(settings)
    if not (directory / "passwd").exists():
        return
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        write_broker_files(directory, store.mqtt_credentials(), settings.secret(SERVICE_PASSWORD_SECRET))
        reload_broker(directory)


def add_device(ctx: AdminContext, actor: User, patient_id: str, kind: str) -> tuple[Device, str]:
    """Register a device for a patient; returns it with its token, which is stored only as a hash."""
    if not _well_formed(KIND_PATTERN, kind.strip()):
        raise InvalidInput("1-64 letters, digits, spaces or _ . - (e.g. wearable, bp_cuff, cgm)", field="kind")
    if not _patient_exists(ctx.store, patient_id):
        raise NotFound(f"no patient {patient_id!r}", field="patient_id")
    device, token = ctx.store.add_device(patient_id, kind.strip())
    record(ctx, actor, "device.add", patient_id, device_id=device.device_id)
    refresh_broker_files(ctx.settings, ctx.store)
    return device, token


def list_devices(ctx: AdminContext, actor: User, patient_id: str | None = None) -> list[Device]:
    """A patient's devices (or everyone's), never their tokens; a read naming the patients they belong to."""
    devices = ctx.store.list_devices(patient_id)
    record(ctx, actor, "devices.list", patient_id, patients=sorted({d.patient_id for d in devices}))
    return devices


def list_dead_letters(ctx: AdminContext, actor: User, limit: int = 1000) -> list[DeadLetter]:
    """Broker messages acknowledged without being ingested, newest first (hash and size, never the body); audited."""
    letters = ctx.store.list_dead_letters(limit)
    record(ctx, actor, "dead_letters.list", count=len(letters))
    return letters


def find_device(store: SqlStore, device_id: str) -> Device | None:
    return store.get_device(device_id) if _well_formed(ID_PATTERN, device_id) else None


def _existing_device(store: SqlStore, device_id: str) -> Device:
    device = find_device(store, device_id)
    if device is None:
        raise NotFound(f"no device {device_id!r}", field="device_id")
    return device


def revoke_device(ctx: AdminContext, actor: User, device_id: str) -> Device:
    """Refuse the device's readings from now on (HTTP at once; MQTT once Mosquitto reloads its files)."""
    device = _existing_device(ctx.store, device_id)
    ctx.store.revoke_device(device_id)
    record(ctx, actor, "device.revoke", device.patient_id, device_id=device_id)
    refresh_broker_files(ctx.settings, ctx.store)
    return ctx.store.get_device(device_id)


def rotate_device(ctx: AdminContext, actor: User, device_id: str) -> str:
    """A new token for the device (returned once; the old one stops working), re-enabling a revoked device."""
    device = _existing_device(ctx.store, device_id)
    token = ctx.store.rotate_device_token(device_id)
    record(ctx, actor, "device.rotate", device.patient_id, device_id=device_id)
    refresh_broker_files(ctx.settings, ctx.store)
    return token
