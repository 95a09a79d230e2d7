"""The whole path: simulated devices -> ingest (HTTP or MQTT) -> store -> signal -> care -> alert on the API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import running_broker
from vigil.care import CareEngine
from vigil.demo import register_ward
from vigil.devices import MqttTransport, PatientProfile, SimClock, WardSimulator, build_clients, run_simulation
from vigil.devices.profiles import Deterioration
from vigil.ingest.mosquitto import SERVICE_USER
from vigil.ingest.mqtt import MqttIngestor
from vigil.ingest.service import IngestService
from vigil.mqtt import MqttEndpoint
from vigil.pipeline import Pipeline
from vigil.ports import free_port, wait_for_port
from vigil.signal import SignalProcessor
from vigil.store import SqlStore
from vigil.timeutil import utc_now

PASSWORD = "end-to-end password"
FIXTURE = Path(__file__).parent / "fixtures" / "physionet2019"


def _cli(env: dict, *args: str, stdin: str | None = None, timeout: float = 180) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "vigil", *args], env=env, input=stdin, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture
def served(tmp_path):
    """`vigil serve` on a free port with an admin login; yields (base URL, environment, auth headers)."""
    env = {**os.environ, "VIGIL_HOME": str(tmp_path / "home"), "VIGIL_DB": f"sqlite:///{tmp_path / 'e2e.db'}"}
    _cli(env, "users", "add", "--username", "root", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "vigil", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "serve.log").open("wb"),
    )
    try:
        wait_for_port(port, timeout=30)
        base = f"http://127.0.0.1:{port}"
        token = httpx.post(f"{base}/api/v1/auth/token", data={"username": "root", "password": PASSWORD}).json()[
            "access_token"
        ]
        yield base, env, {"Authorization": f"Bearer {token}"}
    finally:
        server.terminate()
        server.wait(15)


def test_http_simulation_raises_a_news2_alert_for_the_deteriorating_patient_only(tmp_path, served):
    base, env, headers = served
    _cli(env, "simulate", "--patients", "4", "--url", base, "--hours", "6", "--speed", "50000", "--seed", "3")
    alerts = httpx.get(f"{base}/api/v1/alerts", headers=headers).json()
    ward = httpx.get(f"{base}/api/v1/patients", headers=headers).json()
    manifest = json.loads((tmp_path / "home" / "simulator" / "ward-seed3.json").read_text())["patients"]
    deteriorating = manifest["p04"]["patient_id"]
    news2_alerts = {a["patient_id"] for a in alerts if a["rule"] == "news2_urgent"}
    assert news2_alerts == {deteriorating}
    assert ward[0]["patient_id"] == deteriorating, "the ward list is sorted by NEWS2, highest first"
    assert ward[0]["status"]["scores"]["news2"]["value"] >= 5
    assert all(row["status"] and row["status"]["values"].get("heart_rate") for row in ward)


def test_mqtt_simulation_through_the_acl_broker_raises_an_alert(tmp_path):
    store = SqlStore(f"sqlite:///{tmp_path / 'mqtt.db'}")
    start = utc_now() - timedelta(hours=2, minutes=30)
    profiles = [
        PatientProfile("calm", "Calm Patient", "healthy", seed=11),
        PatientProfile(
            "sick",
            "Sick Patient",
            "deteriorating",
            seed=12,
            devices=("wearable",),
            deterioration=Deterioration(onset=timedelta(minutes=30)),
        ),
    ]
    credentials = register_ward(store, profiles, tmp_path / "ward.json", start)
    pipeline = Pipeline(store, SignalProcessor(), CareEngine())
    with running_broker(tmp_path, store.mqtt_credentials(), "svc-password") as port:
        ingestor = MqttIngestor(
            IngestService(store, pipeline.process), MqttEndpoint("127.0.0.1", port, False, SERVICE_USER, "svc-password")
        )
        ingestor.start()
        transport = MqttTransport(f"mqtt://127.0.0.1:{port}")
        try:
            final = run_simulation(
                WardSimulator(profiles, start, seed=5),
                build_clients(credentials, transport, seed=5),
                SimClock(start, speed=100_000),
                threading.Event(),
                hours=2.5,
                tick_seconds=0.05,
            )
            assert final.pending == 0
            generated = final.generated
            _wait(lambda: store.count_readings() + ingestor.stats["duplicates"] >= generated)
        finally:
            transport.close()
            ingestor.stop()
    sick = json.loads((tmp_path / "ward.json").read_text())["patients"]["sick"]["patient_id"]
    alerts = store.list_alerts()
    assert {a.patient_id for a in alerts if a.rule == "news2_urgent"} == {sick}


def _wait(predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("the broker did not deliver every reading in time")
        time.sleep(0.1)


def test_replayed_icu_stays_are_scored_hourly_with_explanations(served):
    base, env, headers = served
    _cli(env, "simulate", "--replay", str(FIXTURE), "--patients", "3", "--url", base, "--speed", "1000000")
    ward = httpx.get(f"{base}/api/v1/patients", params={"sort": "risk"}, headers=headers).json()
    assert len(ward) == 3 and all(row["conditions"] == ["PhysioNet 2019 replay"] for row in ward)
    risk = httpx.get(
        f"{base}/api/v1/patients/{ward[0]['patient_id']}/risk", params={"hours": 24 * 30}, headers=headers
    ).json()
    history = risk["sepsis"]["history"]
    assert len(history) >= 5 and all(0 <= h["value"] <= 1 for h in history)
    explanation = risk["sepsis"]["latest"]["explanation"]
    assert len(explanation) == 5 and {"input", "text", "value", "contribution"} <= set(explanation[0])
    assert "vitals only" in risk["sepsis"]["model"] and "ICULOS" not in risk["sepsis"]["model_inputs"]
