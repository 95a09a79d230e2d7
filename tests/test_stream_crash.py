"""`kill -9` under load, as an operator would see it: `vigil serve` (ingest only), a `vigil process`, the NATS server
and an MQTT `vigil worker` are killed mid-stream and replaced; nothing acknowledged is lost or stored twice, and the
alerts are those of an undisturbed run, each raised once."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest

from tests.conftest import require_service
from vigil.api.context import AppContext
from vigil.config import load_settings
from vigil.ingest.mosquitto import SERVICE_PASSWORD_SECRET, private_broker, write_broker_files
from vigil.mqtt import READINGS_TOPIC, MqttEndpoint, mqtt_client
from vigil.ports import free_port, wait_for_port
from vigil.timeutil import format_time, utc_now

NORMAL = {"resp_rate": 16.0, "spo2": 97.0, "systolic_bp": 124.0, "heart_rate": 72.0, "body_temp": 36.8}
HIGH = {"resp_rate": 24.0, "spo2": 93.0, "systolic_bp": 120.0, "heart_rate": 115.0, "body_temp": 38.5}
MINUTES = 60


def minute_batch(values: dict[str, float], minute: int) -> list[dict]:
    time_ = utc_now().replace(second=0, microsecond=0) - timedelta(minutes=MINUTES - minute)
    return [
        {"metric": metric, "value": value, "time": format_time(time_), "seq": minute * 10 + i}
        for i, (metric, value) in enumerate(values.items())
    ]


def ward_batches() -> list[tuple[str, list[dict]]]:
    """An hour of three wearables, minute by minute: one patient deteriorates after 15 minutes."""
    return [
        (name, minute_batch(HIGH if name == "sick" and minute >= 15 else NORMAL, minute))
        for minute in range(MINUTES)
        for name in ("sick", "well", "steady")
    ]


def registered(settings) -> tuple[AppContext, dict[str, str], dict[str, str]]:
    ctx = AppContext.build(settings)
    tokens, patients = {}, {}
    for name in ("sick", "well", "steady"):
        patient = ctx.store.add_patient(name)
        _, tokens[name] = ctx.store.add_device(patient.patient_id, "wearable")
        patients[patient.patient_id] = name
    return ctx, tokens, patients


def alerts_by_name(ctx: AppContext, patients: dict[str, str]) -> list[tuple[str, str]]:
    return sorted((patients[a.patient_id], str(a.rule)) for a in ctx.store.list_alerts(limit=10_000))


def undisturbed(tmp_path, batches) -> list[tuple[str, str]]:
    ctx, tokens, patients = registered(load_settings(db=f"sqlite:///{tmp_path / 'calm.db'}", home=str(tmp_path / "c")))
    for name, batch in batches:
        ctx.ingest.ingest(ctx.ingest.authenticate(tokens[name]), {"readings": batch})
        ctx.processor.drain()
    return alerts_by_name(ctx, patients)


def _vigil(env: dict, *args: str, log_path: str | None = None) -> subprocess.Popen:
    log = open(log_path or os.environ.get("VIGIL_TEST_LOG", os.devnull), "ab")
    return subprocess.Popen([sys.executable, "-m", "vigil", *args], env=env, stdout=subprocess.DEVNULL, stderr=log)


def _worker_subscribed(env: dict, log_path) -> subprocess.Popen:
    """Start `vigil worker` and return once it says it is ingesting (it prints that after the broker's SUBACK)."""
    offset = log_path.stat().st_size if log_path.exists() else 0
    worker = _vigil(env, "worker", log_path=str(log_path))
    deadline = time.monotonic() + 60
    while b"ingesting MQTT" not in log_path.read_bytes()[offset:]:
        assert worker.poll() is None and time.monotonic() < deadline, "the worker did not subscribe"
        time.sleep(0.1)
    return worker


def _post_until_acknowledged(port: int, token: str, batch: list[dict], deadline: float) -> None:
    """What a device does: send the batch again until it is acknowledged (the server or its stream may be down)."""
    while time.monotonic() < deadline:
        try:
            response = httpx.post(
                f"http://127.0.0.1:{port}/api/v1/ingest",
                json={"readings": batch},
                headers={"Authorization": f"Bearer {token}"},
                timeout=5,
            )
            if response.status_code == 202:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("a batch was never acknowledged")


@pytest.fixture(params=["embedded", "nats"])
def stream_url(request) -> str:
    return "" if request.param == "embedded" else request.getfixturevalue("nats_stream_url")


def test_kill_9_of_serve_and_of_a_processor_loses_and_repeats_nothing(tmp_path, stream_url):
    batches = ward_batches()
    expected = undisturbed(tmp_path, batches)
    assert ("sick", "news2_urgent") in expected
    home, db = tmp_path / "home", f"sqlite:///{tmp_path / 'crash.db'}"
    ctx, tokens, patients = registered(load_settings(db=db, home=str(home)))  # the embedded stream: only counting
    env = {**os.environ, "VIGIL_HOME": str(home), "VIGIL_DB": db, "VIGIL_STREAM": stream_url}
    port = free_port()
    serve_args = ("serve", "--port", str(port), "--no-process")
    server, processor = _vigil(env, *serve_args), _vigil(env, "process")
    try:
        wait_for_port(port, timeout=30)
        deadline = time.monotonic() + 240
        for n, (name, batch) in enumerate(batches):
            if n == 2 * len(batches) // 3:
                server.send_signal(signal.SIGKILL)  # mid-stream; the devices keep their batches and resend
                server.wait(10)
                server = _vigil(env, *serve_args)
            if n == 3 * 22:  # minute 22: the sick patient's condition is confirming, its alert not yet raised
                processor.send_signal(signal.SIGKILL)  # its leases expire; a new processor takes over
                processor.wait(10)
                processor = _vigil(env, "process")
            _post_until_acknowledged(port, tokens[name], batch, deadline)
        while ctx.store.pending_count() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ctx.store.pending_count() == 0, "the new processor did not take over the stream"
    finally:
        for process in (server, processor):
            if process.poll() is None:
                process.terminate()
                process.wait(15)
    assert ctx.store.count_readings() == sum(len(batch) for _, batch in batches), "lost or stored twice"
    assert alerts_by_name(ctx, patients) == expected


def _stopped(*processes: subprocess.Popen | None) -> None:
    for process in processes:
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(15)


def _until_processed(ctx: AppContext, deadline: float) -> None:
    while ctx.store.pending_count() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ctx.store.pending_count() == 0, "the stream was not worked off"


def _ward_to_crash(tmp_path):
    """The ward's batches, the alerts of its undisturbed run, and a fresh home and database registered for it."""
    batches = ward_batches()
    expected = undisturbed(tmp_path, batches)
    home, db = tmp_path / "home", f"sqlite:///{tmp_path / 'crash.db'}"
    return batches, expected, home, db, registered(load_settings(db=db, home=str(home)))


def _nats_server(port: int, store_dir) -> subprocess.Popen:
    server = subprocess.Popen(
        ["nats-server", "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port)
    return server


def test_kill_9_of_the_nats_server_under_load_loses_and_repeats_nothing(tmp_path):
    require_service(shutil.which("nats-server") is not None, "the nats-server binary")
    batches, expected, home, db, (ctx, tokens, patients) = _ward_to_crash(tmp_path)
    nats_port, port = free_port(), free_port()
    env = {**os.environ, "VIGIL_HOME": str(home), "VIGIL_DB": db, "VIGIL_STREAM": f"nats://127.0.0.1:{nats_port}"}
    nats = _nats_server(nats_port, tmp_path / "jetstream")
    server, processor = _vigil(env, "serve", "--port", str(port), "--no-process"), _vigil(env, "process")
    restarted: list[subprocess.Popen] = []
    try:
        wait_for_port(port, timeout=30)
        deadline = time.monotonic() + 240
        for n, (name, batch) in enumerate(batches):
            if n == len(batches) // 2:  # the broker dies mid-stream; an operator restarts it on its store 3 s later
                nats.send_signal(signal.SIGKILL)
                nats.wait(10)
                threading.Timer(3, lambda: restarted.append(_nats_server(nats_port, tmp_path / "jetstream"))).start()
            _post_until_acknowledged(port, tokens[name], batch, deadline)
        _until_processed(ctx, deadline)
    finally:
        time.sleep(0.1 if restarted else 3.5)
        _stopped(server, processor, nats, *restarted)
    assert restarted, "the NATS server was not restarted"
    assert ctx.store.count_readings() == sum(len(batch) for _, batch in batches), "lost or stored twice"
    assert alerts_by_name(ctx, patients) == expected


def _mqtt_device(port: int, device_id: str, token: str) -> mqtt.Client:
    client = mqtt_client(MqttEndpoint("127.0.0.1", port, False, device_id, token), client_id=device_id)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def test_kill_9_of_an_mqtt_worker_under_load_loses_and_repeats_nothing(tmp_path):
    require_service(shutil.which("mosquitto") is not None, "the mosquitto binary")
    batches, expected, home, db, (ctx, tokens, patients) = _ward_to_crash(tmp_path)
    files = write_broker_files(
        home / "mosquitto", ctx.store.mqtt_credentials(), ctx.settings.secret(SERVICE_PASSWORD_SECRET)
    )
    with private_broker(files, home / "mosquitto") as (broker_port, _):
        env = {**os.environ, "VIGIL_HOME": str(home), "VIGIL_DB": db, "VIGIL_MQTT": f"mqtt://127.0.0.1:{broker_port}"}
        worker_log = tmp_path / "worker.log"
        worker, processor = _worker_subscribed(env, worker_log), _vigil(env, "process")
        devices = {
            name: _mqtt_device(broker_port, ctx.ingest.authenticate(t).device_id, t) for name, t in tokens.items()
        }
        try:
            deadline = time.monotonic() + 240
            for n, (name, batch) in enumerate(batches):
                if n == len(batches) // 2:  # its persistent session keeps what it had not acknowledged
                    worker.send_signal(signal.SIGKILL)
                    worker.wait(10)
                    worker = _vigil(env, "worker", log_path=str(worker_log))
                device_id = ctx.ingest.authenticate(tokens[name]).device_id
                topic = READINGS_TOPIC.format(device_id=device_id)
                devices[name].publish(topic, orjson.dumps({"readings": batch}), qos=1).wait_for_publish(10)
            total = sum(len(batch) for _, batch in batches)
            while ctx.store.count_readings() < total and time.monotonic() < deadline:
                time.sleep(0.2)
            _until_processed(ctx, deadline)
        finally:
            for client in devices.values():
                client.disconnect()
                client.loop_stop()
            _stopped(worker, processor)
    assert ctx.store.count_readings() == total, "lost or stored twice"
    assert alerts_by_name(ctx, patients) == expected
