"""The audit trail: an append-only log of who read or changed what, each entry chained to the one before.

Every entry carries the previous entry's hash and a SHA-256 over a canonical serialisation of its own
fields including that hash, so editing, reordering or deleting an entry breaks the chain from there on.
Each hash is also keyed with an HMAC under a key kept outside the database (VIGIL_HOME/keys), so someone
who can write the database but not read the key cannot rebuild a consistent chain after tampering.
Deleting the newest entries leaves a shorter chain that is still intact: a head (seq and hash) noted
earlier and kept elsewhere shows that cut.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from vigil.errors import InvalidInput

GENESIS_HASH = "0" * 64
AUDIT_KEY_FILE = "audit-hmac.key"
SYSTEM_ACTOR = "system"


@dataclass(frozen=True)
class AuditEvent:
    """Something to record: who (user:NAME, device:ID, cli:NAME, system) did what, to whose data, with what outcome."""

    actor: str
    action: str
    patient_id: str | None = None
    resource: str = ""
    outcome: str = "ok"
    details: dict[str, Any] = field(default_factory=dict)


class AuditLog(Protocol):
    """Where audit events are appended, in order, each chained to the one before (``vigil.store.SqlStore`` is one)."""

    def append_audit(self, events: Sequence[AuditEvent]) -> list[AuditEntry]: ...


@dataclass(frozen=True)
class AuditEntry:
    """One stored link of the chain."""

    seq: int
    time: str
    actor: str
    action: str
    patient_id: str | None
    resource: str
    outcome: str
    details: str  # canonical JSON, hashed as stored
    prev_hash: str
    hash: str
    mac: str

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "actor": self.actor,
            "action": self.action,
            "patient_id": self.patient_id,
            "resource": self.resource,
            "outcome": self.outcome,
            "details": orjson.loads(self.details),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def canonical_details(details: dict[str, Any]) -> str:
    return orjson.dumps(details, option=orjson.OPT_SORT_KEYS).decode()


def _entry_hash(seq: int, time: str, event_fields: tuple, details: str, prev_hash: str) -> str:
    payload = orjson.dumps([seq, time, *event_fields, details, prev_hash])
    return hashlib.sha256(payload).hexdigest()


def _mac(key: bytes, entry_hash: str) -> str:
    return hmac.new(key, entry_hash.encode(), hashlib.sha256).hexdigest()


def _storable(text: str | None) -> str | None:
    """Text as a database column holds it: PostgreSQL refuses NUL, which a request path or id may carry."""
    return text.replace("\x00", "\ufffd") if text else text


def next_entry(prev_seq: int, prev_hash: str, event: AuditEvent, time: str, key: bytes) -> AuditEntry:
    """The entry after entry `prev_seq` (0 and GENESIS_HASH: the first entry) recording `event`."""
    seq = prev_seq + 1
    details = canonical_details(event.details)
    actor, action, patient_id, resource, outcome = (
        _storable(f) for f in (event.actor, event.action, event.patient_id, event.resource, event.outcome)
    )
    fields = (actor, action, patient_id, resource, outcome)
    digest = _entry_hash(seq, time, fields, details, prev_hash)
    return AuditEntry(
        seq,
        time,
        str(actor),
        str(action),
        patient_id,
        str(resource),
        str(outcome),
        details,
        prev_hash,
        digest,
        _mac(key, digest),
    )


def verify_chain(entries: Iterable[AuditEntry], key: bytes) -> list[str]:
    """Every break in the chain, as 'entry N: what is wrong'; an empty list means intact."""
    problems: list[str] = []
    expected_seq, expected_prev = 1, GENESIS_HASH
    for entry in entries:
        problems += _entry_problems(entry, expected_seq, expected_prev, key)
        expected_seq, expected_prev = entry.seq + 1, entry.hash
    return problems


def _entry_problems(entry: AuditEntry, expected_seq: int, expected_prev: str, key: bytes) -> list[str]:
    problems = []
    if entry.seq != expected_seq:
        problems.append(f"entry {entry.seq}: expected entry {expected_seq} here (entries missing or reordered)")
    if entry.prev_hash != expected_prev:
        problems.append(f"entry {entry.seq}: does not link to the entry before it")
    fields = (entry.actor, entry.action, entry.patient_id, entry.resource, entry.outcome)
    if _entry_hash(entry.seq, entry.time, fields, entry.details, entry.prev_hash) != entry.hash:
        problems.append(f"entry {entry.seq}: content does not match its hash (edited)")
    elif not hmac.compare_digest(_mac(key, entry.hash), entry.mac):
        problems.append(f"entry {entry.seq}: HMAC does not match (hash recomputed without the audit key)")
    return problems


@dataclass(frozen=True)
class Head:
    """The newest entry of the chain as noted at some time, written SEQ:HASH (0 and GENESIS_HASH: an empty log)."""

    seq: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> Head:
        seq, _, digest = text.strip().partition(":")
        if not (seq.isdigit() and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
            raise InvalidInput(f"{text.strip()[:80]!r} is not SEQ:HASH (an entry number and a 64-digit hex hash)")
        return cls(int(seq), digest)

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


def head_problems(expected: Head, entry: AuditEntry | None) -> list[str]:
    """Does the log still hold, unchanged, the entry that was its head before (`entry`: the one at that seq now)?"""
    if expected.seq == 0:
        return []
    if entry is None:
        return [f"entry {expected.seq}: missing, but it was the head before (the newest entries were deleted)"]
    if entry.hash != expected.hash:
        return [f"entry {expected.seq}: not the entry that was the head before (the log was cut back and rewritten)"]
    return []


class AuditChain(Protocol):
    """Where the chain is read back from, in order (``vigil.store.SqlStore`` is one)."""

    def audit_entries(self, after_seq: int = 0) -> list[AuditEntry]: ...

    def audit_entry(self, seq: int) -> AuditEntry | None: ...


@dataclass(frozen=True)
class Verification:
    """What checking the whole log found: how many entries, its head, and every problem (none: intact)."""

    entries: int
    head: Head
    problems: list[str]

    @property
    def intact(self) -> bool:
        return not self.problems


def verify_log(
    log: AuditChain, key: bytes, expected: Head | None = None, head_file: Path | None = None
) -> Verification:
    """Check the whole chain, and that it still holds the head noted before: `expected`, or the one kept in
    `head_file` if that exists. An intact log's head is then kept in `head_file`. ValueError: `head_file` holds
    no head."""
    if head_file and head_file.is_file():
        expected = Head.parse(head_file.read_text())
    chain = _ChainReader(log)
    problems = verify_chain(chain, key)
    if expected:
        problems += head_problems(expected, log.audit_entry(expected.seq))
    if head_file and not problems:
        head_file.write_text(f"{chain.head}\n")
    return Verification(chain.count, chain.head, problems)


class _ChainReader:
    """Every entry of the log in chain order, a batch at a time; how many were read, and the last one."""

    def __init__(self, log: AuditChain):
        self._log = log
        self.count, self.head = 0, Head(0, GENESIS_HASH)

    def __iter__(self) -> Iterator[AuditEntry]:
        while batch := self._log.audit_entries(after_seq=self.head.seq):
            self.count, self.head = self.count + len(batch), Head(batch[-1].seq, batch[-1].hash)
            yield from batch


# -- the request being served, so the policy can say where an access came from -------------------
@dataclass(frozen=True)
class RequestOrigin:
    request_id: str
    method: str
    path: str
    address: str | None


current_origin: contextvars.ContextVar[RequestOrigin | None] = contextvars.ContextVar("vigil_request", default=None)


def origin_details() -> dict[str, Any]:
    """The request id and client address of the request being served, if any."""
    origin = current_origin.get()
    return {"request_id": origin.request_id, "address": origin.address} if origin else {}
