"""Shared fixtures: a fresh store and app per test, real services where the machine has them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from vigil.api.context import AppContext
from vigil.config import Settings, load_settings
from vigil.demo import register_ward
from vigil.devices import WardSimulator
from vigil.devices.profiles import mixed_ward
from vigil.ingest.mosquitto import BrokerFiles, private_broker, write_broker_files
from vigil.security.crypto import StoreKeys
from vigil.security.identity import hash_password
from vigil.timeutil import utc_now
from vigil.web.app import create_app

pytest_plugins = ["tests.mqtt_clients"]
POSTGRES_URL = os.environ.get("VIGIL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
NATS_URL = os.environ.get("VIGIL_TEST_NATS", "nats://127.0.0.1:4222")
ON_CI = os.environ.get("CI", "").lower() == "true"


def _skip_fails_on_ci(report):
    """Under CI=true a skipped test or module is a failure: CI installs every extra and runs every service, so
    nothing may be silently left out there. On a laptop a skip stays a skip and says why."""
    if ON_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true (a skip is a failure on CI): {reason}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    return _skip_fails_on_ci((yield))


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    return _skip_fails_on_ci((yield))


def require_service(reachable: bool, what: str) -> None:
    """Skip on a laptop without the service; on CI a missing service is a failure."""
    if not reachable:
        if ON_CI:
            pytest.fail(f"{what} is not reachable on CI")
        pytest.skip(f"{what} is not reachable")


@contextmanager
def running_broker(directory: Path, device_hashes: list[tuple[str, str]], service_password: str) -> Iterator[int]:
    """A private Mosquitto on a free port, configured only from the files Vigil generates."""
    files = write_broker_files(directory / "mosquitto", device_hashes, service_password)
    with mosquitto_from(files, directory) as (port, _):
        yield port


@contextmanager
def mosquitto_from(files: BrokerFiles, directory: Path) -> Iterator[tuple[int, subprocess.Popen]]:
    """A private Mosquitto reading these password and ACL files (skipped where there is no mosquitto binary)."""
    require_service(shutil.which("mosquitto") is not None, "the mosquitto binary")
    with private_broker(files, directory) as running:
        yield running


def postgres_reachable() -> bool:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def nats_reachable() -> bool:
    host, port = NATS_URL.removeprefix("nats://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.fixture
def nats_stream_url() -> Iterator[str]:
    """A NATS JetStream URL naming a fresh stream (and lease bucket), deleted afterwards."""
    require_service(nats_reachable(), "NATS JetStream at " + NATS_URL)
    name = "vt" + uuid.uuid4().hex[:10]
    yield f"{NATS_URL}/{name}"
    delete_nats_stream(name)


def delete_nats_stream(name: str) -> None:
    import asyncio

    import nats

    async def delete() -> None:
        connection = await nats.connect(NATS_URL)
        js = connection.jetstream()
        for remove in (js.delete_stream(f"{name.upper()}_READINGS"), js.delete_key_value(f"{name}-leases")):
            try:
                await remove
            except Exception:  # never created
                pass
        await connection.close()

    asyncio.run(delete())


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch) -> None:
    """Each test's keys live in its own VIGIL_HOME (the one `settings` uses), never in ./vigil-data."""
    monkeypatch.setenv("VIGIL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("VIGIL_KEY", raising=False)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return load_settings(db=f"sqlite:///{tmp_path / 'vigil.db'}", home=str(tmp_path / "home"))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    require_service(postgres_reachable(), "PostgreSQL at " + POSTGRES_URL)
    schema = "vigil_test_" + uuid.uuid4().hex[:10]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_url")


@dataclass
class Ward:
    """A small ward: two patients with a device each, a clinician caring for the first, users of every role."""

    ctx: AppContext
    client: TestClient
    patient_id: str
    other_patient_id: str
    device_id: str
    token: str
    other_token: str

    def login(self, username: str, password: str = "correct horse battery") -> dict[str, str]:
        response = self.client.post("/api/v1/auth/token", data={"username": username, "password": password})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def web_login(self, username: str, password: str = "correct horse battery", **form: str):
        """Log in through the dashboard's form, with the CSRF token its login page set."""
        self.client.get("/login")
        data = {"username": username, "password": password, "csrf_token": self.client.cookies["vigil_csrf"], **form}
        return self.client.post("/login", data=data, follow_redirects=False)

    def ingest(self, readings: list, token: str | None = None):
        """POST a batch, then let the stream processor finish it (ingest answers before processing)."""
        response = self.client.post(
            "/api/v1/ingest", json={"readings": readings}, headers={"Authorization": f"Bearer {token or self.token}"}
        )
        self.ctx.processor.drain()
        return response


@pytest.fixture
def ward(settings) -> Iterator[Ward]:
    ctx = AppContext.build(settings)
    store = ctx.store
    first = store.add_patient("Ada Lovelace", "1815-12-10", "female", ["hypertension"])
    second = store.add_patient("Alan Turing", "1912-06-23", "male", ["diabetes"])
    device, token = store.add_device(first.patient_id, "wearable")
    _, other_token = store.add_device(second.patient_id, "cgm")
    password = hash_password("correct horse battery")
    store.add_user("dr_who", "clinician", password)
    store.add_user("dr_no", "clinician", password)
    store.add_user("root", "admin", password)
    store.add_user("ada", "patient", password, first.patient_id)
    store.assign(first.patient_id, "dr_who")
    with TestClient(create_app(ctx)) as client:
        yield Ward(ctx, client, first.patient_id, second.patient_id, device.device_id, token, other_token)


# -- a recorded ward for the stream tests ----------------------------------------------------------------------
WARD_HOURS = 4


@pytest.fixture(scope="session")
def recorded_ward(tmp_path_factory) -> tuple[Path, StoreKeys]:
    """A mixed ward's four hours (wearables, cuffs, CGMs with meals and boluses) stored and not yet processed."""
    home = tmp_path_factory.mktemp("recorded")
    ctx = AppContext.build(load_settings(db=f"sqlite:///{home / 'ward.db'}", home=str(home)))
    start = utc_now() - timedelta(hours=WARD_HOURS)
    profiles = mixed_ward(8, seed=3, onset=timedelta(hours=1))
    credentials = register_ward(ctx.store, profiles, home / "manifest.json", start)
    simulator = WardSimulator(profiles, start, seed=3)
    for step in range(1, WARD_HOURS * 12 + 1):
        for batch in simulator.advance(start + timedelta(minutes=5 * step)):
            device_id, _token = credentials[batch.key]
            ctx.ingest.ingest(ctx.store.get_device(device_id), {"readings": batch.readings})
    ctx.store.close()
    return home / "ward.db", ctx.store.keys


@pytest.fixture
def small_batches(monkeypatch):
    """Batches of 100 readings, so each partition of the recorded ward takes a dozen batches."""
    monkeypatch.setattr("vigil.processor.BATCH_LIMIT", 100)
