"""The embedded stream and its processors: ingest answers on storage, processing catches up after failures and
restarts, partitions are owned by one processor at a time, and any number of processors give the same results."""

from __future__ import annotations

import itertools
import shutil
import time
from datetime import timedelta
from pathlib import Path

import pytest

from vigil.api.context import AppContext
from vigil.domain import AlertRule, ScoreKind
from vigil.pipeline import Pipeline
from vigil.processor import Processor
from vigil.security.crypto import KeyRing, StoreKeys
from vigil.store import SqlStore
from vigil.store.stream_log import STREAM_PARTITIONS, partition_of
from vigil.stream import StoreStream
from vigil.stream.embedded import LeaseLost
from vigil.timeutil import format_time, utc_now

HIGH = {"resp_rate": 24.0, "spo2": 93.0, "systolic_bp": 120.0, "heart_rate": 115.0, "body_temp": 38.5}  # NEWS2 7


def deteriorating(minutes: int = 20, start_minutes_ago: int = 30) -> list[dict]:
    """A wearable's full vital signs scoring NEWS2 7 (urgent) every minute for `minutes` minutes."""
    start = utc_now() - timedelta(minutes=start_minutes_ago)
    return [
        {"metric": metric, "time": format_time(start + timedelta(minutes=m)), "value": value, "seq": m * 10 + i}
        for m in range(minutes)
        for i, (metric, value) in enumerate(HIGH.items())
    ]


def alert_rules(store: SqlStore) -> list[str]:
    return sorted(alert.rule for alert in store.list_alerts(limit=10_000))


def post_unprocessed(ward, readings: list[dict]):
    """POST a batch as the device does, leaving the stream processor idle (unlike ``Ward.ingest``)."""
    return ward.client.post(
        "/api/v1/ingest", json={"readings": readings}, headers={"Authorization": f"Bearer {ward.token}"}
    )


def stalled_with_successor(ward, monkeypatch, successor: str):
    """A processor that read a batch of the ward patient's partition and then stalled past its lease, and the one
    taking the partition over; the readings are ingested, not yet processed."""
    monkeypatch.setattr("vigil.stream.embedded.LEASE_SECONDS", 0.5)
    store = ward.ctx.store
    post_unprocessed(ward, deteriorating())
    stream = StoreStream(store)
    stalled, taking_over = make_processor(store, stream, "stalled"), make_processor(store, stream, successor)
    stalled.claim()
    batch = stream.read(partition_of(ward.patient_id), 1000)
    assert batch is not None
    time.sleep(0.7)  # a long GC pause, a frozen VM
    return store, stream, stalled, taking_over, batch


def make_processor(store: SqlStore, stream: StoreStream, owner: str, pipeline_type: type[Pipeline] = Pipeline):
    return Processor(store, stream, lambda: pipeline_type(store), owner=owner)


def test_ingest_answers_on_storage_and_the_processor_raises_the_alerts_after(ward):
    response = post_unprocessed(ward, deteriorating())
    assert response.status_code == 202 and response.json()["accepted"] == 100
    assert ward.ctx.store.pending_count() == 100 and ward.ctx.store.list_alerts() == []
    assert ward.ctx.processor.drain() == 100
    assert ward.ctx.store.pending_count() == 0
    assert AlertRule.NEWS2_URGENT in alert_rules(ward.ctx.store)


def test_readings_stored_before_a_crash_raise_their_alerts_after_restart(settings, ward):
    post_unprocessed(ward, deteriorating())
    # the serving process dies here, before processing; a new one starts on the same store
    restarted = AppContext.build(settings)
    restarted.processor.claim()  # its warm-up must not swallow the unprocessed readings
    assert restarted.store.list_alerts() == []
    restarted.processor.drain()
    assert alert_rules(restarted.store).count(AlertRule.NEWS2_URGENT) == 1


class FailsOnce(Pipeline):
    """Writes a batch's derived events, then fails, once per process: the unit of work must roll all of it back."""

    failed = False

    def record(self, derived):
        alerts = super().record(derived)
        if not FailsOnce.failed:
            FailsOnce.failed = True
            raise RuntimeError("injected failure after the derived writes")
        return alerts


def test_a_failed_batch_is_processed_again_with_nothing_of_the_failed_attempt_kept(ward):
    store = ward.ctx.store
    post_unprocessed(ward, deteriorating())
    processor = make_processor(store, StoreStream(store), "failing", FailsOnce)
    FailsOnce.failed = False
    processor.drain()
    assert FailsOnce.failed and processor.stats["failures"] == 1
    assert store.pending_count() == 0
    assert alert_rules(store).count(AlertRule.NEWS2_URGENT) == 1
    scores = store.query_scores(ward.patient_id, ScoreKind.NEWS2)
    assert len(scores) == len({s.time for s in scores}), "the failed attempt's scores were kept beside the retry's"


