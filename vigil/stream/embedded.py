"""The embedded stream: the store's queue of stored-but-unprocessed readings, partitioned by patient, with leases
in the store deciding which processor owns which partition (any number of processors on one database)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from vigil.domain import Reading
from vigil.errors import Unavailable
from vigil.store import SqlStore
from vigil.store.stream_log import STREAM_PARTITIONS, fair_share
from vigil.timeutil import utc_now

LEASE_SECONDS = 10.0
"""A processor that stops renewing loses its partitions this long after its last renewal."""
MAX_BACKLOG = 200_000
"""Readings stored but not yet processed beyond which ingest answers 503 (Retry-After) instead of queueing more."""
BACKLOG_CHECK_SECONDS = 1.0
BACKLOG_RETRY_SECONDS = 5


class LeaseLost(Exception):
    """Another processor owns the partition now; the batch's work was rolled back and is theirs to do."""


@dataclass(frozen=True)
class StreamBatch:
    """A partition's oldest pending readings, in the order they were stored; `ids` are their reading ids, and
    `receipts` what the stream needs to acknowledge them (NATS messages; nothing for the embedded stream).

    `sizes` cuts the readings into the parts processed one after another (a NATS message each), so what is derived
    depends on how the readings were published, never on how many messages a fetch happened to return."""

    partition: int
    ids: tuple[int, ...]
    readings: tuple[Reading, ...]
    receipts: tuple[Any, ...] = ()
    sizes: tuple[int, ...] = ()

    @property
    def parts(self) -> list[tuple[Reading, ...]]:
        cuts = list(itertools.accumulate(self.sizes or (len(self.readings),), initial=0))
        return [self.readings[start:end] for start, end in itertools.pairwise(cuts)]


class StoreBackedStream:
    """What every stream shares: the store's queue of unprocessed readings bounds the backlog, marks what is
    processed (so warm-ups rebuild from processed readings only) and fences a batch to one commit."""

    partitions = STREAM_PARTITIONS

    def __init__(self, store: SqlStore, max_backlog: int = MAX_BACKLOG) -> None:
        self.store = store
        self.max_backlog = max_backlog
        self._backlog = (0, -BACKLOG_CHECK_SECONDS)  # (count, monotonic time counted)

    def admit(self) -> None:
        """Refuse new readings (503, Retry-After) while the backlog is over its limit; memory and queue stay bounded."""
        count, counted = self._backlog
        if time.monotonic() - counted >= BACKLOG_CHECK_SECONDS:
            count = self.store.pending_count()
            self._backlog = (count, time.monotonic())
        if count > self.max_backlog:
            raise Unavailable(
                f"processing is {count} readings behind; nothing was stored, send the batch again",
                BACKLOG_RETRY_SECONDS,
            )

    def holds(self, owner: str, partition: int) -> bool:
        """Whether `owner` still holds the partition's lease (extending it)."""
        raise NotImplementedError

    def acknowledge(self, batch: StreamBatch) -> None:
        """Tell the stream a batch is done with (after its commit); nothing for a queue kept in the store."""

    @contextmanager
    def committing(self, batch: StreamBatch, owner: str) -> Iterator[None]:
        """Run the batch's processing in one unit of work that also takes it off the queue, refused (LeaseLost, and
        nothing of it kept) unless `owner` still holds the partition and no other processor finished any of its
        readings, so no batch's alerts or advice are ever committed twice; then acknowledge it."""
        with self.store.unit_of_work():
            if not self.holds(owner, batch.partition):
                raise LeaseLost(f"partition {batch.partition} is no longer owned by {owner}")
            yield
            if self.store.finish_pending(batch.ids) != len(batch.ids):
                raise LeaseLost(f"partition {batch.partition}: another processor finished part of this batch first")
        self.acknowledge(batch)

    def discard(self, batch: StreamBatch) -> None:
        """Take a batch that cannot be processed off the queue (its readings stay stored)."""
        with self.store.unit_of_work():
            self.store.finish_pending(batch.ids)
        self.acknowledge(batch)


class StoreStream(StoreBackedStream):
    """The stream kept in the store: ingest appends in the storing transaction; processors claim partitions, read
    batches and commit each batch's derived events with its removal from the queue in one unit of work."""

    def __init__(self, store: SqlStore, max_backlog: int = MAX_BACKLOG) -> None:
        super().__init__(store, max_backlog)
        self._appended = threading.Event()

    def notify(self, _readings: object = None) -> None:
        """Wake this process's processor: readings were just appended (other processes' appends are polled)."""
        self._appended.set()

    def wait(self, timeout: float) -> None:
        """Block until something is appended in this process or `timeout` seconds pass."""
        self._appended.wait(timeout)
        self._appended.clear()

    def join(self, owner: str) -> set[int]:
        """Say `owner` is alive and claim its fair share of partitions; returns the partitions it holds."""
        now = utc_now()
        until = now + timedelta(seconds=LEASE_SECONDS)
        members = self.store.heartbeat(owner, now, until)
        return self.store.claim_partitions(owner, fair_share(self.partitions, members), now, until)

    def leave(self, owner: str) -> None:
        self.store.release_partitions(owner)

    def read(self, partition: int, limit: int) -> StreamBatch | None:
        """The partition's oldest pending readings; None when it has none."""
        ids = self.store.pending_ids(partition, limit)
        if not ids:
            return None
        readable = dict(self.store.pending_readings(partition, limit))
        return StreamBatch(partition, tuple(ids), tuple(readable[i] for i in ids if i in readable))

    def holds(self, owner: str, partition: int) -> bool:
        return self.store.holds_partition(owner, partition, utc_now() + timedelta(seconds=LEASE_SECONDS))
