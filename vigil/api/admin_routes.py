"""The admin API: accounts, clinicians' assignments and devices. Admins only: the policy decides (and records a
refusal); vigil.admin makes and records each change, exactly as the `vigil` commands do."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from vigil import admin
from vigil.api.context import AppContext, context
from vigil.api.gates import admin_only, current_user
from vigil.api.schemas import (
    AssignmentOut,
    DeadLetterOut,
    DeviceOut,
    DeviceToken,
    DeviceWithToken,
    LockState,
    SessionsEnded,
    UnassignmentOut,
    UserLocked,
    UserOut,
)
from vigil.domain import Role, User
from vigil.errors import NotFound

router = APIRouter(prefix="/api/v1", tags=["admin"])
Ctx = Annotated[AppContext, Depends(context)]
CurrentUser = Annotated[User, Depends(current_user)]
Password = Annotated[str, Field(max_length=1024, description=f"at least {admin.MIN_PASSWORD_LENGTH} characters")]


class NewUser(BaseModel):
    username: str = Field(max_length=64, description="1-64 letters, digits or _ . @ -")
    role: Role
    password: Password
    patient_id: str | None = Field(default=None, max_length=64, description="for role patient: their patient id")


class NewPassword(BaseModel):
    password: Password


class Assignment(BaseModel):
    clinician: str = Field(max_length=64, description="the clinician's username")


class NewDevice(BaseModel):
    kind: str = Field(max_length=64, description="wearable, bp_cuff, cgm, pump, ...")


# -- accounts ------------------------------------------------------------------------------------
@router.get("/users")
def list_users(user: CurrentUser, ctx: Ctx) -> list[UserOut]:
    """Every account, with its role, patient (for patient accounts), one-time codes and lock state."""
    admin_only(user, ctx, "users.list")
    return [UserOut.model_validate(u) for u in admin.list_users(ctx, user)]


@router.post("/users", status_code=201)
def add_user(new: NewUser, user: CurrentUser, ctx: Ctx) -> UserOut:
    """Create a login; 422 naming the field at fault, 409 if the username is taken."""
    admin_only(user, ctx, "permission.user_add", username=new.username)
    return UserOut.model_validate(admin.add_user(ctx, user, new.username, new.role, new.password, new.patient_id))


@router.put("/users/{username}/password")
def set_password(username: str, new: NewPassword, user: CurrentUser, ctx: Ctx) -> SessionsEnded:
    """Set a user's password; every session and bearer token they hold ends."""
    admin_only(user, ctx, "permission.password", username=username)
    return SessionsEnded(username=username, sessions_ended=admin.set_password(ctx, user, username, new.password))


@router.post("/users/{username}/lock")
def lock_user(username: str, user: CurrentUser, ctx: Ctx) -> UserLocked:
    """No login until unlocked; every session and bearer token the user holds ends."""
    admin_only(user, ctx, "permission.lock", username=username)
    return UserLocked(username=username, locked=True, sessions_ended=admin.lock_user(ctx, user, username))


@router.post("/users/{username}/unlock")
def unlock_user(username: str, user: CurrentUser, ctx: Ctx) -> LockState:
    """Allow logins again (also lifting a lockout after failed logins)."""
    admin_only(user, ctx, "permission.unlock", username=username)
    admin.unlock_user(ctx, user, username)
    return LockState(username=username, locked=False)


@router.delete("/users/{username}/sessions")
def end_sessions(username: str, user: CurrentUser, ctx: Ctx) -> SessionsEnded:
    """Log a user out everywhere: every session and bearer token they hold ends."""
    admin_only(user, ctx, "permission.end_sessions", username=username)
    return SessionsEnded(username=username, sessions_ended=admin.end_sessions(ctx, user, username))


# -- clinicians' access to patients -----------------------------------------------------------------
@router.post("/patients/{patient_id}/assignments", status_code=201)
def assign(patient_id: str, assignment: Assignment, user: CurrentUser, ctx: Ctx) -> AssignmentOut:
    """Give a clinician access to this patient."""
    admin_only(user, ctx, "permission.assign", patient_id, clinician=assignment.clinician)
    admin.assign(ctx, user, patient_id, assignment.clinician)
    return AssignmentOut(patient_id=patient_id, clinician=assignment.clinician)


@router.delete("/patients/{patient_id}/assignments/{clinician}")
def unassign(patient_id: str, clinician: str, user: CurrentUser, ctx: Ctx) -> UnassignmentOut:
    """End a clinician's access to this patient."""
    admin_only(user, ctx, "permission.unassign", patient_id, clinician=clinician)
    admin.unassign(ctx, user, patient_id, clinician)
    return UnassignmentOut(patient_id=patient_id, clinician=clinician, assigned=False)


# -- devices -------------------------------------------------------------------------------------
@router.get("/patients/{patient_id}/devices")
def list_devices(patient_id: str, user: CurrentUser, ctx: Ctx) -> list[DeviceOut]:
    """This patient's devices (never their tokens)."""
    admin_only(user, ctx, "devices.list", patient_id)
    return [DeviceOut.model_validate(d) for d in admin.list_devices(ctx, user, patient_id)]


@router.post("/patients/{patient_id}/devices", status_code=201)
def add_device(patient_id: str, new: NewDevice, user: CurrentUser, ctx: Ctx) -> DeviceWithToken:
    """Register a device for this patient; its token is in this answer only, and stored only as a hash."""
    admin_only(user, ctx, "device.add", patient_id)
    device, token = admin.add_device(ctx, user, patient_id, new.kind)
    return DeviceWithToken(**vars(device), token=token)


def _device_admin_only(device_id: str, user: User, ctx: AppContext, action: str) -> None:
    """A device is its patient's: a caller who may not see that patient gets 404, as if there were no such device."""
    device = admin.find_device(ctx.store, device_id)
    if device is None:
        raise NotFound("device not found")
    admin_only(user, ctx, action, device.patient_id, "device not found", device_id=device_id)


@router.post("/devices/{device_id}/revoke")
def revoke_device(device_id: str, user: CurrentUser, ctx: Ctx) -> DeviceOut:
    """Refuse this device's readings from now on."""
    _device_admin_only(device_id, user, ctx, "device.revoke")
    return DeviceOut.model_validate(admin.revoke_device(ctx, user, device_id))


@router.post("/devices/{device_id}/rotate")
def rotate_device(device_id: str, user: CurrentUser, ctx: Ctx) -> DeviceToken:
    """A new token for this device, in this answer only; the old one stops working."""
    _device_admin_only(device_id, user, ctx, "device.rotate")
    return DeviceToken(device_id=device_id, token=admin.rotate_device(ctx, user, device_id))


# -- MQTT dead letters ---------------------------------------------------------------------------
@router.get("/mqtt/dead-letters")
def list_dead_letters(user: CurrentUser, ctx: Ctx) -> list[DeadLetterOut]:
    """The newest 1,000 broker messages acknowledged without being ingested, and why (never their bodies)."""
    admin_only(user, ctx, "dead_letters.list")
    return [DeadLetterOut.model_validate(letter) for letter in admin.list_dead_letters(ctx, user)]
