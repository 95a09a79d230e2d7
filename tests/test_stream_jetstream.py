"""The stream on a real NATS JetStream server: processors on it derive exactly what the embedded stream does, with
one, two and four of them and across a mid-stream kill; redelivered and republished messages are recognised; a
stream that cannot take a batch answers 503 and keeps the readings for later."""

from __future__ import annotations

import time

import pytest

from tests.test_stream import alert_rules, copied_store, deteriorating, make_processor, outcomes
from vigil.domain import AlertRule
from vigil.errors import Unavailable
from vigil.ingest.service import IngestService
from vigil.store import SqlStore
from vigil.store.stream_log import STREAM_PARTITIONS
from vigil.stream import JetStreamStream, stream_for_url
from vigil.stream.jetstream import _encode


@pytest.fixture(autouse=True)
def small_messages(monkeypatch):
    """The recorded ward published 200 readings at a time, so each partition takes several batches of messages."""
    monkeypatch.setattr("vigil.stream.jetstream.PUBLISH_BATCH", 200)


@pytest.fixture
def short_leases(monkeypatch):
    """Leases (and redelivery of a dead processor's messages) after 3 s instead of 10; batches of 4 messages."""
    monkeypatch.setattr("vigil.stream.jetstream.FETCH_MESSAGES", 4)
    monkeypatch.setattr("vigil.stream.jetstream.LEASE_SECONDS", 3.0)
    monkeypatch.setattr("vigil.stream.jetstream.ACK_WAIT_SECONDS", 3.0)
    monkeypatch.setattr("vigil.processor.RENEW_SECONDS", 0.5)


def drained_by(store: SqlStore, url: str, processors: int) -> dict:
    streams = [JetStreamStream(url, store) for _ in range(processors)]
    try:
        streams[0].notify()  # what ingest does after each batch: publish what the store queued
        team = [make_processor(store, stream, f"nats-{n}") for n, stream in enumerate(streams)]
        for _ in range(3):
            for processor in team:
                processor.claim()
        assert sorted(p for processor in team for p in processor.owned) == list(range(STREAM_PARTITIONS))
        deadline = time.monotonic() + 120
        while store.pending_count() and time.monotonic() < deadline:  # a fetch may come back empty: look again
            for processor in team:
                processor.run_once()
        assert store.pending_count() == 0
        for processor in team:
            processor.stop()
        return outcomes(store)
    finally:
        for stream in streams:
            stream.close()


def test_one_two_and_four_processors_on_jetstream_derive_exactly_the_same(recorded_ward, tmp_path, nats_stream_url):
    alone = drained_by(copied_store(recorded_ward, tmp_path / "nats1.db"), f"{nats_stream_url}1", 1)
    assert len(alone["alerts"]) >= 3 and len(alone["recommendations"]) > 10
    for processors in (2, 4):
        store = copied_store(recorded_ward, tmp_path / f"nats{processors}.db")
        assert drained_by(store, f"{nats_stream_url}{processors}", processors) == alone


def test_a_killed_processors_partitions_and_unacknowledged_messages_go_to_the_survivor(
    recorded_ward, tmp_path, nats_stream_url, short_leases
):
    alone = drained_by(copied_store(recorded_ward, tmp_path / "alone.db"), f"{nats_stream_url}alone", 1)
    assert alone == drained_by(copied_store(recorded_ward, tmp_path / "again.db"), f"{nats_stream_url}again", 1)
    store = copied_store(recorded_ward, tmp_path / "nats.db")
    doomed, survivor = JetStreamStream(nats_stream_url, store), JetStreamStream(nats_stream_url, store)
    try:
        doomed.notify()
        first, second = make_processor(store, doomed, "doomed"), make_processor(store, survivor, "survivor")
        first.claim()
        first.run_once()
        second.claim(), first.claim(), second.claim()
        assert first.owned and second.owned
        # the doomed processor fetches a batch of its busiest partition, never commits nor acknowledges it, and dies
        busiest = max(first.owned, key=lambda p: len(store.pending_ids(p, 10_000)))
        assert store.pending_ids(busiest, 1), "the handover came after the doomed processor had finished"
        assert any(doomed.read(busiest, 100) for _ in range(50))
        doomed.close()
        time.sleep(3.5)
        assert second.claim() == set(range(STREAM_PARTITIONS))
        deadline = time.monotonic() + 60
        while store.pending_count() and time.monotonic() < deadline:
            second.run_once()
        assert outcomes(store) == alone
    finally:
        survivor.close()


def test_a_republished_message_is_acknowledged_without_processing_it_again(ward, nats_stream_url):
    store = ward.ctx.store
    stream = JetStreamStream(nats_stream_url, store)
    try:
        ingest = IngestService(store, on_stored=stream.notify, admit=stream.admit)
        device = store.get_device(ward.device_id)
        assert ingest.ingest(device, {"readings": deteriorating()}).accepted == 100
        processor = make_processor(store, stream, "once")
        processor.drain()
        assert alert_rules(store).count(AlertRule.NEWS2_URGENT) == 1
        scores = len(store.query_scores(ward.patient_id, "news2"))
        readings = store.query_readings(ward.patient_id)
        partition = processor.owned and next(iter(processor.owned))
        stream._call(  # the same readings again, as a relay that lost its acknowledgement would send them
            stream._js.publish(f"{stream.name}.readings.{partition}", _encode(list(range(1, 101)), readings))
        )
        assert processor.drain() == 0
        assert len(store.query_scores(ward.patient_id, "news2")) == scores
        assert alert_rules(store).count(AlertRule.NEWS2_URGENT) == 1
    finally:
        stream.close()


def test_a_stream_that_cannot_take_the_batch_answers_503_and_the_readings_wait_to_be_published(ward, nats_stream_url):
    store = ward.ctx.store
    broken = JetStreamStream(nats_stream_url, store)
    broken._call(broken._nc.close())  # the NATS cluster is unreachable
    ingest = IngestService(store, on_stored=broken.notify, admit=broken.admit)
    with pytest.raises(Unavailable) as refused:
        ingest.ingest(store.get_device(ward.device_id), {"readings": deteriorating()})
    assert "stored" in str(refused.value) and refused.value.http_status == 503
    assert store.count_readings() == 100 and len(store.unpublished_readings(1000)) == 100
    healthy = stream_for_url(nats_stream_url, store)
    try:
        healthy.notify()  # the next batch (or any processor) publishes what waited
        assert store.unpublished_readings(1000) == []
        processor = make_processor(store, healthy, "after")
        assert processor.drain() == 100
        assert AlertRule.NEWS2_URGENT in alert_rules(store)
    finally:
        healthy.close()
