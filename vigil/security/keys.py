"""Rotating the keys that encrypt identifiers at rest: everything under a new key, old keys kept until nothing needs them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from vigil.config import Settings
from vigil.domain import User
from vigil.security.audit import AuditLog
from vigil.security.crypto import KeyConfigError, KeyRing, StoreKeys, save_keyring
from vigil.security.policy import audit_event


class EncryptedStore(AuditLog, Protocol):
    """What rotation needs from a store (``vigil.store.SqlStore`` is one): its keys, and its encrypted values."""

    keys: StoreKeys

    def reencrypt_identifiers(self) -> int: ...

    def key_ids_in_use(self) -> set[str]: ...


@dataclass(frozen=True)
class KeyRotation:
    key_id: str  # the key everything is under now
    reencrypted: int
    no_longer_needed: list[str]  # key ids no stored value needs any more


def rotate_field_keys(settings: Settings, store: EncryptedStore, actor: User) -> KeyRotation:
    """Encrypt every identifier under a new key, retiring the keys nothing needs then; safe to interrupt and rerun.

    With VIGIL_KEY the operator puts the new key first (VIGIL_KEY=NEW,OLD) and this moves everything to it;
    KeyConfigError if everything is under its first key already. Recorded in the audit log as `actor`'s.
    """
    ring = _ring_to_rotate_to(settings, store)
    changed = store.reencrypt_identifiers()
    in_use = store.key_ids_in_use()
    retired = sorted(set(ring.keys) - in_use - {ring.current})
    if not settings.field_key:
        save_keyring(settings, ring.retaining(in_use))  # a key still needed (written meanwhile) stays
    store.append_audit([audit_event(actor, "keys.rotate", key_id=ring.current, reencrypted=changed)])
    return KeyRotation(ring.current, changed, retired)


def _ring_to_rotate_to(settings: Settings, store: EncryptedStore) -> KeyRing:
    """VIGIL_KEY's ring (which must start with a new key), or the key file's ring plus a new key, saved and in use."""
    ring = store.keys.field
    if settings.field_key:
        if store.key_ids_in_use() <= {ring.current}:
            raise KeyConfigError(
                "VIGIL_KEY: everything is under its first key already; put a new key first "
                "(VIGIL_KEY=NEW,OLD, a new key from `openssl rand -base64 32`) and run this again"
            )
        return ring
    ring = ring.with_new_current_key()
    save_keyring(settings, ring)  # before re-encrypting: an interrupted run leaves every value readable
    store.keys = replace(store.keys, field=ring)
    return ring
