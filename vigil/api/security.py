"""Identities for people: argon2id password hashes and signed, short-lived session tokens."""

from __future__ import annotations

from datetime import timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from vigil.domain import User
from vigil.timeutil import utc_now

TOKEN_LIFETIME = timedelta(hours=8)
_hasher = PasswordHasher()
# Compared against when the user does not exist, so a login takes as long either way.
_DUMMY_HASH = _hasher.hash("vigil-no-such-user")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(user: User | None, password: str) -> bool:
    try:
        return _hasher.verify(user.password_hash if user else _DUMMY_HASH, password) and user is not None
    except (VerificationError, InvalidHashError):
        return False


def issue_token(username: str, secret: str, lifetime: timedelta = TOKEN_LIFETIME) -> str:
    now = utc_now()
    return jwt.encode({"sub": username, "iat": now, "exp": now + lifetime}, secret, algorithm="HS256")


def token_subject(token: str, secret: str) -> str | None:
    """The username a valid, unexpired token was issued to, else None."""
    try:
        return jwt.decode(token, secret, algorithms=["HS256"])["sub"]
    except (jwt.PyJWTError, KeyError):
        return None
