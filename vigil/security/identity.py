"""Identities for people: argon2id password hashes, login with lockout and optional one-time codes, signed tokens
that the store can end before they expire (logout, password change, locked account)."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from typing import Literal, Protocol

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from vigil.domain import User
from vigil.security.audit import AuditEvent, AuditLog, origin_details
from vigil.security.totp import matching_step
from vigil.timeutil import utc_now

Audience = Literal["api", "web"]
USERNAME_PATTERN = r"[A-Za-z0-9_.@-]{1,64}"
API_TOKEN_LIFETIME = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=8)
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
_hasher = PasswordHasher()
# Compared against when the user does not exist, so a login takes as long either way.
_DUMMY_HASH = _hasher.hash("vigil-no-such-user")


class AccountStore(AuditLog, Protocol):
    """What identities need from a store (``vigil.store.SqlStore`` is one): accounts, failed logins, used one-time
    code steps and sessions."""

    def get_user(self, username: str) -> User | None: ...

    def locked_until(self, username: str) -> datetime | None: ...

    def record_login_failure(self, username: str, limit: int, lock_until: datetime) -> bool: ...

    def clear_login_failures(self, username: str) -> None: ...

    def totp_secret(self, username: str) -> str | None: ...

    def claim_totp_step(self, username: str, step: int) -> bool: ...

    def add_session(self, jti: str, username: str, audience: str, expires_at: datetime) -> None: ...

    def session_active(self, jti: str, username: str, audience: str) -> bool: ...

    def end_session(self, jti: str) -> bool: ...


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(user: User | None, password: str) -> bool:
    try:
        return _hasher.verify(user.password_hash if user else _DUMMY_HASH, password) and user is not None
    except (VerificationError, InvalidHashError):
        return False


def authenticate(store: AccountStore, username: str, password: str, code: str | None = None) -> User | None:
    """The user if password (and one-time code, when enabled) are right and the account is not locked.

    Every attempt is audited. A locked account (after failures, or by an admin), a wrong password, a
    wrong code and an unknown user all return None alike, so a client cannot tell them apart; the fifth
    failure in a row locks the username for 15 minutes.
    """
    if not re.fullmatch(USERNAME_PATTERN, username):  # no account has such a name: nothing to look up or count
        verify_password(None, password)
        store.append_audit(
            [AuditEvent("user:?", "login", None, "login", "failed", {"username": username, **origin_details()})]
        )
        return None
    user = store.get_user(username)
    password_ok = verify_password(user, password)  # run even when locked: the answer takes as long
    locked_until = store.locked_until(username)  # read after the slow check: failures meanwhile count
    locked = (locked_until is not None and locked_until > utc_now()) or (user is not None and user.locked)
    if locked:
        outcome = "locked"
    elif password_ok and user is not None and _second_factor_ok(store, user, code):
        store.clear_login_failures(username)
        outcome = "ok"
    else:
        outcome = "locked" if store.record_login_failure(username, MAX_FAILED_LOGINS, utc_now() + LOCKOUT) else "failed"
    store.append_audit([AuditEvent(f"user:{username}", "login", None, "login", outcome, origin_details())])
    return user if outcome == "ok" else None


def _second_factor_ok(store: AccountStore, user: User, code: str | None) -> bool:
    """No one-time codes for this user, or a valid code whose time step was not used before."""
    if not user.totp_enabled:
        return True
    secret = store.totp_secret(user.username)
    if secret is None:
        return False
    step = matching_step(secret, code, utc_now())
    return step is not None and store.claim_totp_step(user.username, step)


def issue_token(
    store: AccountStore,
    username: str,
    secret: str,
    audience: Audience = "api",
    lifetime: timedelta = API_TOKEN_LIFETIME,
) -> str:
    """A signed token for `audience`: 'api' bearer tokens (15 min) or 'web' session cookies (8 h), recorded
    under a random id (`jti`) so that it can be ended before it expires."""
    now, jti = utc_now(), secrets.token_urlsafe(16)
    store.add_session(jti, username, audience, now + lifetime)
    claims = {"sub": username, "aud": audience, "jti": jti, "iat": now, "exp": now + lifetime}
    return jwt.encode(claims, secret, algorithm="HS256")


def _claims(token: str, secret: str, audience: Audience) -> dict | None:
    try:
        return jwt.decode(
            token, secret, algorithms=["HS256"], audience=audience, options={"require": ["exp", "sub", "jti"]}
        )
    except jwt.PyJWTError:
        return None


def session_user(store: AccountStore, token: str, secret: str, audience: Audience = "api") -> User | None:
    """The user of a validly signed, unexpired token for this audience whose session has not ended, unless locked."""
    claims = _claims(token, secret, audience)
    if claims is None or not store.session_active(claims["jti"], claims["sub"], audience):
        return None
    user = store.get_user(claims["sub"])
    return user if user is not None and not user.locked else None


def end_session(store: AccountStore, token: str, secret: str, audience: Audience = "api") -> bool:
    """End the session of this token (it is refused from now on); False if the token is not valid or already ended."""
    claims = _claims(token, secret, audience)
    return claims is not None and store.end_session(claims["jti"])
