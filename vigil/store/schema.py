"""The relational schema shared by the SQLite and PostgreSQL stores.

Direct identifiers (patients' name, birth date, contact details, notes; users' TOTP secrets) hold
AES-GCM ciphertexts written by the store, never plaintext.
"""

from __future__ import annotations

# {id} is the dialect's auto-increment primary key; times are fixed-width UTC ISO text.
SCHEMA = """
CREATE TABLE IF NOT EXISTS patients (
    patient_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    birth_date TEXT,
    sex TEXT,
    conditions TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL,
    phone TEXT,
    email TEXT,
    address TEXT,
    notes TEXT
);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients(patient_id),
    kind TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    mqtt_hash TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    patient_id TEXT REFERENCES patients(patient_id),
    created_at TEXT NOT NULL,
    totp_secret TEXT,
    totp_last_step BIGINT,
    locked_at TEXT
);
CREATE TABLE IF NOT EXISTS assignments (
    username TEXT NOT NULL REFERENCES users(username),
    patient_id TEXT NOT NULL REFERENCES patients(patient_id),
    PRIMARY KEY (username, patient_id)
);
CREATE TABLE IF NOT EXISTS readings (
    id {id},
    patient_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    time TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    unit TEXT NOT NULL,
    seq BIGINT,
    quality TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS readings_device_seq ON readings (device_id, seq) WHERE seq IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS readings_device_metric_time ON readings (device_id, metric, time) WHERE seq IS NULL;
CREATE INDEX IF NOT EXISTS readings_patient_metric_time ON readings (patient_id, metric, time);
CREATE INDEX IF NOT EXISTS readings_time ON readings (time);
CREATE TABLE IF NOT EXISTS stream_pending (
    reading_id BIGINT PRIMARY KEY,
    partition_no INTEGER NOT NULL,
    published INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS stream_pending_partition ON stream_pending (partition_no, reading_id);
CREATE INDEX IF NOT EXISTS stream_pending_unpublished ON stream_pending (reading_id) WHERE published = 0;
CREATE TABLE IF NOT EXISTS stream_leases (
    partition_no INTEGER PRIMARY KEY,
    owner TEXT,
    expires_at TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS stage_states (
    patient_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (patient_id, stage)
);
CREATE TABLE IF NOT EXISTS stream_members (
    owner TEXT PRIMARY KEY,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS scores (
    id {id},
    patient_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    time TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    details TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS scores_patient_kind_time ON scores (patient_id, kind, time);
CREATE TABLE IF NOT EXISTS patient_status (
    patient_id TEXT PRIMARY KEY,
    updated_at TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    id {id},
    patient_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    severity_rank INTEGER NOT NULL,
    time TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT NOT NULL,
    acknowledged_by TEXT,
    acknowledged_at TEXT,
    level INTEGER NOT NULL DEFAULT 1,
    raised_at TEXT,
    last_notified_at TEXT,
    notified_count INTEGER NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_open ON alerts (patient_id, rule) WHERE acknowledged_at IS NULL;
CREATE TABLE IF NOT EXISTS alert_events (
    id {id},
    alert_id BIGINT NOT NULL,
    time TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_events_alert ON alert_events (alert_id, id);
CREATE TABLE IF NOT EXISTS recommendations (
    id {id},
    patient_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    time TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    data TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    decided_by TEXT,
    decided_at TEXT,
    decision_note TEXT,
    valid_until TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    superseded_by BIGINT,
    subject TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS news2_inputs (
    id {id},
    patient_id TEXT NOT NULL REFERENCES patients(patient_id),
    time TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    supplemental_oxygen INTEGER,
    oxygen_flow DOUBLE PRECISION,
    consciousness TEXT,
    spo2_scale INTEGER NOT NULL,
    spo2_scale_reason TEXT
);
CREATE INDEX IF NOT EXISTS news2_inputs_patient_time ON news2_inputs (patient_id, time);
CREATE TABLE IF NOT EXISTS sessions (
    jti TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    audience TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX IF NOT EXISTS sessions_username ON sessions (username);
CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at);
CREATE TABLE IF NOT EXISTS login_failures (
    username TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    locked_until TEXT
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id {id},
    received_at TEXT NOT NULL,
    device_id TEXT,
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload_sha256 TEXT NOT NULL,
    payload_bytes BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_received_at ON dead_letters (received_at);
CREATE TABLE IF NOT EXISTS audit_log (
    seq BIGINT PRIMARY KEY,
    time TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    patient_id TEXT,
    resource TEXT NOT NULL,
    outcome TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    mac TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_patient ON audit_log (patient_id, seq);
"""

# Columns added after the first release: stores created before them gain them when opened.
ADDED_COLUMNS = [
    ("patients", "phone", "TEXT"),
    ("patients", "email", "TEXT"),
    ("patients", "address", "TEXT"),
    ("patients", "notes", "TEXT"),
    ("users", "totp_secret", "TEXT"),
    ("users", "totp_last_step", "BIGINT"),
    ("users", "locked_at", "TEXT"),
    ("alerts", "level", "INTEGER NOT NULL DEFAULT 1"),
    ("alerts", "raised_at", "TEXT"),
    ("alerts", "last_notified_at", "TEXT"),
    ("alerts", "notified_count", "INTEGER NOT NULL DEFAULT 1"),
    ("recommendations", "valid_until", "TEXT"),
    ("recommendations", "version", "INTEGER NOT NULL DEFAULT 1"),
    ("recommendations", "superseded_by", "BIGINT"),
    ("recommendations", "subject", "TEXT NOT NULL DEFAULT ''"),
]

# Run after ADDED_COLUMNS on every open. Recommendations are immutable records: the index that let a newer one
# overwrite the pending one goes; one of unknown validity (written before valid_until) is stale at once.
MIGRATIONS = """
DROP INDEX IF EXISTS recommendations_one_pending;
UPDATE recommendations SET valid_until = time WHERE valid_until IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS recommendations_pending_subject ON recommendations (patient_id, kind, subject) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS recommendations_pending_until ON recommendations (valid_until) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS recommendations_patient_time ON recommendations (patient_id, time);
"""
