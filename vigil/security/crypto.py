"""Encryption at rest: a ring of AES-256-GCM keys and per-field ciphertexts bound to their row and column."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vigil.config import Settings, private_directory, write_private_json
from vigil.errors import VigilError
from vigil.security.audit import AUDIT_KEY_FILE

FORMAT = "v1"
KEY_FILE = "field-keys.json"
KEY_BYTES = 32
NONCE_BYTES = 12


class CryptoError(VigilError):
    """Base for key problems (a server-side failure: 500); never carries key material in its message."""

    code = "crypto_error"


class DecryptionError(CryptoError):
    """A ciphertext that is malformed, under an unknown key, or was moved to another row or field."""

    code = "decryption_failed"


class UnknownKeyError(DecryptionError):
    """A ciphertext under a key this ring does not hold (e.g. one made by a rotation since the ring was loaded)."""

    code = "unknown_key"


class KeyConfigError(CryptoError):
    """VIGIL_KEY or the key file cannot be used."""

    code = "key_config"


def key_id(key: bytes) -> str:
    """A short, stable name for a key (a truncated SHA-256 of it): ciphertexts say which key they need."""
    return hashlib.sha256(b"vigil-key-id:" + key).hexdigest()[:12]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


@dataclass(frozen=True)
class KeyRing:
    """Keys by id; `current` encrypts, every key in the ring decrypts."""

    keys: dict[str, bytes]
    current: str

    @classmethod
    def of(cls, keys: Iterable[bytes]) -> KeyRing:
        """A ring of these keys; the first one encrypts."""
        ordered = list(keys)
        for key in ordered:
            if len(key) != KEY_BYTES:
                raise KeyConfigError(f"an encryption key must be {KEY_BYTES} bytes, got {len(key)}")
        if not ordered:
            raise KeyConfigError("no encryption key")
        return cls({key_id(k): k for k in ordered}, key_id(ordered[0]))

    @classmethod
    def generate(cls) -> KeyRing:
        return cls.of([secrets.token_bytes(KEY_BYTES)])

    def with_new_current_key(self) -> KeyRing:
        """This ring plus a fresh key that encrypts from now on; the old keys still decrypt."""
        return KeyRing.of([secrets.token_bytes(KEY_BYTES), *self.keys.values()])

    def retaining(self, key_ids: set[str]) -> KeyRing:
        """This ring with only the current key and those in `key_ids`."""
        return KeyRing(
            {kid: key for kid, key in self.keys.items() if kid in key_ids or kid == self.current}, self.current
        )

    def encrypt(self, plaintext: str, context: str) -> str:
        """`v1:<key id>:<nonce>:<ciphertext>`; `context` (table.column:row id) is authenticated, not stored."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(self.keys[self.current]).encrypt(nonce, plaintext.encode(), context.encode())
        return f"{FORMAT}:{self.current}:{_b64(nonce)}:{_b64(sealed)}"

    def decrypt(self, token: str, context: str) -> str:
        kid, nonce, sealed = _parts(token)
        if kid not in self.keys:
            raise UnknownKeyError(f"{context}: encrypted under key {kid}, which is not in the key ring")
        try:
            return AESGCM(self.keys[kid]).decrypt(nonce, sealed, context.encode()).decode()
        except InvalidTag:
            raise DecryptionError(f"{context}: ciphertext does not belong here or was altered") from None

    def to_json(self) -> dict:
        return {"current": self.current, "keys": {kid: _b64(key) for kid, key in self.keys.items()}}

    @classmethod
    def from_json(cls, value: dict) -> KeyRing:
        keys = {kid: _unb64(text) for kid, text in value["keys"].items()}
        ring = cls.of([keys[value["current"]], *(k for kid, k in keys.items() if kid != value["current"])])
        if set(ring.keys) != set(keys):
            raise KeyConfigError("key file: a key id does not match its key")
        return ring


def is_ciphertext(value: str) -> bool:
    return value.startswith(FORMAT + ":")


def ciphertext_key_id(token: str) -> str:
    return _parts(token)[0]


def _parts(token: str) -> tuple[str, bytes, bytes]:
    pieces = token.split(":")
    if len(pieces) != 4 or pieces[0] != FORMAT:
        raise DecryptionError("not a Vigil ciphertext")
    try:
        return pieces[1], _unb64(pieces[2]), _unb64(pieces[3])
    except ValueError:
        raise DecryptionError("not a Vigil ciphertext") from None


# -- where keys live ----------------------------------------------------------------------------
def keyring_from_env(value: str) -> KeyRing:
    """VIGIL_KEY: one base64 key, or several separated by commas (the first encrypts, all decrypt)."""
    try:
        return KeyRing.of(_unb64(part.strip()) for part in value.split(",") if part.strip())
    except ValueError:
        raise KeyConfigError("VIGIL_KEY: not base64 (give 32 random bytes, e.g. `openssl rand -base64 32`)") from None


def load_keyring(settings: Settings) -> KeyRing:
    """VIGIL_KEY if set, else VIGIL_HOME/keys/field-keys.json, created (mode 0600) on first use."""
    if settings.field_key:
        return keyring_from_env(settings.field_key)
    path = settings.keys_dir / KEY_FILE
    if not path.exists():
        _create_key_file(settings)
    try:
        return KeyRing.from_json(json.loads(path.read_text()))
    except (ValueError, KeyError) as error:
        raise KeyConfigError(f"{path}: not a Vigil key file ({type(error).__name__})") from None


def _create_key_file(settings: Settings) -> None:
    """Create the first key without overwriting one another process created meanwhile."""
    private_directory(settings.keys_dir)
    path = settings.keys_dir / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as handle:
        json.dump(KeyRing.generate().to_json(), handle)


@dataclass(frozen=True)
class StoreKeys:
    """What the store needs: the field key ring, the HMAC key of the audit chain, and how to load them again
    (a running server meets a key that `vigil keys rotate` created after it started)."""

    field: KeyRing
    audit: bytes
    reload: Callable[[], StoreKeys] | None = None


def load_store_keys(settings: Settings) -> StoreKeys:
    return StoreKeys(
        load_keyring(settings), settings.secret(AUDIT_KEY_FILE).encode(), lambda: load_store_keys(settings)
    )


def save_keyring(settings: Settings, ring: KeyRing) -> None:
    """Replace the key file atomically (mode 0600); refused when the keys come from VIGIL_KEY."""
    if settings.field_key:
        raise KeyConfigError("keys come from VIGIL_KEY: change VIGIL_KEY instead of the key file")
    write_private_json(settings.keys_dir / KEY_FILE, ring.to_json())
