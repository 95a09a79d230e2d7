"""The stream on NATS JetStream: a work-queue stream with a subject per partition, a durable pull consumer per
partition, and partition leases in a JetStream key-value bucket whose TTL hands a dead processor's partitions over.

Ingest stores a batch (its readings queued in the store in the same transaction, the outbox), publishes the queued
readings to their partitions' subjects, marks them published and only then answers; a crash between the commit and
the publish is repaired by any processor, which publishes what stayed unpublished. Each message carries reading ids,
so a redelivered or republished message is recognised: readings already processed are acknowledged, not processed
again."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson

from vigil.domain import Quality, Reading
from vigil.errors import InvalidInput, Unavailable
from vigil.metrics import MetricName
from vigil.store import SqlStore
from vigil.store.stream_log import fair_share
from vigil.stream.embedded import LEASE_SECONDS, MAX_BACKLOG, StoreBackedStream, StreamBatch
from vigil.timeutil import utc_now

ACK_WAIT_SECONDS = LEASE_SECONDS
"""A message fetched by a processor that dies is delivered again after this long (to the partition's new owner)."""
FETCH_MESSAGES = 16
"""Messages per batch, and at most this many unacknowledged per partition: a dead processor's messages are delivered
again, in order, before any later one."""
PUBLISH_BATCH = 5000
REPUBLISH_AFTER_SECONDS = 5.0
"""Readings still unpublished this long after they were stored (their ingest process died) are published by a
processor."""
FETCH_SECONDS = 0.05
CALL_SECONDS = 30.0
STREAM_RETRY_SECONDS = 5


def _stream_name(url: str) -> str:
    """`nats://host:4222` is the stream `vigil`; a path names another (`nats://host:4222/ward2`), for tests and for
    several Vigil installations on one NATS cluster."""
    name = urlsplit(url).path.strip("/") or "vigil"
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise InvalidInput(f"--stream: {name!r} is not a stream name (letters, digits, '-' and '_' only)")
    return name


def _encode(ids: list[int], readings: list[Reading]) -> bytes:
    rows = [
        [r.patient_id, r.device_id, r.metric, r.time.isoformat(), r.value, r.unit, r.seq, r.quality] for r in readings
    ]
    return orjson.dumps({"ids": ids, "readings": rows})


def _decode(payload: bytes) -> tuple[list[int], list[Reading]]:
    body = orjson.loads(payload)
    readings = [
        Reading(p, d, MetricName(m), datetime.fromisoformat(t), v, u, s, Quality(q))
        for p, d, m, t, v, u, s, q in body["readings"]
    ]
    return [int(i) for i in body["ids"]], readings


class JetStreamStream(StoreBackedStream):
    """The stream between ingest and processing on a NATS JetStream server or cluster (``nats://host:4222``)."""

    def __init__(self, url: str, store: SqlStore, max_backlog: int = MAX_BACKLOG) -> None:
        super().__init__(store, max_backlog)
        self.url, self.name = url, _stream_name(url)
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="nats", daemon=True).start()
        self._publishing = threading.Lock()
        self._leases: dict[int, int] = {}  # partition -> the lease entry's revision
        self._consumers: dict[int, Any] = {}
        self._call(self._connect())

    # -- the asyncio side ----------------------------------------------------------------------
    def _call(self, coroutine, timeout: float = CALL_SECONDS):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _connect(self) -> None:
        import nats
        from nats.js.api import DiscardPolicy, KeyValueConfig, RetentionPolicy, StreamConfig

        self._nc = await nats.connect(self.url, connect_timeout=5, max_reconnect_attempts=-1)
        self._js = self._nc.jetstream()
        self.stream = f"{self.name.upper()}_READINGS"
        config = StreamConfig(
            name=self.stream,
            subjects=[f"{self.name}.readings.*"],
            retention=RetentionPolicy.WORK_QUEUE,
            discard=DiscardPolicy.NEW,
            duplicate_window=120,
        )
        try:
            await self._js.add_stream(config)
        except Exception:  # it exists (with this configuration, or one an operator tuned): use it
            await self._js.stream_info(self.stream)
        self._kv = await self._js.create_key_value(KeyValueConfig(bucket=f"{self.name}-leases", ttl=LEASE_SECONDS))

    def close(self) -> None:
        """Close the connection and stop the event loop (the leases, unless left, expire on their own)."""
        try:
            self._call(self._nc.close(), timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)

    # -- ingest: publish what the store queued -----------------------------------------------
    def notify(self, _readings: object = None) -> None:
        """Publish every queued reading not yet published (this batch's and any left by a crash), then mark them;
        Unavailable (503: the readings are stored, send again) if the stream cannot take them."""
        with self._publishing:
            while rows := self.store.unpublished_readings(PUBLISH_BATCH):
                by_partition: dict[int, tuple[list[int], list[Reading]]] = defaultdict(lambda: ([], []))
                for reading_id, partition, reading in rows:
                    by_partition[partition][0].append(reading_id)
                    by_partition[partition][1].append(reading)
                try:
                    self._call(self._publish(by_partition))
                except Exception as error:
                    raise Unavailable(
                        "the stream is unavailable just now; the readings are stored, send the batch again",
                        STREAM_RETRY_SECONDS,
                    ) from error
                self.store.mark_published([reading_id for reading_id, _, _ in rows])

    async def _publish(self, by_partition: dict[int, tuple[list[int], list[Reading]]]) -> None:
        await asyncio.gather(
            *(
                self._js.publish(
                    f"{self.name}.readings.{partition}",
                    _encode(ids, readings),
                    headers={"Nats-Msg-Id": f"{ids[0]}-{ids[-1]}-{len(ids)}"},
                )
                for partition, (ids, readings) in by_partition.items()
            )
        )

    def wait(self, timeout: float) -> None:
        time.sleep(min(timeout, FETCH_SECONDS))

    # -- ownership: leases in the key-value bucket ------------------------------------------
    def join(self, owner: str) -> set[int]:
        """Renew `owner`'s leases (a bucket entry per partition, expiring after ``LEASE_SECONDS``), give back what
        is over its fair share and take free partitions up to it; also publish readings a dead ingest left behind."""
        held = self._call(self._join(_key(owner)))
        for partition in set(self._consumers) - held:
            self._consumers.pop(partition)
        self._republish_stale()
        return held

    async def _join(self, owner: str) -> set[int]:
        from nats.js.errors import NoKeysError

        await self._kv.put(f"members.{owner}", b"alive")
        try:
            keys = await self._kv.keys()
        except NoKeysError:
            keys = []
        want = fair_share(self.partitions, sum(key.startswith("members.") for key in keys))
        mine = sorted(self._leases)
        for partition in mine[want:]:
            await self._release(partition)
        for partition in mine[:want]:
            await self._renew(owner, partition)
        for partition in range(self.partitions):
            if len(self._leases) >= want:
                break
            if partition not in self._leases:
                await self._take(owner, partition)
        return set(self._leases)

    async def _take(self, owner: str, partition: int) -> None:
        try:
            self._leases[partition] = await self._kv.create(f"partitions.{partition}", owner.encode())
        except Exception:  # another processor holds it
            pass

    async def _renew(self, owner: str, partition: int) -> None:
        try:
            self._leases[partition] = await self._kv.update(
                f"partitions.{partition}", owner.encode(), last=self._leases[partition]
            )
        except Exception:  # it expired and another processor took it
            self._leases.pop(partition, None)

    async def _release(self, partition: int) -> None:
        revision = self._leases.pop(partition)
        try:
            await self._kv.delete(f"partitions.{partition}", last=revision)
        except Exception:  # already expired or taken
            pass

    def leave(self, owner: str) -> None:
        async def leave() -> None:
            for partition in list(self._leases):
                await self._release(partition)
            await self._kv.delete(f"members.{_key(owner)}")

        self._call(leave())
        self._consumers.clear()

    def _republish_stale(self) -> None:
        if self.store.unpublished_readings(1, utc_now() - timedelta(seconds=REPUBLISH_AFTER_SECONDS)):
            self.notify()

    # -- consuming ----------------------------------------------------------------------------
    def read(self, partition: int, limit: int) -> StreamBatch | None:
        """The partition's next ``FETCH_MESSAGES`` messages (each an ingest batch's readings of the partition, so
        `limit` does not apply); readings in them already processed (a redelivery) are left out, and a batch of nothing
        but those is acknowledged and passed over."""
        messages = self._call(self._fetch(partition, FETCH_MESSAGES))
        if not messages:
            return None
        decoded = [_decode(message.data) for message in messages]
        pending = self.store.still_pending([i for ids, _ in decoded for i in ids])
        parts = [[(i, r) for i, r in zip(ids, readings) if i in pending] for ids, readings in decoded]
        kept = [item for part in parts for item in part]
        if not kept:
            self._call(self._ack(messages))
            return None
        return StreamBatch(
            partition,
            tuple(i for i, _ in kept),
            tuple(r for _, r in kept),
            tuple(messages),
            tuple(len(part) for part in parts if part),
        )

    async def _fetch(self, partition: int, messages: int) -> list[Any]:
        import nats
        from nats.js.api import AckPolicy, ConsumerConfig

        consumer = self._consumers.get(partition)
        if consumer is None:
            consumer = self._consumers[partition] = await self._js.pull_subscribe(
                f"{self.name}.readings.{partition}",
                durable=f"{self.name}-partition-{partition}",
                stream=self.stream,
                config=ConsumerConfig(
                    ack_policy=AckPolicy.EXPLICIT, ack_wait=ACK_WAIT_SECONDS, max_ack_pending=FETCH_MESSAGES
                ),
            )
        try:
            return await consumer.fetch(batch=messages, timeout=FETCH_SECONDS)
        except (TimeoutError, nats.errors.TimeoutError):  # nothing to deliver within FETCH_SECONDS
            return []

    @staticmethod
    async def _ack(messages) -> None:
        await asyncio.gather(*(message.ack_sync() for message in messages))

    def holds(self, owner: str, partition: int) -> bool:
        return bool(self._call(self._holds(_key(owner), partition)))

    def acknowledge(self, batch: StreamBatch) -> None:
        """Acknowledge the batch's messages after its commit (if that is lost, the redelivery is recognised as
        processed)."""
        self._call(self._ack(batch.receipts))

    async def _holds(self, owner: str, partition: int) -> bool:
        try:
            entry = await self._kv.get(f"partitions.{partition}")
        except Exception:
            return False
        return entry.value == owner.encode() and entry.revision == self._leases.get(partition)


def _key(owner: str) -> str:
    """An owner's name as a key-value key (letters, digits, '-', '_' and '=' only)."""
    return re.sub(r"[^A-Za-z0-9_=-]", "_", owner)


__all__ = ["JetStreamStream"]
