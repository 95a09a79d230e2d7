"""Ingestion: authenticate a device, validate its batch, store it durably, pass new readings on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from vigil.domain import DeadLetter, Device, Reading
from vigil.errors import InvalidInput
from vigil.ingest.validation import ReadingWarning, Rejection, validate_batch
from vigil.security.audit import AuditEvent, origin_details
from vigil.timeutil import utc_now

MAX_BODY_BYTES = 5 * 1024 * 1024


class BatchShapeError(InvalidInput):
    """The body is not {"readings": [...]}; the message names the field."""

    code = "invalid_batch"


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    rejected: list[Rejection] = field(default_factory=list)
    stored: list[Reading] = field(default_factory=list)
    warnings: list[ReadingWarning] = field(default_factory=list)


def batch_readings(body: Any) -> list[Any]:
    """The raw readings list of an ingest body, or BatchShapeError naming what is wrong."""
    if not isinstance(body, dict):
        raise BatchShapeError('body: must be a JSON object like {"readings": [...]}')
    if "readings" not in body:
        raise BatchShapeError("readings: required")
    if not isinstance(body["readings"], list):
        raise BatchShapeError("readings: must be a list")
    return body["readings"]


class DeviceReadingStore(Protocol):
    """What ingestion needs from a store: the device registry, readings stored durably with their audit entry in
    one transaction (True per new reading, False per duplicate), dead letters for broker messages that were not
    ingested, and whether an error means the store is unavailable. ``vigil.store.SqlStore`` is one; the composition
    roots pass it in."""

    def device_for_token(self, token: str) -> Device | None: ...

    def get_device(self, device_id: str) -> Device | None: ...

    def insert_readings(self, readings: Sequence[Reading], audit: AuditEvent | None = None) -> list[bool]: ...

    def add_dead_letter(self, letter: DeadLetter) -> None: ...

    def is_unavailable(self, error: BaseException) -> bool: ...


class IngestService:
    """The one ingestion path used by HTTP, MQTT and the in-process simulator."""

    def __init__(
        self,
        store: DeviceReadingStore,
        on_stored: Callable[[Sequence[Reading]], None] | None = None,
        admit: Callable[[], None] | None = None,
    ):
        """`admit` raises RetryLater while the stream is too far behind to take more; `on_stored` hears of each
        committed batch (the store's transaction already appended it to the stream)."""
        self.store = store
        self.on_stored = on_stored
        self.admit = admit

    def authenticate(self, token: str | None) -> Device | None:
        return self.store.device_for_token(token) if token else None

    def ingest(self, device: Device, body: Any, now: datetime | None = None) -> IngestResult:
        """Validate and store a batch; returns only after the accepted readings are committed (and so in the
        stream: processing happens after the answer, not before it)."""
        if self.admit is not None:
            self.admit()
        readings, rejected, warnings = validate_batch(batch_readings(body), device, now or utc_now())
        audit = AuditEvent(
            f"device:{device.device_id}",
            "ingest",
            device.patient_id,
            "readings",
            "ok",
            {"rejected": len(rejected), "warnings": len(warnings), **origin_details()},
        )
        stored_flags = self.store.insert_readings(readings, audit) if readings else []
        stored = [r for r, is_new in zip(readings, stored_flags) if is_new]
        result = IngestResult(len(stored), len(readings) - len(stored), rejected, stored, warnings)
        self._pass_on(stored)
        return result

    def _pass_on(self, stored: list[Reading]) -> None:
        if stored and self.on_stored is not None:
            self.on_stored(stored)
