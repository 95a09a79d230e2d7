"""The store: patients, devices, users, readings and derived events in SQLite or PostgreSQL."""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson

from vigil.domain import (
    Alert,
    AlertDraft,
    Device,
    Patient,
    Reading,
    Recommendation,
    RecommendationDraft,
    Score,
    User,
)
from vigil.store.dialects import dialect_for
from vigil.store.schema import SCHEMA
from vigil.timeutil import format_time, parse_time, utc_now

SEVERITY_RANK = {"info": 0, "warning": 1, "urgent": 2}


def hash_token(token: str) -> str:
    """Device tokens are 256-bit random strings, so a plain SHA-256 is a safe lookup hash."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(6)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _time(value: str | None) -> datetime | None:
    return parse_time(value) if value else None


class SqlStore:
    """One store for both engines; SQL is written once with '?' placeholders."""

    def __init__(self, url: str):
        self.url = url
        self._dialect = dialect_for(url)
        self._local = threading.local()
        self._dialect.run_script(self._conn(), SCHEMA.replace("{id}", self._dialect.id_column))

    # -- plumbing ---------------------------------------------------------------------------
    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._dialect.connect()
        return conn

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self._dialect.placeholder)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return list(self._conn().execute(self._sql(sql), params).fetchall())

    def _one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _write(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        conn = self._conn()
        with self._dialect.transaction(conn):
            cursor = conn.execute(self._sql(sql), params)
            return list(cursor.fetchall()) if cursor.description else []

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- patients ---------------------------------------------------------------------------
    def add_patient(
        self, name: str, birth_date: str | None = None, sex: str | None = None, conditions: Iterable[str] = ()
    ) -> Patient:
        patient = Patient(new_id("p"), name, birth_date, sex, tuple(conditions), utc_now())
        self._write(
            "INSERT INTO patients (patient_id, name, birth_date, sex, conditions, created_at) VALUES (?,?,?,?,?,?)",
            (patient.patient_id, name, birth_date, sex, _json(list(patient.conditions)), format_time(patient.created_at)),
        )
        return patient

    def get_patient(self, patient_id: str) -> Patient | None:
        patients = self.list_patients([patient_id])
        return patients[0] if patients else None

    def list_patients(self, patient_ids: Iterable[str] | None = None) -> list[Patient]:
        sql = "SELECT patient_id, name, birth_date, sex, conditions, created_at FROM patients"
        params: list[Any] = []
        if patient_ids is not None:
            params = list(patient_ids)
            if not params:
                return []
            sql += f" WHERE patient_id IN ({','.join('?' * len(params))})"
        rows = self._rows(sql + " ORDER BY created_at, patient_id", params)
        return [Patient(r[0], r[1], r[2], r[3], tuple(orjson.loads(r[4])), _time(r[5])) for r in rows]

    # -- devices ----------------------------------------------------------------------------
    def add_device(self, patient_id: str, kind: str) -> tuple[Device, str]:
        """Register a device for a patient; returns it with its token, which is stored only hashed."""
        from vigil.ingest.mosquitto import mosquitto_password_hash

        if self.get_patient(patient_id) is None:
            raise KeyError(f"no patient {patient_id!r}")
        device = Device(new_id("d"), patient_id, kind)
        token = secrets.token_urlsafe(32)
        self._write(
            "INSERT INTO devices (device_id, patient_id, kind, token_hash, mqtt_hash, created_at) VALUES (?,?,?,?,?,?)",
            (device.device_id, patient_id, kind, hash_token(token), mosquitto_password_hash(token), format_time(utc_now())),
        )
        return device, token

    def rotate_device_token(self, device_id: str) -> str:
        """Give a device a new token (the old one stops working) and re-enable it."""
        from vigil.ingest.mosquitto import mosquitto_password_hash

        token = secrets.token_urlsafe(32)
        updated = self._write(
            "UPDATE devices SET token_hash = ?, mqtt_hash = ?, revoked = 0 WHERE device_id = ? RETURNING device_id",
            (hash_token(token), mosquitto_password_hash(token), device_id),
        )
        if not updated:
            raise KeyError(f"no device {device_id!r}")
        return token

    def revoke_device(self, device_id: str) -> None:
        if not self._write("UPDATE devices SET revoked = 1 WHERE device_id = ? RETURNING device_id", (device_id,)):
            raise KeyError(f"no device {device_id!r}")

    def device_for_token(self, token: str) -> Device | None:
        row = self._one(
            "SELECT device_id, patient_id, kind, revoked FROM devices WHERE token_hash = ? AND revoked = 0",
            (hash_token(token),),
        )
        return Device(row[0], row[1], row[2], bool(row[3])) if row else None

    def get_device(self, device_id: str) -> Device | None:
        row = self._one("SELECT device_id, patient_id, kind, revoked FROM devices WHERE device_id = ?", (device_id,))
        return Device(row[0], row[1], row[2], bool(row[3])) if row else None

    def list_devices(self, patient_id: str | None = None) -> list[Device]:
        sql = "SELECT device_id, patient_id, kind, revoked FROM devices"
        params: tuple = ()
        if patient_id is not None:
            sql, params = sql + " WHERE patient_id = ?", (patient_id,)
        return [Device(r[0], r[1], r[2], bool(r[3])) for r in self._rows(sql + " ORDER BY created_at", params)]

    def mqtt_credentials(self) -> list[tuple[str, str]]:
        """(device_id, Mosquitto password hash) of every active device, for the broker's password file."""
        return [(r[0], r[1]) for r in self._rows("SELECT device_id, mqtt_hash FROM devices WHERE revoked = 0 ORDER BY device_id")]

    # -- users ------------------------------------------------------------------------------
    def add_user(self, username: str, role: str, password_hash: str, patient_id: str | None = None) -> User:
        self._write(
            "INSERT INTO users (username, role, password_hash, patient_id, created_at) VALUES (?,?,?,?,?)",
            (username, role, password_hash, patient_id, format_time(utc_now())),
        )
        return User(username, role, password_hash, patient_id)  # type: ignore[arg-type]

    def get_user(self, username: str) -> User | None:
        row = self._one("SELECT username, role, password_hash, patient_id FROM users WHERE username = ?", (username,))
        return User(row[0], row[1], row[2], row[3]) if row else None

    def set_password(self, username: str, password_hash: str) -> None:
        self._write("UPDATE users SET password_hash = ? WHERE username = ?", (password_hash, username))

    def assign(self, patient_id: str, username: str) -> None:
        self._write(
            "INSERT INTO assignments (username, patient_id) VALUES (?,?) ON CONFLICT DO NOTHING", (username, patient_id)
        )

    def assigned_patient_ids(self, username: str) -> set[str]:
        return {r[0] for r in self._rows("SELECT patient_id FROM assignments WHERE username = ?", (username,))}

    # -- readings ---------------------------------------------------------------------------
    def insert_readings(self, readings: Sequence[Reading]) -> list[bool]:
        """Store readings in one transaction; True where stored, False where (device_id, seq) was seen."""
        received = format_time(utc_now())
        sql = self._sql(
            "INSERT INTO readings (patient_id, device_id, metric, time, value, unit, seq, quality, received_at)"
            " VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING"
        )
        conn = self._conn()
        stored = []
        with self._dialect.transaction(conn):
            for r in readings:
                cursor = conn.execute(
                    sql, (r.patient_id, r.device_id, r.metric, format_time(r.time), r.value, r.unit, r.seq, r.quality, received)
                )
                stored.append(cursor.rowcount == 1)
        return stored

    def query_readings(
        self,
        patient_id: str | None = None,
        metric: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
    ) -> list[Reading]:
        """Readings in time order, filtered by patient, metric and [start, end)."""
        clauses, params = [], []
        for column, op, value in (
            ("patient_id", "=", patient_id),
            ("metric", "=", metric),
            ("time", ">=", start and format_time(start)),
            ("time", "<", end and format_time(end)),
        ):
            if value is not None:
                clauses.append(f"{column} {op} ?")
                params.append(value)
        sql = "SELECT patient_id, device_id, metric, time, value, unit, seq, quality FROM readings"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY time, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [Reading(r[0], r[1], r[2], parse_time(r[3]), r[4], r[5], r[6], r[7]) for r in self._rows(sql, params)]

    def count_readings(self) -> int:
        return int(self._one("SELECT count(*) FROM readings")[0])

    def last_reading_time(self) -> datetime | None:
        row = self._one("SELECT max(time) FROM readings")
        return _time(row[0]) if row else None

    # -- scores and status ------------------------------------------------------------------
    def add_scores(self, scores: Sequence[Score]) -> None:
        if not scores:
            return
        conn = self._conn()
        sql = self._sql("INSERT INTO scores (patient_id, kind, time, value, details) VALUES (?,?,?,?,?)")
        with self._dialect.transaction(conn):
            for s in scores:
                conn.execute(sql, (s.patient_id, s.kind, format_time(s.time), s.value, _json(s.details)))

    def query_scores(
        self, patient_id: str, kind: str, start: datetime | None = None, limit: int | None = None
    ) -> list[Score]:
        sql = "SELECT patient_id, kind, time, value, details FROM scores WHERE patient_id = ? AND kind = ?"
        params: list[Any] = [patient_id, kind]
        if start is not None:
            sql += " AND time >= ?"
            params.append(format_time(start))
        sql += " ORDER BY time, id"
        if limit is not None:
            sql = f"SELECT * FROM ({sql.replace('ORDER BY time, id', 'ORDER BY time DESC, id DESC')} LIMIT {int(limit)}) AS newest ORDER BY time"
        return [Score(r[0], r[1], parse_time(r[2]), r[3], orjson.loads(r[4])) for r in self._rows(sql, params)]

    def save_statuses(self, statuses: dict[str, dict[str, Any]]) -> None:
        """Keep each patient's latest cleaned vitals and scores, as the ward list shows them."""
        if not statuses:
            return
        sql = self._sql(
            "INSERT INTO patient_status (patient_id, updated_at, status) VALUES (?,?,?)"
            " ON CONFLICT (patient_id) DO UPDATE SET updated_at = excluded.updated_at, status = excluded.status"
        )
        conn, now = self._conn(), format_time(utc_now())
        with self._dialect.transaction(conn):
            for patient_id, status in statuses.items():
                conn.execute(sql, (patient_id, now, _json(status)))

    def list_status(self, patient_ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        rows = self._rows("SELECT patient_id, status FROM patient_status")
        wanted = None if patient_ids is None else set(patient_ids)
        return {r[0]: orjson.loads(r[1]) for r in rows if wanted is None or r[0] in wanted}

    # -- alerts -----------------------------------------------------------------------------
    _ALERT_COLUMNS = "id, patient_id, rule, severity, time, message, data, acknowledged_by, acknowledged_at"

    @staticmethod
    def _alert(r: tuple) -> Alert:
        return Alert(r[0], r[1], r[2], r[3], parse_time(r[4]), r[5], orjson.loads(r[6]), r[7], _time(r[8]))

    def raise_alert(self, draft: AlertDraft) -> Alert | None:
        """Open an alert, or escalate the open one for the same (patient, rule); None if deduplicated."""
        rows = self._write(
            "INSERT INTO alerts (patient_id, rule, severity, severity_rank, time, message, data) VALUES (?,?,?,?,?,?,?)"
            " ON CONFLICT (patient_id, rule) WHERE acknowledged_at IS NULL DO UPDATE SET"
            " severity = excluded.severity, severity_rank = excluded.severity_rank, time = excluded.time,"
            " message = excluded.message, data = excluded.data"
            " WHERE excluded.severity_rank > alerts.severity_rank"
            f" RETURNING {self._ALERT_COLUMNS}",
            (draft.patient_id, draft.rule, draft.severity, SEVERITY_RANK[draft.severity], format_time(draft.time),
             draft.message, _json(draft.data)),
        )
        return self._alert(rows[0]) if rows else None

    def list_alerts(
        self, patient_ids: Iterable[str] | None = None, open_only: bool = False, limit: int = 200
    ) -> list[Alert]:
        sql = f"SELECT {self._ALERT_COLUMNS} FROM alerts"
        clauses, params = [], []
        if patient_ids is not None:
            params = list(patient_ids)
            if not params:
                return []
            clauses.append(f"patient_id IN ({','.join('?' * len(params))})")
        if open_only:
            clauses.append("acknowledged_at IS NULL")
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        return [self._alert(r) for r in self._rows(sql + f" ORDER BY time DESC, id DESC LIMIT {int(limit)}", params)]

    def get_alert(self, alert_id: int) -> Alert | None:
        row = self._one(f"SELECT {self._ALERT_COLUMNS} FROM alerts WHERE id = ?", (alert_id,))
        return self._alert(row) if row else None

    def acknowledge_alert(self, alert_id: int, username: str) -> Alert | None:
        """Acknowledge an open alert; an already acknowledged one is returned unchanged."""
        self._write(
            "UPDATE alerts SET acknowledged_by = ?, acknowledged_at = ? WHERE id = ? AND acknowledged_at IS NULL",
            (username, format_time(utc_now()), alert_id),
        )
        return self.get_alert(alert_id)

    # -- recommendations --------------------------------------------------------------------
    _REC_COLUMNS = "id, patient_id, kind, time, action, reason, data, status, decided_by, decided_at, decision_note"

    @staticmethod
    def _recommendation(r: tuple) -> Recommendation:
        return Recommendation(r[0], r[1], r[2], parse_time(r[3]), r[4], r[5], orjson.loads(r[6]), r[7], r[8], _time(r[9]), r[10])

    def add_recommendation(self, draft: RecommendationDraft) -> Recommendation | None:
        """Record a suggestion; while one of the same kind awaits a decision, it is updated instead."""
        rows = self._write(
            "INSERT INTO recommendations (patient_id, kind, time, action, reason, data) VALUES (?,?,?,?,?,?)"
            " ON CONFLICT (patient_id, kind) WHERE status = 'pending' DO UPDATE SET"
            " time = excluded.time, action = excluded.action, reason = excluded.reason, data = excluded.data"
            f" RETURNING {self._REC_COLUMNS}",
            (draft.patient_id, draft.kind, format_time(draft.time), draft.action, draft.reason, _json(draft.data)),
        )
        return self._recommendation(rows[0]) if rows else None

    def list_recommendations(self, patient_id: str, limit: int = 200) -> list[Recommendation]:
        rows = self._rows(
            f"SELECT {self._REC_COLUMNS} FROM recommendations WHERE patient_id = ? ORDER BY time DESC, id DESC LIMIT {int(limit)}",
            (patient_id,),
        )
        return [self._recommendation(r) for r in rows]

    def get_recommendation(self, recommendation_id: int) -> Recommendation | None:
        row = self._one(f"SELECT {self._REC_COLUMNS} FROM recommendations WHERE id = ?", (recommendation_id,))
        return self._recommendation(row) if row else None

    def decide_recommendation(
        self, recommendation_id: int, username: str, accepted: bool, note: str | None = None
    ) -> Recommendation | None:
        """Record a clinician's accept or reject of a pending recommendation; None if already decided."""
        rows = self._write(
            "UPDATE recommendations SET status = ?, decided_by = ?, decided_at = ?, decision_note = ?"
            f" WHERE id = ? AND status = 'pending' RETURNING {self._REC_COLUMNS}",
            ("accepted" if accepted else "rejected", username, format_time(utc_now()), note, recommendation_id),
        )
        return self._recommendation(rows[0]) if rows else None
