"""The store's side of the embedded stream: stored readings waiting to be processed, by partition, and which
processor owns each partition (leases that expire, so a dead processor's partitions are taken over)."""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from vigil.domain import Reading
from vigil.store.rows import READING_SELECT, reading_from_row
from vigil.timeutil import format_time

STREAM_PARTITIONS = 16
"""Patients are dealt into this many partitions; each is processed by one owner at a time, in order."""


def partition_of(patient_id: str, partitions: int = STREAM_PARTITIONS) -> int:
    """The partition a patient's readings go to: a stable hash, the same in every process and on every machine."""
    return zlib.crc32(patient_id.encode()) % partitions


def _id_list(reading_ids: Sequence[int]) -> str:
    """Reading ids as SQL literals (integers only, so nothing can be injected)."""
    return ",".join(str(int(reading_id)) for reading_id in reading_ids)


def fair_share(partitions: int, members: int) -> int:
    """How many partitions each of `members` live processors should own."""
    return math.ceil(partitions / max(1, members))


class StreamLogRepository:
    """Mixed into ``SqlStore``: the pending-readings queue and the partition leases, on the store's connection."""

    _conn: Any
    _dialect: Any

    def _sql(self, sql: str) -> str:
        raise NotImplementedError

    def _queue_for_processing(self, conn: Any, stored: Sequence[tuple[int, str]]) -> None:
        """Queue newly stored readings, given as (reading id, patient id), inside the storing transaction."""
        if stored:
            sql = self._sql("INSERT INTO stream_pending (reading_id, partition_no) VALUES (?, ?)")
            conn.cursor().executemany(sql, [(reading_id, partition_of(pid)) for reading_id, pid in stored])

    def pending_readings(self, partition: int, limit: int) -> list[tuple[int, Reading]]:
        """The oldest readings of one partition still waiting to be processed, as (reading id, reading)."""
        rows = self._conn().execute(
            self._sql(
                f"{READING_SELECT} JOIN stream_pending p ON p.reading_id = readings.id"
                f" WHERE p.partition_no = ? ORDER BY p.reading_id LIMIT {int(limit)}"
            ),
            (partition,),
        )
        return [(row[0], reading) for row in rows.fetchall() if (reading := reading_from_row(row)) is not None]

    def pending_ids(self, partition: int, limit: int) -> list[int]:
        """The ids of one partition's oldest pending readings (those whose stored time no longer parses included)."""
        rows = self._conn().execute(
            self._sql(
                f"SELECT reading_id FROM stream_pending WHERE partition_no = ? ORDER BY reading_id LIMIT {limit}"
            ),
            (partition,),
        )
        return [int(row[0]) for row in rows.fetchall()]

    def pending_count(self) -> int:
        """How many stored readings are waiting to be processed (the stream's backlog)."""
        row = self._conn().execute("SELECT count(*) FROM stream_pending").fetchone()
        return int(row[0]) if row else 0

    def finish_pending(self, reading_ids: Sequence[int]) -> int:
        """Take processed (or dead-lettered) readings off the queue, inside the processing unit of work; returns how
        many were still on it (fewer than given: another processor finished some first)."""
        if not reading_ids:
            return 0
        return (
            self._conn().execute(f"DELETE FROM stream_pending WHERE reading_id IN ({_id_list(reading_ids)})").rowcount
        )

    def still_pending(self, reading_ids: Sequence[int]) -> set[int]:
        """Which of these readings are still waiting to be processed (a redelivered message may hold finished ones)."""
        if not reading_ids:
            return set()
        sql = f"SELECT reading_id FROM stream_pending WHERE reading_id IN ({_id_list(reading_ids)})"
        return {int(row[0]) for row in self._conn().execute(sql).fetchall()}

    def unpublished_readings(
        self, limit: int, received_before: datetime | None = None
    ) -> list[tuple[int, int, Reading]]:
        """The oldest stored readings not yet published to an external stream (received before a time, if given), as
        (id, partition, reading)."""
        before = "" if received_before is None else " AND readings.received_at < ?"
        rows = self._conn().execute(
            self._sql(
                f"{READING_SELECT.replace(' FROM', ', p.partition_no FROM')} JOIN stream_pending p"
                f" ON p.reading_id = readings.id WHERE p.published = 0{before} ORDER BY p.reading_id LIMIT {int(limit)}"
            ),
            () if received_before is None else (format_time(received_before),),
        )
        return [(row[0], int(row[-1]), reading) for row in rows.fetchall() if (reading := reading_from_row(row))]

    def mark_published(self, reading_ids: Sequence[int]) -> None:
        if reading_ids:
            conn = self._conn()
            with self._dialect.transaction(conn):
                conn.execute(f"UPDATE stream_pending SET published = 1 WHERE reading_id IN ({_id_list(reading_ids)})")

    def save_stage_states(self, stage: str, states: Mapping[str, dict]) -> None:
        """Checkpoint a stage's per-patient state (JSON), inside the unit of work of the batch that produced it."""
        if states:
            sql = self._sql(
                "INSERT INTO stage_states (patient_id, stage, state) VALUES (?, ?, ?)"
                " ON CONFLICT (patient_id, stage) DO UPDATE SET state = excluded.state"
            )
            rows = [(pid, stage, orjson.dumps(state).decode()) for pid, state in states.items()]
            self._conn().cursor().executemany(sql, rows)

    def stage_states(self, stage: str) -> dict[str, dict]:
        """Each patient's last checkpointed state of a stage."""
        rows = self._conn().execute(self._sql("SELECT patient_id, state FROM stage_states WHERE stage = ?"), (stage,))
        return {pid: orjson.loads(state) for pid, state in rows.fetchall()}

    def holds_partition(self, owner: str, partition: int, until: datetime) -> bool:
        """Extend `owner`'s lease on a partition; False if another processor owns it now (the fence checked in the
        same transaction that commits processed work, so two owners can never both commit a partition's batch)."""
        cursor = self._conn().execute(
            self._sql("UPDATE stream_leases SET expires_at = ? WHERE partition_no = ? AND owner = ?"),
            (format_time(until), partition, owner),
        )
        return cursor.rowcount == 1

    def heartbeat(self, owner: str, now: datetime, until: datetime) -> int:
        """Say `owner` is alive until `until`; forget members that stopped saying so; returns how many are alive."""
        conn = self._conn()
        with self._dialect.transaction(conn):
            conn.execute(self._sql("DELETE FROM stream_members WHERE expires_at < ?"), (format_time(now),))
            conn.execute(
                self._sql(
                    "INSERT INTO stream_members (owner, expires_at) VALUES (?, ?)"
                    " ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at"
                ),
                (owner, format_time(until)),
            )
            row = conn.execute("SELECT count(*) FROM stream_members").fetchone()
        return int(row[0])

    def claim_partitions(self, owner: str, want: int, now: datetime, until: datetime) -> set[int]:
        """Renew `owner`'s leases up to `want` partitions, give back the rest, and take free or expired ones up to
        `want`; returns the partitions `owner` holds until `until`."""
        conn = self._conn()
        stamp, expiry = format_time(now), format_time(until)
        with self._dialect.transaction(conn):
            conn.cursor().executemany(
                self._sql("INSERT INTO stream_leases (partition_no) VALUES (?) ON CONFLICT DO NOTHING"),
                [(p,) for p in range(STREAM_PARTITIONS)],
            )
            leases = conn.execute("SELECT partition_no, owner, expires_at FROM stream_leases ORDER BY partition_no")
            rows = [(int(p), o, e) for p, o, e in leases.fetchall()]
            mine = [p for p, o, _ in rows if o == owner]
            free = [p for p, o, e in rows if o != owner and (o is None or e < stamp)]
            for partition in mine[want:]:
                self._release(conn, owner, partition)
            take = mine[:want] + free[: max(0, want - len(mine))]
            claim = self._sql(
                "UPDATE stream_leases SET owner = ?, expires_at = ?"
                " WHERE partition_no = ? AND (owner = ? OR owner IS NULL OR expires_at < ?)"
            )
            return {p for p in take if conn.execute(claim, (owner, expiry, p, owner, stamp)).rowcount == 1}

    def release_partitions(self, owner: str) -> None:
        """Give back every partition `owner` holds and leave the members (a clean stop: no 10-second wait)."""
        conn = self._conn()
        with self._dialect.transaction(conn):
            for partition in range(STREAM_PARTITIONS):
                self._release(conn, owner, partition)
            conn.execute(self._sql("DELETE FROM stream_members WHERE owner = ?"), (owner,))

    def _release(self, conn: Any, owner: str, partition: int) -> None:
        conn.execute(
            self._sql("UPDATE stream_leases SET owner = NULL, expires_at = '' WHERE partition_no = ? AND owner = ?"),
            (partition, owner),
        )