class RefusesOneValue(Pipeline):
    """Fails on every batch that holds the poison value."""

    def derive(self, readings):
        if any(r.value == 77.7 for r in readings):
            raise RuntimeError("poison reading")
        return super().derive(readings)


def test_a_reading_that_always_fails_is_dead_lettered_and_the_rest_are_processed(ward):
    store = ward.ctx.store
    readings = deteriorating()
    readings[53] = {**readings[53], "value": 77.7}  # a heart rate
    post_unprocessed(ward, readings)
    processor = make_processor(store, StoreStream(store), "poisoned", RefusesOneValue)
    assert processor.drain() == 99
    assert store.pending_count() == 0
    [letter] = store.list_dead_letters()
    assert letter.topic == f"stream/partition/{partition_of(ward.patient_id)}" and "poison" in letter.reason
    assert letter.device_id == ward.device_id
    assert AlertRule.NEWS2_URGENT in alert_rules(store)


def test_a_full_backlog_answers_503_and_stores_nothing(ward):
    ward.ctx.ingest.admit = StoreStream(ward.ctx.store, max_backlog=5).admit
    first = post_unprocessed(ward, deteriorating())
    assert first.status_code == 202  # the backlog was empty when counted
    ward.ctx.ingest.admit = StoreStream(ward.ctx.store, max_backlog=5).admit
    refused = ward.client.post(
        "/api/v1/ingest",
        json={"readings": deteriorating(start_minutes_ago=90)},
        headers={"Authorization": f"Bearer {ward.token}"},
    )
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    assert "behind" in refused.json()["detail"]
    assert ward.ctx.store.count_readings() == 100


def test_partitions_are_shared_fairly_and_a_silent_processors_are_taken_over(tmp_path, monkeypatch):
    monkeypatch.setattr("vigil.stream.embedded.LEASE_SECONDS", 1.0)
    store = SqlStore(f"sqlite:///{tmp_path / 'leases.db'}")
    stream = StoreStream(store)
    first, second = (make_processor(store, stream, name) for name in ("first", "second"))
    assert first.claim() == set(range(STREAM_PARTITIONS))
    second.claim()  # joins: the first gives back half at its next renewal
    first.claim()
    shared = second.claim()
    assert len(shared) == STREAM_PARTITIONS // 2 and shared.isdisjoint(first.owned)
    time.sleep(1.2)  # the first stops renewing (killed)
    assert second.claim() == set(range(STREAM_PARTITIONS))


def test_a_processor_that_lost_its_partition_cannot_commit_its_batch(ward, monkeypatch):
    store, stream, stalled, successor, batch = stalled_with_successor(ward, monkeypatch, "successor")
    successor.claim()
    with pytest.raises(LeaseLost), stream.committing(batch, "stalled"):
        stalled.pipeline.process(batch.readings)
    assert store.list_alerts() == [] and store.pending_count() == 100
    successor.drain()
    assert alert_rules(store).count(AlertRule.NEWS2_URGENT) == 1


def test_savepoints_nest_inside_a_unit_of_work_on_both_engines(any_store_url):
    store = SqlStore(any_store_url)
    patient = store.add_patient("Nested")
    with store.unit_of_work():
        store.add_device(patient.patient_id, "wearable")
        with pytest.raises(RuntimeError), store.unit_of_work():
            store.add_device(patient.patient_id, "cgm")
            raise RuntimeError("inner work fails")
    assert [d.kind for d in store.list_devices(patient.patient_id)] == ["wearable"]


# -- the same recorded ward through 1, 2 and 4 processors ------------------------------------------------------------
def outcomes(store: SqlStore) -> dict:
    """Everything the processors derived, without the wall-clock times of when they did it."""
    patients = sorted(p.patient_id for p in store.list_patients())
    return {
        "alerts": sorted(
            (a.patient_id, a.rule, a.severity, format_time(a.time), a.message, len(a.history))
            for a in store.list_alerts(limit=100_000)
        ),
        "recommendations": sorted(
            (r.patient_id, r.kind, format_time(r.time), r.status, r.action, r.reason, r.subject)
            for pid in patients
            for r in store.list_recommendations(pid, limit=100_000)
        ),
        "scores": sorted(
            (s.patient_id, s.kind, format_time(s.time), round(s.value, 9))
            for pid in patients
            for kind in ScoreKind
            for s in store.query_scores(pid, kind)
        ),
    }


def copied_store(recorded: tuple[Path, StoreKeys], copy: Path) -> SqlStore:
    database, keys = recorded
    shutil.copy(database, copy)
    return SqlStore(f"sqlite:///{copy}", keys)


