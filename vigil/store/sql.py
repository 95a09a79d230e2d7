"""The store: patients, devices, users, readings and derived events in SQLite or PostgreSQL."""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import orjson

from vigil.config import load_settings
from vigil.domain import (
    Alert,
    AlertDraft,
    AlertEvent,
    AlertEventKind,
    AlertRule,
    Consciousness,
    DeadLetter,
    Device,
    News2Inputs,
    Patient,
    Reading,
    Recommendation,
    RecommendationDraft,
    RecommendationKind,
    RecommendationStatus,
    Role,
    Score,
    ScoreKind,
    Severity,
    User,
)
from vigil.errors import Conflict, NotFound
from vigil.metrics import MetricName
from vigil.security.audit import GENESIS_HASH, AuditEntry, AuditEvent, next_entry
from vigil.security.crypto import StoreKeys, UnknownKeyError, ciphertext_key_id, is_ciphertext, load_store_keys
from vigil.security.mosquitto import mosquitto_password_hash
from vigil.store.dialects import dialect_for
from vigil.store.rows import READING_SELECT, reading_from_row
from vigil.store.schema import ADDED_COLUMNS, MIGRATIONS, SCHEMA
from vigil.store.stream_log import StreamLogRepository
from vigil.timeutil import format_time, parse_time, utc_now

log = logging.getLogger(__name__)
SEVERITY_RANK = {severity: rank for rank, severity in enumerate(Severity)}
PATIENT_IDENTIFIERS = ("name", "birth_date", "phone", "email", "address", "notes")
# table -> (its key column, its encrypted columns); each ciphertext is bound to table.column:key.
ENCRYPTED_COLUMNS = {"patients": ("patient_id", PATIENT_IDENTIFIERS), "users": ("username", ("totp_secret",))}
_PATIENT_COLUMNS = "patient_id, sex, conditions, created_at, " + ", ".join(PATIENT_IDENTIFIERS)
_AUDIT_COLUMNS = "seq, time, actor, action, patient_id, resource, outcome, details, prev_hash, hash, mac"
_REENCRYPT_BATCH = 200


def hash_token(token: str) -> str:
    """Device tokens are 256-bit random strings, so a plain SHA-256 is a safe lookup hash."""
    return hashlib.sha256(token.encode()).hexdigest()


def _field_context(table: str, column: str, row_key: str) -> str:
    """What an identifier's ciphertext is bound to (AES-GCM associated data): its table, column and row."""
    return f"{table}.{column}:{row_key}"


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(6)


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()  # keys may be enum members (metric names)


def _time(value: str | None) -> datetime | None:
    return parse_time(value) if value else None


STAGED_READINGS = "staged_readings"
STAGED_READING_COLUMNS = (
    "n",
    "patient_id",
    "device_id",
    "metric",
    "time",
    "value",
    "unit",
    "seq",
    "quality",
    "received_at",
)
_READING_COLUMNS = ", ".join(STAGED_READING_COLUMNS[1:])
# The PostgreSQL move (`WHERE true` would also keep SQLite from reading ON CONFLICT as part of the SELECT). The rows
# stored come back by their unique key (device and seq, or device, metric and time without a seq), matched to the
# batch by _new_flags.
MOVE_STAGED_READINGS = (
    f"INSERT INTO readings ({_READING_COLUMNS}) SELECT {_READING_COLUMNS} FROM {STAGED_READINGS} WHERE true"
    " ORDER BY n ON CONFLICT DO NOTHING RETURNING id, patient_id, device_id, seq, metric, time"
)


def _staged_rows(readings: Sequence[Reading]) -> list[tuple]:
    """Readings as staging rows, numbered in batch order, all received now."""
    received = format_time(utc_now())
    return [
        (n, r.patient_id, r.device_id, r.metric, format_time(r.time), r.value, r.unit, r.seq, r.quality, received)
        for n, r in enumerate(readings)
    ]


def _reading_key(device_id: str, seq: int | None, metric: str, time: str) -> tuple:
    return (device_id, seq) if seq is not None else (device_id, metric, time)


def _new_flags(staged: Sequence[tuple], returned: Sequence[tuple]) -> list[bool]:
    """True for the first staged row of each key the INSERT returned (id and patient first, then the key); False for
    duplicates of stored or earlier rows."""
    new_keys = {_reading_key(*row[2:]) for row in returned}
    flags = []
    for row in staged:
        key = _reading_key(row[2], row[7], row[3], row[4])
        flags.append(key in new_keys)
        new_keys.discard(key)
    return flags


def _raise_kind(before: tuple | None, draft: AlertDraft) -> AlertEventKind:
    """Whether a draft accepted by the store opened an alert, raised its severity or worsened it within it."""
    if before is None:
        return AlertEventKind.RAISED
    return AlertEventKind.ESCALATED if SEVERITY_RANK[draft.severity] > int(before[0]) else AlertEventKind.UPDATED


Status = RecommendationStatus


def _undecidable(rec: Recommendation | None, version: int) -> str:
    """Why a decision on this version of this recommendation is refused."""
    if rec is None:
        raise NotFound("recommendation not found")
    if rec.status == Status.SUPERSEDED:
        return f"superseded by recommendation {rec.superseded_by}"
    if rec.status == Status.EXPIRED or rec.valid_until <= utc_now():
        return f"expired at {format_time(rec.valid_until)}"
    if rec.status != Status.PENDING:
        return f"already {rec.status}"
    return f"version {version} is not the current version {rec.version}"


