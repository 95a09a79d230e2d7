"""Files at rest: the SQLite database, its WAL and shared memory, and the key files are the owner's only (0600) in
directories made for the owner only (0700)."""

from __future__ import annotations

import os
import stat

from vigil.api.context import AppContext
from vigil.config import load_settings
from vigil.ingest.mosquitto import SERVICE_PASSWORD_SECRET
from vigil.store import SqlStore


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_database_its_wal_and_the_key_files_are_0600_in_0700_directories(tmp_path):
    settings = load_settings(home=str(tmp_path / "home"))  # the default: the database in VIGIL_HOME
    ctx = AppContext.build(settings)
    ctx.store.add_patient("Ada Lovelace", "1815-12-10")  # encrypts (key file), audits (HMAC key), writes the WAL
    settings.secret(SERVICE_PASSWORD_SECRET)
    database = settings.home / "vigil.db"
    assert settings.db_url == f"sqlite:///{database}"
    files = [database, database.with_name("vigil.db-wal"), database.with_name("vigil.db-shm")]
    keys = sorted(settings.keys_dir.iterdir())
    assert {key.name for key in keys} >= {"field-keys.json", "audit-hmac.key", SERVICE_PASSWORD_SECRET}
    assert {str(path): _mode(path) for path in files + keys} == {str(path): 0o600 for path in files + keys}
    assert (_mode(settings.home), _mode(settings.keys_dir)) == (0o700, 0o700)


def test_an_existing_database_readable_by_others_is_made_the_owners_only(tmp_path):
    database = tmp_path / "old.db"
    SqlStore(f"sqlite:///{database}").close()
    database.chmod(0o644)
    SqlStore(f"sqlite:///{database}").count_readings()
    assert _mode(database) == 0o600