def processed_by(recorded: tuple[Path, StoreKeys], processors: int, copy: Path) -> dict:
    store = copied_store(recorded, copy)
    stream = StoreStream(store)
    team = [make_processor(store, stream, f"processor-{n}") for n in range(processors)]
    for _ in range(3):  # everyone joins, then the shares settle
        for processor in team:
            processor.claim()
    assert sorted(p for processor in team for p in processor.owned) == list(range(STREAM_PARTITIONS))
    while sum(processor.run_once() for processor in team):
        pass
    assert store.pending_count() == 0
    return outcomes(store)


def test_one_two_and_four_processors_derive_exactly_the_same(recorded_ward, tmp_path, small_batches):
    alone = processed_by(recorded_ward, 1, tmp_path / "one.db")
    assert {a[1] for a in alone["alerts"]} >= {AlertRule.NEWS2_URGENT, AlertRule.HEART_RATE_RISE}
    assert len(alone["recommendations"]) > 10 and len(alone["scores"]) > 100
    for processors in (2, 4):
        assert processed_by(recorded_ward, processors, tmp_path / f"{processors}.db") == alone


def test_partitions_handed_over_mid_stream_derive_exactly_what_one_processor_does(
    recorded_ward, tmp_path, small_batches, monkeypatch
):
    """A second processor joins after two batches per partition, and the first is then killed (its leases left
    to expire): the stage checkpoints make the successors raise and advise exactly what one processor alone does."""
    alone = processed_by(recorded_ward, 1, tmp_path / "alone.db")
    monkeypatch.setattr("vigil.stream.embedded.LEASE_SECONDS", 1.0)
    store = copied_store(recorded_ward, tmp_path / "handed.db")
    stream = StoreStream(store)
    first, second = make_processor(store, stream, "first"), make_processor(store, stream, "second")
    first.claim()
    first.run_once(), first.run_once()
    second.claim(), first.claim(), second.claim()  # half of the partitions move to the second, mid-stream
    assert first.owned and second.owned
    first.run_once(), second.run_once()
    time.sleep(1.2)  # the first is killed: no release, its leases expire
    assert second.claim() == set(range(STREAM_PARTITIONS))
    while second.run_once():
        pass
    assert outcomes(store) == alone


def test_state_rebuilt_from_the_store_every_third_batch_derives_exactly_what_unbroken_state_does(
    recorded_ward, tmp_path, monkeypatch
):
    """The checkpoints are complete: a processor that throws its memory away and rebuilds it from the store (warm-up
    plus the care and glucose checkpoints) every third pass, in batches of 13 readings, raises and advises exactly as
    one that never does."""
    monkeypatch.setattr("vigil.processor.BATCH_LIMIT", 13)
    steady_store, rebuilt_store = (copied_store(recorded_ward, tmp_path / f"{n}.db") for n in ("steady", "rebuilt"))
    steady = make_processor(steady_store, StoreStream(steady_store), "steady")
    rebuilt = make_processor(rebuilt_store, StoreStream(rebuilt_store), "rebuilt")
    for step in itertools.count():
        if step % 3 == 2:
            rebuilt.forget()
        if not (steady.run_once() + rebuilt.run_once()):
            break
    assert rebuilt_store.pending_count() == 0 and step > 50
    assert outcomes(rebuilt_store) == outcomes(steady_store)


def test_a_stalled_processor_that_gets_its_partition_back_cannot_commit_a_batch_already_processed(ward, monkeypatch):
    """The second fence: the stalled processor holds the lease again, but its old batch was finished meanwhile."""
    store, stream, stalled, passing, batch = stalled_with_successor(ward, monkeypatch, "passing")
    passing.drain()  # takes the partition over, processes the batch, then dies
    passing.stream.leave("passing")
    assert stalled.claim() == set(range(STREAM_PARTITIONS))
    with pytest.raises(LeaseLost, match="finished part of this batch"), stream.committing(batch, "stalled"):
        stalled.pipeline.process(batch.readings)
    assert alert_rules(store).count(AlertRule.NEWS2_URGENT) == 1


def test_a_patient_record_that_cannot_be_decrypted_does_not_stop_processing_for_the_others(ward):
    """A record written under a key this server does not hold (a lost key, a restored backup) is scored without age
    and sex; everyone else's alerts are raised as usual."""
    store = ward.ctx.store
    foreign_keys = StoreKeys(KeyRing.generate(), store.keys.audit)
    foreign = SqlStore(store.url, foreign_keys)
    stranger = foreign.add_patient("Unreadable Name")
    _device, token = foreign.add_device(stranger.patient_id, "wearable")
    ward.ingest(deteriorating(), token)  # the stranger, through this server's ingest and processor
    ward.ingest(deteriorating())
    assert store.pending_count() == 0 and ward.ctx.processor.stats["failures"] == 0
    raised = {(a.patient_id, a.rule) for a in store.list_alerts()}
    assert {(ward.patient_id, AlertRule.NEWS2_URGENT), (stranger.patient_id, AlertRule.NEWS2_URGENT)} <= raised