class SqlStore(StreamLogRepository):
    """One store for both engines; SQL is written once with '?' placeholders.

    `keys` encrypt identifiers and key the audit chain; by default they are loaded, when first needed,
    from VIGIL_KEY / VIGIL_HOME/keys as the environment names them.
    """

    def __init__(self, url: str, keys: StoreKeys | None = None):
        self.url = url
        self._keys = keys
        self._dialect = dialect_for(url)
        self._local = threading.local()
        self._dialect.run_script(self._conn(), SCHEMA.replace("{id}", self._dialect.id_column))
        self._add_missing_columns()
        self._dialect.run_script(self._conn(), MIGRATIONS)
        if self._count("SELECT count(*) FROM patients WHERE name NOT LIKE ?", ("v1:%",)):
            self.reencrypt_identifiers()  # a store written before identifiers were encrypted

    @property
    def keys(self) -> StoreKeys:
        if self._keys is None:
            self._keys = load_store_keys(load_settings())
        return self._keys

    @keys.setter
    def keys(self, keys: StoreKeys) -> None:
        self._keys = keys

    # -- plumbing ---------------------------------------------------------------------------
    def _conn(self) -> Any:
        """This thread's connection, opened again if the server lost it (the failed call raised; the next one
        reconnects, so a database restart does not leave a thread unable to store anything)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._dialect.is_broken(conn):
            log.warning("database connection lost; reconnecting")
            conn = None
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

    def _count(self, sql: str, params: Sequence[Any] = ()) -> int:
        """The single number a ``SELECT count(*) ...`` answers."""
        row = self._one(sql, params)
        return int(row[0]) if row else 0

    def _write(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        conn = self._conn()
        with self._dialect.transaction(conn):
            cursor = conn.execute(self._sql(sql), params)
            return list(cursor.fetchall()) if cursor.description else []

    def _add_missing_columns(self) -> None:
        conn = self._conn()
        for table, column, kind in ADDED_COLUMNS:
            if column not in self._dialect.columns(conn, table):
                try:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                except Exception:
                    if column not in self._dialect.columns(conn, table):  # else another process added it
                        raise

    @contextmanager
    def unit_of_work(self) -> Iterator[None]:
        """One transaction around everything this thread writes inside it (each store call joins it as a savepoint):
        a processed batch's derived events and its removal from the stream commit together or not at all."""
        with self._dialect.transaction(self._conn()):
            yield

    def is_unavailable(self, error: BaseException) -> bool:
        """True if the error means the database cannot be used just now (connection, lock, disk), not a bad input."""
        return isinstance(error, self._dialect.unavailable_errors)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- encrypted identifiers ---------------------------------------------------------------
    def _seal(self, table: str, column: str, row_key: str, value: str | None) -> str | None:
        return None if value is None else self.keys.field.encrypt(value, _field_context(table, column, row_key))

    def _unseal(self, table: str, column: str, row_key: str, value: str | None) -> str | None:
        if value is None:
            return None
        context = _field_context(table, column, row_key)
        try:
            return self.keys.field.decrypt(value, context)
        except UnknownKeyError:
            if self.keys.reload is None:
                raise
            self._keys = self.keys.reload()  # a rotation since we loaded the keys: pick up the new one
            return self.keys.field.decrypt(value, context)

    def reencrypt_identifiers(self) -> int:
        """Re-encrypt every identifier not yet under the current key (plaintext too); returns how many.

        Each batch of rows is its own transaction, so an interrupted run leaves every value readable
        with the key ring it ran under, and running it again finishes the job.
        """
        changed = 0
        for table, (key_column, columns) in ENCRYPTED_COLUMNS.items():
            rows = self._rows(f"SELECT {key_column}, {', '.join(columns)} FROM {table}")
            for start in range(0, len(rows), _REENCRYPT_BATCH):
                changed += self._reencrypt_rows(table, key_column, columns, rows[start : start + _REENCRYPT_BATCH])
        return changed

    def _reencrypt_rows(self, table: str, key_column: str, columns: Sequence[str], rows: list[tuple]) -> int:
        ring, changed = self.keys.field, 0
        conn = self._conn()
        with self._dialect.transaction(conn):
            for row_key, *values in rows:
                for column, value in zip(columns, values):
                    if value is None or (is_ciphertext(value) and ciphertext_key_id(value) == ring.current):
                        continue
                    plaintext = self._unseal(table, column, row_key, value) if is_ciphertext(value) else value
                    # only if unchanged since it was read: a value written meanwhile is left to the next run
                    conn.execute(
                        self._sql(f"UPDATE {table} SET {column} = ? WHERE {key_column} = ? AND {column} = ?"),
                        (self._seal(table, column, row_key, plaintext), row_key, value),
                    )
                    changed += 1
        return changed

    def key_ids_in_use(self) -> set[str]:
        """The ids of every key some stored ciphertext still needs."""
        used = set()
        for table, (_, columns) in ENCRYPTED_COLUMNS.items():
            for row in self._rows(f"SELECT {', '.join(columns)} FROM {table}"):
                used |= {ciphertext_key_id(v) for v in row if v is not None and is_ciphertext(v)}
        return used

    # -- patients ---------------------------------------------------------------------------
    def add_patient(
        self,
        name: str,
        birth_date: str | None = None,
        sex: str | None = None,
        conditions: Iterable[str] = (),
        phone: str | None = None,
        email: str | None = None,
        address: str | None = None,
        notes: str | None = None,
    ) -> Patient:
        created_at = utc_now()
        patient = Patient(
            new_id("p"), name, birth_date, sex, tuple(conditions), created_at, phone, email, address, notes
        )
        identifiers = [self._seal("patients", c, patient.patient_id, getattr(patient, c)) for c in PATIENT_IDENTIFIERS]
        self._write(
            f"INSERT INTO patients ({_PATIENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (patient.patient_id, sex, _json(list(patient.conditions)), format_time(created_at), *identifiers),
        )
        return patient

    def get_patient(self, patient_id: str) -> Patient | None:
        patients = self.list_patients([patient_id])
        return patients[0] if patients else None

    def list_patients(self, patient_ids: Iterable[str] | None = None) -> list[Patient]:
        sql = f"SELECT {_PATIENT_COLUMNS} FROM patients"
        params: list[Any] = []
        if patient_ids is not None:
            params = list(patient_ids)
            if not params:
                return []
            sql += f" WHERE patient_id IN ({','.join('?' * len(params))})"
        return [self._patient(r) for r in self._rows(sql + " ORDER BY created_at, patient_id", params)]

    def all_patient_ids(self) -> set[str]:
        return {r[0] for r in self._rows("SELECT patient_id FROM patients")}

    def _patient(self, row: tuple) -> Patient:
        patient_id, sex, conditions, created_at, *sealed = row
        identifiers: dict[str, Any] = {
            c: self._unseal("patients", c, patient_id, v) for c, v in zip(PATIENT_IDENTIFIERS, sealed)
        }
        return Patient(
            patient_id=patient_id,
            sex=sex,
            conditions=tuple(orjson.loads(conditions)),
            created_at=_time(created_at),
            **identifiers,
        )

    # -- devices ----------------------------------------------------------------------------
    def add_device(self, patient_id: str, kind: str) -> tuple[Device, str]:
        """Register a device for a patient; returns it with its token, which is stored only hashed."""
        if self.get_patient(patient_id) is None:
            raise NotFound(f"no patient {patient_id!r}", field="patient_id")
        device = Device(new_id("d"), patient_id, kind)
        token = secrets.token_urlsafe(32)
        self._write(
            "INSERT INTO devices (device_id, patient_id, kind, token_hash, mqtt_hash, created_at) VALUES (?,?,?,?,?,?)",
            (
                device.device_id,
                patient_id,
                kind,
                hash_token(token),
                mosquitto_password_hash(token),
                format_time(utc_now()),
            ),
        )
        return device, token

    def rotate_device_token(self, device_id: str) -> str:
        """Give a device a new token (the old one stops working) and re-enable it."""
        token = secrets.token_urlsafe(32)
        updated = self._write(
            "UPDATE devices SET token_hash = ?, mqtt_hash = ?, revoked = 0 WHERE device_id = ? RETURNING device_id",
            (hash_token(token), mosquitto_password_hash(token), device_id),
        )
        if not updated:
            raise NotFound(f"no device {device_id!r}", field="device_id")
        return token

    def revoke_device(self, device_id: str) -> None:
        if not self._write("UPDATE devices SET revoked = 1 WHERE device_id = ? RETURNING device_id", (device_id,)):
            raise NotFound(f"no device {device_id!r}", field="device_id")

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
        return [
            (r[0], r[1])
            for r in self._rows("SELECT device_id, mqtt_hash FROM devices WHERE revoked = 0 ORDER BY device_id")
        ]

    # -- users ------------------------------------------------------------------------------
    _USER_COLUMNS = "username, role, password_hash, patient_id, totp_secret IS NOT NULL, locked_at IS NOT NULL"

    @staticmethod
    def _user(r: tuple) -> User:
        return User(r[0], Role(r[1]), r[2], r[3], bool(r[4]), bool(r[5]))

    def add_user(self, username: str, role: Role, password_hash: str, patient_id: str | None = None) -> User:
        self._write(
            "INSERT INTO users (username, role, password_hash, patient_id, created_at) VALUES (?,?,?,?,?)",
            (username, role, password_hash, patient_id, format_time(utc_now())),
        )
        return User(username, Role(role), password_hash, patient_id)

    def get_user(self, username: str) -> User | None:
        row = self._one(f"SELECT {self._USER_COLUMNS} FROM users WHERE username = ?", (username,))
        return self._user(row) if row else None

    def list_users(self) -> list[User]:
        return [self._user(r) for r in self._rows(f"SELECT {self._USER_COLUMNS} FROM users ORDER BY username")]

    def set_totp_secret(self, username: str, secret: str | None) -> None:
        """Turn a user's one-time codes on (with this secret, stored encrypted) or off (None)."""
        self._write(
            "UPDATE users SET totp_secret = ?, totp_last_step = NULL WHERE username = ?",
            (self._seal("users", "totp_secret", username, secret), username),
        )

    def totp_secret(self, username: str) -> str | None:
        row = self._one("SELECT totp_secret FROM users WHERE username = ?", (username,))
        return self._unseal("users", "totp_secret", username, row[0]) if row else None

    def claim_totp_step(self, username: str, step: int) -> bool:
        """Mark a code's time step used; False if it (or a later one) was used already, so no code works twice."""
        return bool(
            self._write(
                "UPDATE users SET totp_last_step = ? WHERE username = ? AND (totp_last_step IS NULL OR totp_last_step < ?)"
                " RETURNING username",
                (step, username, step),
            )
        )

    # -- sessions (web session cookies and API bearer tokens, by their jti) ------------------
    def add_session(self, jti: str, username: str, audience: str, expires_at: datetime) -> None:
        """Record an issued token so it can be ended before it expires; forget tokens that expired already."""
        conn, now = self._conn(), format_time(utc_now())
        with self._dialect.transaction(conn):
            conn.execute(self._sql("DELETE FROM sessions WHERE expires_at < ?"), (now,))
            conn.execute(
                self._sql("INSERT INTO sessions (jti, username, audience, expires_at) VALUES (?,?,?,?)"),
                (jti, username, audience, format_time(expires_at)),
            )

    def session_active(self, jti: str, username: str, audience: str) -> bool:
        return (
            self._one(
                "SELECT 1 FROM sessions WHERE jti = ? AND username = ? AND audience = ? AND revoked_at IS NULL AND expires_at > ?",
                (jti, username, audience, format_time(utc_now())),
            )
            is not None
        )

    def end_session(self, jti: str) -> bool:
        """End one session (a logout); False if it had ended already."""
        return bool(
            self._write(
                "UPDATE sessions SET revoked_at = ? WHERE jti = ? AND revoked_at IS NULL RETURNING jti",
                (format_time(utc_now()), jti),
            )
        )

    def end_sessions(self, username: str) -> int:
        """End every session and bearer token of a user; returns how many were still open."""
        conn = self._conn()
        with self._dialect.transaction(conn):
            return self._end_sessions(conn, username)

    def _end_sessions(self, conn: Any, username: str) -> int:
        now = format_time(utc_now())
        cursor = conn.execute(
            self._sql(
                "UPDATE sessions SET revoked_at = ? WHERE username = ? AND revoked_at IS NULL AND expires_at > ?"
            ),
            (now, username, now),
        )
        return cursor.rowcount

    # -- login failures (lockout) -----------------------------------------------------------
    def locked_until(self, username: str) -> datetime | None:
        row = self._one("SELECT locked_until FROM login_failures WHERE username = ?", (username,))
        return _time(row[0]) if row else None

    def record_login_failure(self, username: str, limit: int, lock_until: datetime) -> bool:
        """Count a failed login; at the `limit`-th in a row the account locks until `lock_until`. True if it locked.

        One atomic upsert, so parallel failures are all counted, and a failure never lifts a lock (only success,
        an admin's unlock or time does)."""
        locks_at_once = limit <= 1
        rows = self._write(
            "INSERT INTO login_failures (username, failures, locked_until) VALUES (?,?,?) ON CONFLICT (username)"
            " DO UPDATE SET"
            " failures = CASE WHEN login_failures.failures + 1 >= ? THEN 0 ELSE login_failures.failures + 1 END,"
            " locked_until = CASE WHEN login_failures.failures + 1 >= ? THEN ? ELSE login_failures.locked_until END"
            " RETURNING failures",
            (
                username,
                0 if locks_at_once else 1,
                format_time(lock_until) if locks_at_once else None,
                limit,
                limit,
                format_time(lock_until),
            ),
        )
        return rows[0][0] == 0

    def clear_login_failures(self, username: str) -> None:
        self._write("DELETE FROM login_failures WHERE username = ?", (username,))

    def set_password(self, username: str, password_hash: str) -> int:
        """A new password; every session of the user ends (their count returned)."""
        return self._change_user_ending_sessions(username, "password_hash = ?", password_hash)

    def lock_user(self, username: str) -> int:
        """No login for this account until it is unlocked; every session ends (their count returned)."""
        return self._change_user_ending_sessions(username, "locked_at = ?", format_time(utc_now()))

    def unlock_user(self, username: str) -> None:
        """Logins allowed again, and any lockout after failed logins lifted."""
        conn = self._conn()
        with self._dialect.transaction(conn):
            conn.execute(self._sql("UPDATE users SET locked_at = NULL WHERE username = ?"), (username,))
            conn.execute(self._sql("DELETE FROM login_failures WHERE username = ?"), (username,))

    def _change_user_ending_sessions(self, username: str, assignment: str, value: str) -> int:
        conn = self._conn()
        with self._dialect.transaction(conn):
            conn.execute(self._sql(f"UPDATE users SET {assignment} WHERE username = ?"), (value, username))
            return self._end_sessions(conn, username)

    def assign(self, patient_id: str, username: str) -> None:
        self._write(
            "INSERT INTO assignments (username, patient_id) VALUES (?,?) ON CONFLICT DO NOTHING", (username, patient_id)
        )

    def unassign(self, patient_id: str, username: str) -> bool:
        """End a clinician's access to a patient; False if they had none."""
        return bool(
            self._write(
                "DELETE FROM assignments WHERE username = ? AND patient_id = ? RETURNING username",
                (username, patient_id),
            )
        )

    def assigned_patient_ids(self, username: str) -> set[str]:
        return {r[0] for r in self._rows("SELECT patient_id FROM assignments WHERE username = ?", (username,))}

    # -- readings ---------------------------------------------------------------------------
    def insert_readings(self, readings: Sequence[Reading], audit: AuditEvent | None = None) -> list[bool]:
        """Store readings in one transaction; True where stored, False where (device_id, seq) was seen.

        On PostgreSQL the batch is COPied into a per-connection staging table and moved into ``readings`` by one
        INSERT ... SELECT, which says which rows were new; SQLite inserts row by row. With `audit`,
        the same transaction appends it to the audit log (with the accepted and duplicate counts added to its details)
        if anything was stored: one entry per batch, not per reading.
        """
        if not readings:
            return []
        rows = _staged_rows(readings)
        conn = self._conn()
        with self._dialect.transaction(conn):
            stored, queued = self._insert_new(conn, rows)
            self._queue_for_processing(conn, queued)
            if audit is not None and any(stored):
                counts = {"accepted": sum(stored), "duplicates": len(stored) - sum(stored)}
                details = {**audit.details, **counts}
                event = AuditEvent(audit.actor, audit.action, audit.patient_id, audit.resource, audit.outcome, details)
                self._append_audit(conn, [event])
        return stored

    def _insert_new(self, conn: Any, rows: list[tuple]) -> tuple[list[bool], list[tuple[int, str]]]:
        """Insert staging rows: True per new one, and the new rows' (id, patient id) for the stream. PostgreSQL: one
        COPY into the staging table and one INSERT ... SELECT (8x the row-by-row rate there); SQLite: row by row,
        which in-process is faster than staging (``benchmarks/store_insert_ab.py`` measures both paths)."""
        if self._dialect.stages_batches:
            self._dialect.stage(conn, STAGED_READINGS, STAGED_READING_COLUMNS, rows)
            returned = conn.execute(self._sql(MOVE_STAGED_READINGS)).fetchall()
            return _new_flags(rows, returned), [(int(row[0]), row[1]) for row in returned]
        sql = self._sql(f"INSERT INTO readings ({_READING_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING")
        flags, queued = [], []
        for row in rows:
            cursor = conn.execute(sql, row[1:])
            flags.append(cursor.rowcount == 1)
            if cursor.rowcount == 1:
                queued.append((int(cursor.lastrowid), row[1]))
        return flags, queued

    def bulk_load_only(self, readings: Sequence[Reading]) -> None:
        """The raw bulk load of a batch (executemany or COPY into the staging table, committed) without the move into
        ``readings``: the limit an insert could reach, the baseline of ``vigil bench ingest``."""
        rows = _staged_rows(readings)
        conn = self._conn()
        with self._dialect.transaction(conn):
            self._dialect.stage(conn, STAGED_READINGS, STAGED_READING_COLUMNS, rows)

    def query_readings(
        self,
        patient_id: str | None = None,
        metric: MetricName | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
        processed_only: bool = False,
    ) -> list[Reading]:
        """Readings in time order, filtered by patient, metric and [start, end); with `processed_only`, none still
        waiting in the stream (what a processor's state is rebuilt from: the rest it will process, raising alerts)."""
        clauses: list[str] = []
        params: list[Any] = []
        if processed_only:
            clauses.append("NOT EXISTS (SELECT 1 FROM stream_pending p WHERE p.reading_id = readings.id)")
        for column, op, value in (
            ("patient_id", "=", patient_id),
            ("metric", "=", metric),
            ("time", ">=", start and format_time(start)),
            ("time", "<", end and format_time(end)),
        ):
            if value is not None:
                clauses.append(f"{column} {op} ?")
                params.append(value)
        sql = READING_SELECT
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY time, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [reading for reading in map(reading_from_row, self._rows(sql, params)) if reading is not None]

    def count_readings(self, device_ids: Sequence[str] | None = None) -> int:
        """How many readings are stored, in all or from these devices."""
        if device_ids is None:
            return self._count("SELECT count(*) FROM readings")
        if not device_ids:
            return 0
        marks = ",".join("?" * len(device_ids))
        return self._count(f"SELECT count(*) FROM readings WHERE device_id IN ({marks})", tuple(device_ids))

    def last_reading_time(self) -> datetime | None:
        """The newest reading's time; rows whose time does not parse are passed over (see ``reading_from_row``)."""
        for (text,) in self._rows("SELECT DISTINCT time FROM readings ORDER BY time DESC LIMIT 100"):
            try:
                return parse_time(text)
            except ValueError:
                log.warning("readings with time %r skipped: not a valid fixed-width UTC time", text)
        return None

    # -- dead letters -----------------------------------------------------------------------
    def add_dead_letter(self, letter: DeadLetter) -> None:
        """Record a broker message that was acknowledged without being ingested (its hash and size, never its body)."""
        self._write(
            "INSERT INTO dead_letters (received_at, device_id, topic, reason, payload_sha256, payload_bytes)"
            " VALUES (?,?,?,?,?,?)",
            (
                format_time(letter.received_at),
                letter.device_id,
                letter.topic,
                letter.reason,
                letter.payload_sha256,
                letter.payload_bytes,
            ),
        )

    def list_dead_letters(self, limit: int = 1000) -> list[DeadLetter]:
        """The newest dead letters first."""
        rows = self._rows(
            "SELECT received_at, device_id, topic, reason, payload_sha256, payload_bytes FROM dead_letters"
            f" ORDER BY received_at DESC, id DESC LIMIT {int(limit)}"
        )
        return [DeadLetter(parse_time(r[0]), r[1], r[2], r[3], r[4], int(r[5])) for r in rows]

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
        self, patient_id: str, kind: ScoreKind, start: datetime | None = None, limit: int | None = None
    ) -> list[Score]:
        sql = "SELECT patient_id, kind, time, value, details FROM scores WHERE patient_id = ? AND kind = ?"
        params: list[Any] = [patient_id, kind]
        if start is not None:
            sql += " AND time >= ?"
            params.append(format_time(start))
        sql += " ORDER BY time, id"
        if limit is not None:
            sql = f"SELECT * FROM ({sql.replace('ORDER BY time, id', 'ORDER BY time DESC, id DESC')} LIMIT {int(limit)}) AS newest ORDER BY time"
        return [
            Score(r[0], ScoreKind(r[1]), parse_time(r[2]), r[3], orjson.loads(r[4])) for r in self._rows(sql, params)
        ]

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
    _ALERT_COLUMNS = (
        "id, patient_id, rule, severity, time, message, data, acknowledged_by, acknowledged_at,"
        " COALESCE(raised_at, time), COALESCE(last_notified_at, time), notified_count"
    )
    _HISTORY_BATCH = 500

    @staticmethod
    def _alert(r: tuple, history: tuple[AlertEvent, ...] = ()) -> Alert:
        return Alert(
            r[0],
            r[1],
            AlertRule(r[2]),
            Severity(r[3]),
            parse_time(r[4]),
            r[5],
            orjson.loads(r[6]),
            r[7],
            _time(r[8]),
            parse_time(r[9]),
            parse_time(r[10]),
            int(r[11]),
            history,
        )

    _UPSERT_ALERT = (
        "INSERT INTO alerts (patient_id, rule, severity, severity_rank, level, time, message, data, raised_at,"
        " last_notified_at, notified_count) VALUES (?,?,?,?,?,?,?,?,?,?,1)"
        " ON CONFLICT (patient_id, rule) WHERE acknowledged_at IS NULL DO UPDATE SET"
        " severity = excluded.severity, severity_rank = excluded.severity_rank, level = excluded.level,"
        " time = excluded.time, message = excluded.message, data = excluded.data,"
        " raised_at = COALESCE(alerts.raised_at, alerts.time),"  # an alert raised before raised_at was stored
        " last_notified_at = excluded.last_notified_at, notified_count = alerts.notified_count + 1"
        " WHERE (excluded.severity_rank, excluded.level) > (alerts.severity_rank, alerts.level)"
        f" RETURNING {_ALERT_COLUMNS}"
    )

    def raise_alert(self, draft: AlertDraft, now: datetime | None = None) -> Alert | None:
        """Open an alert, or update the open one for the same (patient, rule) with a worse draft (a higher severity,
        or a higher level at the same severity), recording the change in its history; None if not worse."""
        notified = format_time(now or utc_now())
        conn = self._conn()
        with self._dialect.transaction(conn):
            before = conn.execute(
                self._sql(
                    "SELECT severity_rank FROM alerts WHERE patient_id = ? AND rule = ? AND acknowledged_at IS NULL"
                ),
                (draft.patient_id, draft.rule),
            ).fetchone()
            rows = conn.execute(self._sql(self._UPSERT_ALERT), self._alert_params(draft, notified)).fetchall()
            if not rows:
                return None
            self._add_alert_event(
                conn, rows[0][0], draft.time, _raise_kind(before, draft), draft.severity, draft.message
            )
        return self._with_history(rows[0])

    @staticmethod
    def _alert_params(draft: AlertDraft, notified: str) -> tuple:
        """The upsert's values: a new alert is raised at its draft's time and notified now."""
        time, rank = format_time(draft.time), SEVERITY_RANK[draft.severity]
        message, data = draft.message, _json(draft.data)
        return (draft.patient_id, draft.rule, draft.severity, rank, draft.level, time, message, data, time, notified)

    def _add_alert_event(
        self, conn: Any, alert_id: int, time: datetime, kind: AlertEventKind, severity: Severity, message: str
    ) -> None:
        conn.execute(
            self._sql("INSERT INTO alert_events (alert_id, time, kind, severity, message) VALUES (?,?,?,?,?)"),
            (alert_id, format_time(time), kind, severity, message),
        )

    def _histories(self, alert_ids: Sequence[int]) -> dict[int, list[AlertEvent]]:
        """Each alert's events, oldest first."""
        histories: dict[int, list[AlertEvent]] = {alert_id: [] for alert_id in alert_ids}
        for at in range(0, len(alert_ids), self._HISTORY_BATCH):
            batch = list(alert_ids[at : at + self._HISTORY_BATCH])
            sql = (
                "SELECT alert_id, time, kind, severity, message FROM alert_events"
                f" WHERE alert_id IN ({','.join('?' * len(batch))}) ORDER BY id"
            )
            for r in self._rows(sql, batch):
                histories[r[0]].append(AlertEvent(parse_time(r[1]), AlertEventKind(r[2]), Severity(r[3]), r[4]))
        return histories

    def _with_history(self, row: tuple) -> Alert:
        return self._alert(row, tuple(self._histories([row[0]])[row[0]]))

    def list_alerts(
        self, patient_ids: Iterable[str] | None = None, open_only: bool = False, limit: int = 200, history: bool = True
    ) -> list[Alert]:
        """Newest first, each with its history unless ``history`` is False."""
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
        rows = self._rows(sql + f" ORDER BY time DESC, id DESC LIMIT {int(limit)}", params)
        histories = self._histories([r[0] for r in rows]) if history else {}
        return [self._alert(r, tuple(histories.get(r[0], ()))) for r in rows]

    def get_alert(self, alert_id: int) -> Alert | None:
        row = self._one(f"SELECT {self._ALERT_COLUMNS} FROM alerts WHERE id = ?", (alert_id,))
        return self._with_history(row) if row else None

    def acknowledge_alert(self, alert_id: int, username: str) -> Alert | None:
        """Acknowledge an open alert; an already acknowledged one is returned unchanged."""
        now = utc_now()
        conn = self._conn()
        with self._dialect.transaction(conn):
            rows = conn.execute(
                self._sql(
                    "UPDATE alerts SET acknowledged_by = ?, acknowledged_at = ? WHERE id = ? AND acknowledged_at IS NULL"
                    " RETURNING severity, message"
                ),
                (username, format_time(now), alert_id),
            ).fetchall()
            if rows:
                message = f"acknowledged by {username}"
                self._add_alert_event(conn, alert_id, now, AlertEventKind.ACKNOWLEDGED, Severity(rows[0][0]), message)
        return self.get_alert(alert_id)

    def renotify_due(self, now: datetime, intervals: Mapping[Severity, timedelta]) -> list[Alert]:
        """Raise again each open alert whose severity has an interval and which has gone that long unacknowledged
        since it was last notified; each re-notification is kept in the alert's history."""
        due = [
            alert
            for alert in self.list_alerts(open_only=True, limit=10_000, history=False)
            if alert.severity in intervals
            and alert.last_notified_at
            and now - alert.last_notified_at >= intervals[alert.severity]
        ]
        return [renotified for alert in due if (renotified := self._renotify(alert, now)) is not None]

    def _renotify(self, alert: Alert, now: datetime) -> Alert | None:
        """None when the alert was acknowledged, or re-notified by another process, since it was read."""
        conn = self._conn()
        with self._dialect.transaction(conn):
            rows = conn.execute(
                self._sql(
                    "UPDATE alerts SET last_notified_at = ?, notified_count = notified_count + 1"
                    " WHERE id = ? AND acknowledged_at IS NULL AND COALESCE(last_notified_at, time) = ?"
                    f" RETURNING {self._ALERT_COLUMNS}"
                ),
                (format_time(now), alert.alert_id, format_time(alert.last_notified_at or alert.time)),
            ).fetchall()
            if not rows:
                return None
            self._add_alert_event(conn, alert.alert_id, now, AlertEventKind.RENOTIFIED, alert.severity, alert.message)
        return self._with_history(rows[0])

    # -- recommendations --------------------------------------------------------------------
    _REC_COLUMNS = (
        "id, patient_id, kind, time, action, reason, data, valid_until, status, decided_by, decided_at,"
        " decision_note, version, superseded_by, subject"
    )

    @staticmethod
    def _recommendation(r: tuple) -> Recommendation:
        return Recommendation(
            r[0],
            r[1],
            RecommendationKind(r[2]),
            parse_time(r[3]),
            r[4],
            r[5],
            orjson.loads(r[6]),
            parse_time(r[7]),
            RecommendationStatus(r[8]),
            r[9],
            _time(r[10]),
            r[11],
            r[12],
            r[13],
            r[14],
        )

    def add_recommendation(self, draft: RecommendationDraft) -> Recommendation:
        """Record a suggestion as a new record; the pending one it replaces (same patient, kind and subject) is kept,
        superseded by it, never overwritten."""
        conn = self._conn()
        with self._dialect.transaction(conn):
            self._expire(conn, format_time(utc_now()))
            replaced = conn.execute(
                self._sql(
                    "UPDATE recommendations SET status = ?, version = version + 1"
                    " WHERE patient_id = ? AND kind = ? AND subject = ? AND status = ? RETURNING id"
                ),
                (Status.SUPERSEDED, draft.patient_id, draft.kind, draft.subject, Status.PENDING),
            ).fetchall()
            row = conn.execute(
                self._sql(
                    "INSERT INTO recommendations (patient_id, kind, time, action, reason, data, valid_until, subject)"
                    f" VALUES (?,?,?,?,?,?,?,?) RETURNING {self._REC_COLUMNS}"
                ),
                (
                    draft.patient_id,
                    draft.kind,
                    format_time(draft.time),
                    draft.action,
                    draft.reason,
                    _json(draft.data),
                    format_time(draft.expiry()),
                    draft.subject,
                ),
            ).fetchone()
            for (old_id,) in replaced:
                conn.execute(self._sql("UPDATE recommendations SET superseded_by = ? WHERE id = ?"), (row[0], old_id))
        return self._recommendation(row)

    def _expire(self, conn: Any, now: str) -> None:
        conn.execute(
            self._sql(
                "UPDATE recommendations SET status = ?, version = version + 1 WHERE status = ? AND valid_until <= ?"
            ),
            (Status.EXPIRED, Status.PENDING, now),
        )

    def expire_recommendations(self, now: datetime | None = None) -> None:
        """Mark every pending recommendation past its valid_until expired (a write only when one is)."""
        at = format_time(now or utc_now())
        if self._count(
            "SELECT count(*) FROM recommendations WHERE status = ? AND valid_until <= ?", (Status.PENDING, at)
        ):
            conn = self._conn()
            with self._dialect.transaction(conn):
                self._expire(conn, at)

    def end_recommendations(self, patient_id: str, kind: RecommendationKind, at: datetime) -> None:
        """The patient's pending advice of this kind stopped holding `at` (e.g. NEWS2 fell): expired from then."""
        self._write(
            "UPDATE recommendations SET status = ?, valid_until = ?, version = version + 1"
            " WHERE patient_id = ? AND kind = ? AND status = ? AND valid_until > ?",
            (Status.EXPIRED, format_time(at), patient_id, kind, Status.PENDING, format_time(at)),
        )

    def list_recommendations(self, patient_id: str, limit: int = 200) -> list[Recommendation]:
        """The newest first; none shown pending past its valid_until."""
        self.expire_recommendations()
        rows = self._rows(
            f"SELECT {self._REC_COLUMNS} FROM recommendations WHERE patient_id = ? ORDER BY time DESC, id DESC LIMIT {int(limit)}",
            (patient_id,),
        )
        return [self._recommendation(r) for r in rows]

    def get_recommendation(self, recommendation_id: int) -> Recommendation | None:
        self.expire_recommendations()
        row = self._one(f"SELECT {self._REC_COLUMNS} FROM recommendations WHERE id = ?", (recommendation_id,))
        return self._recommendation(row) if row else None

    def decide_recommendation(
        self, recommendation_id: int, username: str, accepted: bool, note: str | None = None, *, version: int
    ) -> Recommendation:
        """Record a clinician's accept or reject of exactly `version`, in one conditional update: Conflict unless that
        version is current, pending and still valid (two racing decisions: one wins)."""
        self.expire_recommendations()
        now = format_time(utc_now())
        rows = self._write(
            "UPDATE recommendations SET status = ?, decided_by = ?, decided_at = ?, decision_note = ?,"
            " version = version + 1 WHERE id = ? AND status = ? AND version = ? AND valid_until > ?"
            f" RETURNING {self._REC_COLUMNS}",
            (
                Status.ACCEPTED if accepted else Status.REJECTED,
                username,
                now,
                note,
                recommendation_id,
                Status.PENDING,
                version,
                now,
            ),
        )
        if rows:
            return self._recommendation(rows[0])
        raise Conflict(_undecidable(self.get_recommendation(recommendation_id), version))

    # -- NEWS2 inputs a clinician records ---------------------------------------------------
    _NEWS2_INPUT_COLUMNS = (
        "patient_id, time, recorded_by, supplemental_oxygen, oxygen_flow, consciousness, spo2_scale, spo2_scale_reason"
    )

    @staticmethod
    def _news2_inputs(r: tuple) -> News2Inputs:
        oxygen = None if r[3] is None else bool(r[3])
        consciousness = None if r[5] is None else Consciousness(r[5])
        return News2Inputs(r[0], parse_time(r[1]), r[2], oxygen, r[4], consciousness, int(r[6]), r[7])

    def record_news2_inputs(self, inputs: News2Inputs) -> News2Inputs:
        """Append a clinician's record of oxygen, consciousness and SpO2 scale (every record is kept)."""
        oxygen = None if inputs.supplemental_oxygen is None else int(inputs.supplemental_oxygen)
        self._write(
            f"INSERT INTO news2_inputs ({self._NEWS2_INPUT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
            (
                inputs.patient_id,
                format_time(inputs.time),
                inputs.recorded_by,
                oxygen,
                inputs.oxygen_flow,
                inputs.consciousness,
                inputs.spo2_scale,
                inputs.spo2_scale_reason,
            ),
        )
        return inputs

    def news2_inputs_history(self, patient_id: str, limit: int = 200) -> list[News2Inputs]:
        """A patient's records, newest first."""
        rows = self._rows(
            f"SELECT {self._NEWS2_INPUT_COLUMNS} FROM news2_inputs WHERE patient_id = ?"
            f" ORDER BY time DESC, id DESC LIMIT {int(limit)}",
            (patient_id,),
        )
        return [self._news2_inputs(r) for r in rows]

    def latest_news2_inputs(self) -> dict[str, News2Inputs]:
        """Every patient's newest record."""
        rows = self._rows(f"SELECT {self._NEWS2_INPUT_COLUMNS} FROM news2_inputs ORDER BY time, id")
        return {r[0]: self._news2_inputs(r) for r in rows}

    # -- audit log --------------------------------------------------------------------------
    def append_audit(self, events: Sequence[AuditEvent]) -> list[AuditEntry]:
        """Append events to the hash chain in one transaction; concurrent writers queue, never fork it."""
        conn = self._conn()
        with self._dialect.transaction(conn):
            return self._append_audit(conn, events)

    def _append_audit(self, conn: Any, events: Sequence[AuditEvent]) -> list[AuditEntry]:
        self._dialect.serialise_audit(conn)
        last = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        prev_seq, prev_hash = (last[0], last[1]) if last else (0, GENESIS_HASH)
        now, entries = format_time(utc_now()), []
        sql = self._sql(f"INSERT INTO audit_log ({_AUDIT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)")
        for event in events:
            entry = next_entry(prev_seq, prev_hash, event, now, self.keys.audit)
            conn.execute(
                sql,
                (
                    entry.seq,
                    entry.time,
                    entry.actor,
                    entry.action,
                    entry.patient_id,
                    entry.resource,
                    entry.outcome,
                    entry.details,
                    entry.prev_hash,
                    entry.hash,
                    entry.mac,
                ),
            )
            entries.append(entry)
            prev_seq, prev_hash = entry.seq, entry.hash
        return entries

    def audit_entries(self, after_seq: int = 0, limit: int = 10_000) -> list[AuditEntry]:
        """Entries in chain order, `limit` at a time from after `after_seq`."""
        rows = self._rows(
            f"SELECT {_AUDIT_COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT {int(limit)}", (after_seq,)
        )
        return [AuditEntry(*row) for row in rows]

    def audit_entry(self, seq: int) -> AuditEntry | None:
        row = self._one(f"SELECT {_AUDIT_COLUMNS} FROM audit_log WHERE seq = ?", (seq,))
        return AuditEntry(*row) if row else None

    def audit_entries_for_patient(self, patient_id: str) -> list[AuditEntry]:
        """Entries about this patient: those naming it, and list reads whose details name it among others."""
        listed = "%" + orjson.dumps(patient_id).decode() + "%"
        rows = self._rows(
            f"SELECT {_AUDIT_COLUMNS} FROM audit_log WHERE patient_id = ? OR details LIKE ? ORDER BY seq",
            (patient_id, listed),
        )
        entries = [AuditEntry(*row) for row in rows]
        return [
            e
            for e in entries
            if e.patient_id == patient_id or patient_id in orjson.loads(e.details).get("patients", ())
        ]
