"""Encryption at rest: field ciphertexts bound to their row and column, no plaintext identifier in the
database file, key files, VIGIL_KEY, and key rotation (also interrupted halfway)."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
import subprocess
import sys
from dataclasses import replace

import pytest

from vigil.config import load_settings
from vigil.security.crypto import (
    KEY_FILE,
    DecryptionError,
    KeyConfigError,
    KeyRing,
    UnknownKeyError,
    ciphertext_key_id,
    keyring_from_env,
    load_keyring,
    load_store_keys,
    save_keyring,
)
from vigil.security.keys import rotate_field_keys
from vigil.security.policy import operator
from vigil.store import SqlStore

IDENTIFIERS = {
    "name": "Quintessa Vantablack",
    "birth_date": "1917-03-29",
    "phone": "+44 7700 900461",
    "email": "quintessa@example.org",
    "address": "12 Wyvern Close, Lower Slaughter",
    "notes": "lives alone; cat named Mothball",
}


def _add(store: SqlStore, **overrides):
    fields = {**IDENTIFIERS, **overrides}
    return store.add_patient(
        fields["name"],
        fields["birth_date"],
        "female",
        ["heart failure"],
        fields["phone"],
        fields["email"],
        fields["address"],
        fields["notes"],
    )


def test_ciphertext_round_trips_and_is_bound_to_its_row_and_field():
    ring = KeyRing.generate()
    token = ring.encrypt("Ada Lovelace", "patients.name:p1")
    assert token.startswith(f"v1:{ring.current}:") and "Ada" not in token
    assert ring.decrypt(token, "patients.name:p1") == "Ada Lovelace"
    assert ring.encrypt("Ada Lovelace", "patients.name:p1") != token  # fresh nonce every time
    for elsewhere in ("patients.name:p2", "patients.notes:p1"):
        with pytest.raises(DecryptionError, match="does not belong here"):
            ring.decrypt(token, elsewhere)
    kid, nonce, sealed = token.split(":")[1:]
    altered = base64.b64encode(bytes([base64.b64decode(sealed)[0] ^ 1]) + base64.b64decode(sealed)[1:]).decode()
    with pytest.raises(DecryptionError):
        ring.decrypt(f"v1:{kid}:{nonce}:{altered}", "patients.name:p1")
    with pytest.raises(UnknownKeyError):
        KeyRing.generate().decrypt(token, "patients.name:p1")
    with pytest.raises(DecryptionError, match="not a Vigil ciphertext"):
        ring.decrypt("Ada Lovelace", "patients.name:p1")


def test_swapped_ciphertexts_between_rows_are_refused(settings):
    store = SqlStore(settings.db_url)
    first, second = _add(store), _add(store, name="Other Person")
    store.close()
    with sqlite3.connect(settings.db_url.removeprefix("sqlite:///")) as conn:
        (name,) = conn.execute("SELECT name FROM patients WHERE patient_id = ?", (first.patient_id,)).fetchone()
        conn.execute("UPDATE patients SET name = ? WHERE patient_id = ?", (name, second.patient_id))
    with pytest.raises(DecryptionError):
        SqlStore(settings.db_url).get_patient(second.patient_id)


def test_database_file_holds_no_plaintext_identifier(tmp_path):
    db = tmp_path / "raw.db"
    store = SqlStore(f"sqlite:///{db}")
    patient = _add(store)
    store.add_user("quintessa", "patient", "hash", patient.patient_id)
    store.set_totp_secret("quintessa", "JBSWY3DPEHPK3PXP")
    assert store.get_patient(patient.patient_id).notes == IDENTIFIERS["notes"]
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("raw.db"))
    assert any(p.name == "raw.db-wal" for p in tmp_path.iterdir())  # both the file and its WAL were searched
    for value in [*IDENTIFIERS.values(), "Vantablack", "Mothball", "JBSWY3DPEHPK3PXP"]:
        assert value.encode() not in raw, value
    assert patient.patient_id.encode() in raw  # the search itself finds what is there


def test_key_file_is_created_private_and_vigil_key_overrides_it(settings, monkeypatch):
    ring = load_keyring(settings)
    path = settings.keys_dir / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(settings.keys_dir.stat().st_mode) == 0o700
    assert load_keyring(settings) == ring
    env_key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("VIGIL_KEY", env_key)
    from_env = load_keyring(load_settings(db=settings.db_url))
    assert from_env.current != ring.current and from_env == keyring_from_env(env_key)
    with pytest.raises(KeyConfigError, match="not base64"):
        keyring_from_env("not base64!")
    with pytest.raises(KeyConfigError, match="32 bytes"):
        keyring_from_env(base64.b64encode(b"short").decode())
    with pytest.raises(KeyConfigError, match="VIGIL_KEY"):
        save_keyring(load_settings(db=settings.db_url), from_env)


def _vigil(settings, *args: str, env: dict | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    run_env = {**os.environ, "VIGIL_HOME": str(settings.home), "VIGIL_DB": settings.db_url, **(env or {})}
    result = subprocess.run(
        [sys.executable, "-m", "vigil", *args], env=run_env, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode == 0) == ok, result.stderr
    return result


def test_rotation_reencrypts_everything_and_retires_the_old_key(settings):
    store = SqlStore(settings.db_url, load_store_keys(settings))
    patients = [_add(store, name=f"Patient {i}") for i in range(3)]
    old = store.keys.field.current
    result = json.loads(_vigil(settings, "keys", "rotate", "--json").stdout)
    assert result["key_id"] != old and result["no_longer_needed"] == [old]
    assert result["reencrypted"] == 3 * len(IDENTIFIERS)
    assert set(json.loads((settings.keys_dir / KEY_FILE).read_text())["keys"]) == {result["key_id"]}
    assert store.key_ids_in_use() == {result["key_id"]}
    # a store opened before the rotation picks the new key up from the key file
    assert [store.get_patient(p.patient_id).name for p in patients] == ["Patient 0", "Patient 1", "Patient 2"]


def test_rotating_keys_saves_the_new_ring_retires_the_old_key_and_is_audited(settings):
    store = SqlStore(settings.db_url, load_store_keys(settings))
    _add(store)
    old = store.keys.field.current
    rotation = rotate_field_keys(settings, store, operator())
    assert rotation.key_id != old and rotation.no_longer_needed == [old] and rotation.reencrypted == len(IDENTIFIERS)
    assert store.key_ids_in_use() == {rotation.key_id} and set(load_keyring(settings).keys) == {rotation.key_id}
    entry = store.audit_entries()[-1]
    assert (entry.action, json.loads(entry.details)) == ("keys.rotate", {"key_id": rotation.key_id, "reencrypted": 6})


def test_rotating_keys_from_vigil_key_needs_a_new_first_key(settings):
    old, new = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))
    store = SqlStore(settings.db_url, load_store_keys(replace(settings, field_key=old)))
    _add(store)
    with pytest.raises(KeyConfigError, match="put a new key first"):
        rotate_field_keys(replace(settings, field_key=old), store, operator())
    store.keys = load_store_keys(replace(settings, field_key=f"{new},{old}"))
    rotation = rotate_field_keys(replace(settings, field_key=f"{new},{old}"), store, operator())
    assert rotation.key_id == keyring_from_env(new).current and rotation.no_longer_needed == [
        keyring_from_env(old).current
    ]
    assert not (settings.keys_dir / KEY_FILE).exists()  # VIGIL_KEY's keys never go to a file


def test_interrupted_rotation_leaves_everything_readable_and_a_rerun_finishes(settings, monkeypatch):
    store = SqlStore(settings.db_url, load_store_keys(settings))
    patients = [_add(store, name=f"Patient {i}") for i in range(5)]
    rotated = store.keys.field.with_new_current_key()
    save_keyring(settings, rotated)  # what `keys rotate` does first
    half = SqlStore(settings.db_url, load_store_keys(settings))
    rows = half._rows("SELECT patient_id, name FROM patients ORDER BY patient_id")
    monkeypatch.setattr("vigil.store.sql._REENCRYPT_BATCH", 2)
    half._reencrypt_rows("patients", "patient_id", ["name"], rows[:2])  # ... and then the process died
    assert len({ciphertext_key_id(r[0]) for r in half._rows("SELECT name FROM patients")}) == 2
    fresh = SqlStore(settings.db_url, load_store_keys(settings))
    assert sorted(p.name for p in fresh.list_patients()) == [f"Patient {i}" for i in range(5)]
    _vigil(settings, "keys", "rotate")
    final = SqlStore(settings.db_url, load_store_keys(settings))
    assert len(final.key_ids_in_use()) == 1 and len(final.keys.field.keys) == 1
    assert final.get_patient(patients[4].patient_id).email == IDENTIFIERS["email"]


def test_rotation_with_vigil_key_moves_everything_to_its_first_key(settings):
    old, new = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))
    patient = json.loads(
        _vigil(settings, "patients", "add", "--name", "Env Keyed", "--json", env={"VIGIL_KEY": old}).stdout
    )
    refused = _vigil(settings, "keys", "rotate", env={"VIGIL_KEY": old}, ok=False)
    assert "put a new key first" in refused.stderr
    result = json.loads(_vigil(settings, "keys", "rotate", "--json", env={"VIGIL_KEY": f"{new},{old}"}).stdout)
    assert result["no_longer_needed"] == [keyring_from_env(old).current]
    listed = json.loads(_vigil(settings, "patients", "list", "--json", env={"VIGIL_KEY": new}).stdout)
    assert [(p["patient_id"], p["name"]) for p in listed] == [(patient["patient_id"], "Env Keyed")]
    assert "cannot decrypt" in _vigil(settings, "patients", "list", env={"VIGIL_KEY": old}, ok=False).stderr


def test_store_written_before_encryption_is_encrypted_when_opened(tmp_path):
    db = tmp_path / "legacy.db"
    with sqlite3.connect(db) as conn:  # the first release's patients table, with a plaintext row
        conn.execute(
            "CREATE TABLE patients (patient_id TEXT PRIMARY KEY, name TEXT NOT NULL, birth_date TEXT, sex TEXT,"
            " conditions TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL)"
        )
        conn.execute(
            "INSERT INTO patients VALUES ('pold', 'Legacy Lettice', '1950-01-02', 'female', '[]', "
            "'2026-01-01T00:00:00.000000Z')"
        )
    store = SqlStore(f"sqlite:///{db}")
    assert store.get_patient("pold").name == "Legacy Lettice" and store.get_patient("pold").phone is None
    assert all(value.startswith("v1:") for value in store._rows("SELECT name, birth_date FROM patients")[0])
