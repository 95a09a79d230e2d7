"""The stream between ingest and processing: stored readings, partitioned by patient, each partition consumed in
order by one owner at a time. ``StoreStream`` (the embedded default) keeps the queue in the store itself;
``JetStreamStream`` carries it on NATS JetStream (``--stream nats://host:4222``)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from vigil.errors import InvalidInput
from vigil.store import SqlStore
from vigil.stream.embedded import MAX_BACKLOG, LeaseLost, StoreStream, StreamBatch
from vigil.stream.jetstream import JetStreamStream


class Stream(Protocol):
    """What ingest and the processors need of a stream."""

    partitions: int

    def admit(self) -> None: ...

    def notify(self, readings: object = None) -> None: ...

    def wait(self, timeout: float) -> None: ...

    def join(self, owner: str) -> set[int]: ...

    def leave(self, owner: str) -> None: ...

    def read(self, partition: int, limit: int) -> StreamBatch | None: ...

    def committing(self, batch: StreamBatch, owner: str) -> AbstractContextManager[None]: ...

    def discard(self, batch: StreamBatch) -> None: ...


def stream_for_url(url: str | None, store: SqlStore) -> Stream:
    """The stream a URL names: none (or ``embedded``) is the store's own; ``nats://host:4222[/name]`` NATS JetStream."""
    if url in (None, "", "embedded"):
        return StoreStream(store)
    if url.startswith(("nats://", "tls://")):
        return JetStreamStream(url, store)
    raise InvalidInput(f"--stream: unsupported stream URL {url!r}; use nats://host:4222 or leave it out (embedded)")


__all__ = ["MAX_BACKLOG", "JetStreamStream", "LeaseLost", "StoreStream", "Stream", "StreamBatch", "stream_for_url"]
