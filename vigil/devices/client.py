"""A device's uploader: buffers readings, sends them in batches, retries, and misbehaves like real devices."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from vigil.devices.readings import DeviceKey
from vigil.devices.seeding import rng_for
from vigil.devices.transports import DeliveryFailed, DeliveryRejected, Payload, Transport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClientBehaviour:
    """How a device uploads: its batching cadence (simulated minutes), how often it misbehaves,
    and how long it waits (real seconds, doubling) after a failed delivery."""

    batch_minutes: tuple[float, float] = (1.0, 5.0)
    resend_probability: float = 0.02  # the acknowledgement "timed out": the same batch goes again
    shuffle_probability: float = 0.05  # the batch's readings leave out of time order
    delay_probability: float = 0.03  # the batch is held back and arrives after the next one
    backoff_seconds: tuple[float, float] = (0.5, 30.0)  # first and longest wait


RELIABLE = ClientBehaviour(resend_probability=0.0, shuffle_probability=0.0, delay_probability=0.0)


@dataclass
class ClientStats:
    """What a client did; the ingest counts come from the server's answers (HTTP and in-process only)."""

    batches_sent: int = 0
    readings_sent: int = 0
    batches_resent: int = 0
    failed_attempts: int = 0
    batches_rejected: int = 0
    accepted: int = 0
    duplicates: int = 0
    readings_rejected: int = 0

    @classmethod
    def total(cls, many: Iterable[ClientStats]) -> ClientStats:
        many = list(many)
        return cls(*(sum(getattr(stats, field.name) for stats in many) for field in fields(cls)))

    def count_answer(self, answer: Payload | None) -> None:
        if answer:
            self.accepted += int(answer.get("accepted", 0))
            self.duplicates += int(answer.get("duplicates", 0))
            self.readings_rejected += len(answer.get("rejected", ()))


@dataclass(frozen=True)
class OutgoingBatch:
    readings: list[dict[str, Any]]
    resend: bool = False


class DeviceClient:
    """Buffers one device's readings; `pump` closes a batch every few simulated minutes and sends what is
    due; a failed delivery is retried with backoff and nothing is lost."""

    def __init__(
        self,
        device_id: str,
        token: str,
        transport: Transport,
        rng: np.random.Generator,
        behaviour: ClientBehaviour = ClientBehaviour(),
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.device_id = device_id
        self.token = token
        self.transport = transport
        self.rng = rng
        self.behaviour = behaviour
        self.monotonic = monotonic
        self.stats = ClientStats()
        self._buffer: list[dict[str, Any]] = []
        self._held: list[dict[str, Any]] | None = None
        self._outbox: deque[OutgoingBatch] = deque()
        self._next_batch_at: datetime | None = None
        self._retry_at = 0.0
        self._failures_in_a_row = 0

    @property
    def pending(self) -> int:
        """Readings generated but not yet delivered."""
        unsent = [batch.readings for batch in self._outbox if not batch.resend] + [self._held or []]
        return len(self._buffer) + sum(len(readings) for readings in unsent)

    def submit(self, readings: list[dict[str, Any]]) -> None:
        self._buffer.extend(readings)

    def pump(self, sim_time: datetime) -> None:
        """Close a batch if its simulated time has come, then send what is due unless backing off."""
        if self._next_batch_at is None:
            self._next_batch_at = sim_time + self._batch_interval()
        if sim_time >= self._next_batch_at:
            self._close_batch()
            self._next_batch_at = sim_time + self._batch_interval()
        self._send_due()

    def flush(self, deadline: float) -> bool:
        """Send everything left, held batches too, retrying until the monotonic `deadline`; True if all went."""
        self._close_batch()
        self._release_held()
        while self._outbox and self.monotonic() < deadline:
            self._send_due()
            time.sleep(max(0.0, min(self._retry_at, deadline) - self.monotonic()))
        return not self._outbox

    def _batch_interval(self) -> timedelta:
        return timedelta(minutes=float(self.rng.uniform(*self.behaviour.batch_minutes)))

    def _close_batch(self) -> None:
        if not self._buffer:
            return
        readings, self._buffer = self._buffer, []
        if self.rng.random() < self.behaviour.shuffle_probability:
            readings = [readings[index] for index in self.rng.permutation(len(readings))]
        if self._held is None and self.rng.random() < self.behaviour.delay_probability:
            self._held = readings
            return
        self._outbox.append(OutgoingBatch(readings))
        self._release_held()

    def _release_held(self) -> None:
        if self._held is not None:
            self._outbox.append(OutgoingBatch(self._held))
            self._held = None

    def _send_due(self) -> None:
        while self._outbox and self.monotonic() >= self._retry_at:
            batch = self._outbox[0]
            try:
                answer = self.transport.send(self.device_id, self.token, {"readings": batch.readings})
            except DeliveryFailed as error:
                self._back_off(error)
                return
            except DeliveryRejected as error:
                self._outbox.popleft()
                self._refused(batch, error)
            else:
                self._outbox.popleft()
                self._delivered(batch, answer)

    def _delivered(self, batch: OutgoingBatch, answer: Payload | None) -> None:
        """Count the delivery; now and then act as if its acknowledgement was lost and send it again."""
        self._failures_in_a_row = 0
        self.stats.batches_sent += 1
        self.stats.readings_sent += len(batch.readings)
        self.stats.batches_resent += batch.resend
        self.stats.count_answer(answer)
        if not batch.resend and self.rng.random() < self.behaviour.resend_probability:
            self._outbox.appendleft(OutgoingBatch(batch.readings, resend=True))

    def _refused(self, batch: OutgoingBatch, error: DeliveryRejected) -> None:
        self._failures_in_a_row = 0
        self.stats.batches_rejected += 1
        log.warning("device %s: batch of %d readings refused: %s", self.device_id, len(batch.readings), error)

    def _back_off(self, error: DeliveryFailed) -> None:
        first, longest = self.behaviour.backoff_seconds
        wait = min(longest, first * 2**self._failures_in_a_row) * float(self.rng.uniform(0.5, 1.0))
        self._failures_in_a_row += 1
        self.stats.failed_attempts += 1
        self._retry_at = self.monotonic() + wait
        log.info("device %s: delivery failed (%s); retrying in %.1f s", self.device_id, error, wait)


def build_clients(
    credentials: Mapping[DeviceKey, tuple[str, str]],
    transport: Transport,
    seed: int = 0,
    behaviour: ClientBehaviour = ClientBehaviour(),
) -> dict[DeviceKey, DeviceClient]:
    """One client per device from {device key: (device_id, token)}, all sharing one transport."""
    return {
        key: DeviceClient(device_id, token, transport, rng_for(seed, "client", str(key)), behaviour)
        for key, (device_id, token) in credentials.items()
    }
