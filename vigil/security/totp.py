"""Optional second factor: RFC 6238 time-based one-time codes (30 s steps, 6 digits) through pyotp."""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp

STEP_SECONDS = 30
ISSUER = "Vigil"


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str) -> str:
    """The otpauth:// URI an authenticator app reads (usually from a QR code)."""
    return pyotp.TOTP(secret, interval=STEP_SECONDS).provisioning_uri(name=username, issuer_name=ISSUER)


def code_at(secret: str, step: int) -> str:
    return pyotp.TOTP(secret, interval=STEP_SECONDS).at(step * STEP_SECONDS)


def matching_step(secret: str, code: str | None, now: datetime) -> int | None:
    """The time step whose code this is (now, or one step either side for clock drift), else None."""
    if not code or not code.strip().isdigit():
        return None
    current = int(now.timestamp()) // STEP_SECONDS
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(code_at(secret, step), code.strip()):
            return step
    return None
