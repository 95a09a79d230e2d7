"""Mosquitto's password hash, for the broker's password file and the device registry that keeps one per device."""

from __future__ import annotations

import base64
import hashlib
import secrets

_ITERATIONS = 101  # mosquitto_passwd's own default for $7$ (PBKDF2-SHA512)


def mosquitto_password_hash(password: str, salt: bytes | None = None, iterations: int = _ITERATIONS) -> str:
    """The '$7$' PBKDF2-SHA512 hash that Mosquitto 2 reads from its password file."""
    salt = salt or secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, dklen=64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
