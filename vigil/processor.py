"""The stream processor: owns partitions of the stream, runs their readings through one Pipeline and commits each
batch's scores, alerts and advice together with its removal from the stream; rebuilds its state from the store
when the partitions it owns change or a batch fails."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from vigil.domain import Alert, DeadLetter, News2Inputs
from vigil.pipeline import Pipeline
from vigil.store import SqlStore
from vigil.store.stream_log import partition_of
from vigil.stream import LeaseLost, Stream, StreamBatch
from vigil.timeutil import utc_now

log = logging.getLogger(__name__)

BATCH_LIMIT = 2000
"""At most this many readings of one partition per unit of work."""
RENEW_SECONDS = 2.0
"""How often a processor renews its leases (they last ``LEASE_SECONDS``) and looks for partitions to take over."""
IDLE_WAIT_SECONDS = 0.05
"""How long an idle processor waits for new readings before it looks again (other processes' appends are polled:
an idle pass is one indexed query per owned partition, and this wait is most of an alert's latency)."""
FAILURE_BACKOFF_SECONDS = 1.0
MAX_SINGLE_ATTEMPTS = 2
"""A failing batch is retried in halves; a single reading that still fails this often is dead-lettered..."""
SYSTEMIC_FAILURES = 30
"""...unless this many batches in a row failed, or none ever succeeded: then the fault is the processor's (a bug, a
broken model file), not the reading's, and the readings wait in the stream (ingest answers 503 once it is full)."""


def processor_name() -> str:
    """A name unique to this process: host, pid and a random suffix (a restarted pid is a new owner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Processor:
    """One owner of stream partitions; every public method is safe to call from any thread."""

    def __init__(self, store: SqlStore, stream: Stream, make_pipeline: Callable[[], Pipeline], owner: str = ""):
        self.store = store
        self.stream = stream
        self.owner = owner or processor_name()
        self.stats: Counter[str] = Counter()
        self._make_pipeline = make_pipeline
        self._lock = threading.RLock()
        self._owned: set[int] = set()
        self._renewed = -RENEW_SECONDS
        self._stale = False  # memory may hold part of a batch that was rolled back: rebuild before going on
        self._limits: dict[int, int] = {}  # partition -> batch size while a failing batch is narrowed down
        self._single_failures: Counter[int] = Counter()  # reading id -> failures as a batch of one
        self._successes = 0
        self._failures_in_a_row = 0
        self._prescriptions: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pipeline = make_pipeline()

    # -- ownership --------------------------------------------------------------------------
    @property
    def owned(self) -> set[int]:
        return set(self._owned)

    def owns(self, patient_id: str) -> bool:
        return partition_of(patient_id) in self._owned

    def claim(self) -> set[int]:
        """Renew leases and take this processor's fair share; state for gained partitions is rebuilt from the store
        (only readings already processed: the rest are still in the stream and will raise their alerts)."""
        with self._lock:
            held = self.stream.join(self.owner)
            self._renewed = time.monotonic()
            lost, gained = self._owned - held, held - self._owned
            if lost or self._stale:
                self._rebuild(held)
            elif gained:
                self.pipeline.warm_up(belongs=lambda pid: partition_of(pid) in gained)
            if lost or gained:
                log.info("processor %s owns partitions %s", self.owner, sorted(held))
            self._owned = held
            self.pipeline.refresh_news2_inputs(lambda pid: partition_of(pid) in held)
            return set(held)

    def forget(self) -> None:
        """Drop the in-memory state; it is rebuilt from the store before the next batch (as after a failure)."""
        with self._lock:
            self._stale = True

    def _rebuild(self, partitions: set[int]) -> None:
        pipeline = self._make_pipeline()
        for patient_id, therapy in self._prescriptions.items():
            pipeline.glucose.prescribe(patient_id, therapy)
        if partitions:
            pipeline.warm_up(belongs=lambda pid: partition_of(pid) in partitions)
        self.pipeline, self._stale = pipeline, False

    # -- processing -------------------------------------------------------------------------
    def run_once(self) -> int:
        """Process one batch of each owned partition, renewing the leases whenever due (between batches, so a long
        pass never outlives them); returns the readings done."""
        with self._lock:
            done = 0
            for partition in sorted(self._renewed_if_due()):
                if partition in self._renewed_if_due():
                    done += self._process_next(partition)
            return done

    def _renewed_if_due(self) -> set[int]:
        if self._stale or time.monotonic() - self._renewed >= RENEW_SECONDS:
            self.claim()
        return self._owned

    def drain(self, timeout: float = 120.0) -> int:
        """Process until every owned partition's queue is empty (tests and benchmarks); returns the readings done."""
        deadline, done = time.monotonic() + timeout, 0
        self.claim()
        while time.monotonic() < deadline:
            failures = self.stats["failures"]
            step = self.run_once()
            done += step
            if step == 0 and not self._stale and self.stats["failures"] == failures:
                return done
        raise TimeoutError(f"processor {self.owner} still had readings to process after {timeout} s")

    def _process_next(self, partition: int) -> int:
        if self._stale:
            return 0
        batch = self.stream.read(partition, self._limits.get(partition, BATCH_LIMIT))
        if batch is None:
            return 0
        try:
            derived = [self.pipeline.derive(part) for part in batch.parts]  # before the write lock is taken
            with self.stream.committing(batch, self.owner):
                for part in derived:
                    self.pipeline.record(part)
        except LeaseLost:
            log.warning("processor %s lost partition %d; its batch is left to the new owner", self.owner, partition)
            self._owned.discard(partition)
            self._stale = True
            return 0
        except Exception as error:
            self._stale = True
            self._failed(batch, error)
            return 0
        self._limits.pop(partition, None)
        self._successes += 1
        self._failures_in_a_row = 0
        self.stats["readings"] += len(batch.ids)
        self.stats["batches"] += 1
        return len(batch.ids)

    def _failed(self, batch: StreamBatch, error: Exception) -> None:
        """A batch's unit of work rolled back: retry it in halves; dead-letter a single reading that keeps failing.
        An unavailable store is waited out, not counted against the batch."""
        self.stats["failures"] += 1
        self._failures_in_a_row += 1
        if self.store.is_unavailable(error):
            log.warning("store unavailable while processing partition %d; retrying", batch.partition)
            return
        log.exception("processing %d readings of partition %d failed", len(batch.ids), batch.partition)
        if len(batch.ids) > 1:
            self._limits[batch.partition] = max(1, len(batch.ids) // 2)
            return
        reading_id = batch.ids[0]
        self._single_failures[reading_id] += 1
        systemic = self._successes == 0 or self._failures_in_a_row > SYSTEMIC_FAILURES
        if self._single_failures[reading_id] >= MAX_SINGLE_ATTEMPTS and not systemic:
            self._dead_letter(batch, error)

    def _dead_letter(self, batch: StreamBatch, error: Exception) -> None:
        reading = batch.readings[0] if batch.readings else None
        self.stream.discard(batch)
        self.store.add_dead_letter(
            DeadLetter(
                utc_now(),
                reading.device_id if reading else None,
                f"stream/partition/{batch.partition}",
                f"processing failed: {type(error).__name__}: {error}"[:500],
                hashlib.sha256(repr(reading).encode()).hexdigest(),
                0,
            )
        )
        self._single_failures.pop(batch.ids[0], None)
        self._limits.pop(batch.partition, None)
        self.stats["dead_letters"] += 1
        log.error("reading %d of partition %d dead-lettered after repeated failures", batch.ids[0], batch.partition)

    # -- what the API asks of the owner of a patient's state --------------------------------
    def record_news2_inputs(self, inputs: News2Inputs) -> list[Alert]:
        """Store a clinician's NEWS2 inputs; re-score at once if this processor owns the patient (the owner elsewhere
        takes them up at its next lease renewal, within ``RENEW_SECONDS``)."""
        with self._lock:
            if self.owns(inputs.patient_id):
                return self.pipeline.record_news2_inputs(inputs)
            self.store.record_news2_inputs(inputs)
            return []

    def prescribe(self, patient_id: str, therapy: Any) -> None:
        """The patient's known insulin therapy, kept across rebuilds of the state."""
        with self._lock:
            self._prescriptions[patient_id] = therapy
            self.pipeline.glucose.prescribe(patient_id, therapy)

    def renotify_due(self) -> list[Alert]:
        return self.pipeline.renotify_due()

    def glucose_view(self, patient_id: str) -> dict[str, Any] | None:
        """The patient's glucose panel: from memory where this processor owns the patient, else rebuilt from what
        the owner wrote to the store (any server shows it, processing or not)."""
        with self._lock:
            if self.owns(patient_id):
                return self.pipeline.glucose.view(patient_id)
            therapy = self._prescriptions.get(patient_id)
        return self.pipeline.stored_glucose_view(patient_id, therapy)

    # -- background thread ------------------------------------------------------------------
    def start(self) -> Processor:
        self._thread = threading.Thread(target=self._run, name="processor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the batch in hand and give the partitions back at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
        try:
            self.stream.leave(self.owner)
        except Exception:  # the leases then expire on their own
            log.exception("processor %s could not give back its partitions", self.owner)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                done = self.run_once()
            except Exception:  # the store is down or a rebuild failed: try again shortly
                log.exception("processor %s pass failed", self.owner)
                self._stale = True
                self._stop.wait(FAILURE_BACKOFF_SECONDS)
                continue
            if done == 0:
                self.stream.wait(IDLE_WAIT_SECONDS)


__all__ = ["Processor", "processor_name"]
