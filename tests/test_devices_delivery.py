"""Getting readings to Vigil: the simulated clock, device clients' batching and misbehaviour, the runner,
and the HTTP and MQTT transports against real servers."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from vigil.devices import (
    RELIABLE,
    ClientBehaviour,
    DeliveryFailed,
    DeliveryRejected,
    DeviceClient,
    HttpTransport,
    InProcessTransport,
    MqttTransport,
    PatientProfile,
    SimClock,
    WardSimulator,
    build_clients,
    run_simulation,
    transport_for_url,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class FakeWallClock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class FakeMonotonic:
    def __init__(self):
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds


class DedupingIngest:
    """Stands in for the ingest service: stores each (device_id, seq) once and counts duplicates."""

    def __init__(self, failures: int = 0):
        self.seen: set[tuple[str, int]] = set()
        self.payloads: list[tuple[str, str, dict]] = []
        self.failures = failures

    def __call__(self, device_id: str, token: str, payload: dict) -> dict:
        if self.failures > 0:
            self.failures -= 1
            raise DeliveryFailed("server down")
        self.payloads.append((device_id, token, payload))
        keys = [(device_id, reading["seq"]) for reading in payload["readings"]]
        new = set(keys) - self.seen
        self.seen |= new
        return {"accepted": len(new), "duplicates": len(keys) - len(new), "rejected": []}


def some_readings(count: int, first_seq: int = 0) -> list[dict]:
    reading = {"metric": "heart_rate", "value": 70.0, "unit": "/min", "time": "2026-11-27T10:00:00Z"}
    return [reading | {"seq": first_seq + i} for i in range(count)]


def make_client(ingest, behaviour=RELIABLE, monotonic=time.monotonic) -> DeviceClient:
    return DeviceClient("dev-1", "tok-1", InProcessTransport(ingest), np.random.default_rng(0), behaviour, monotonic)


def pump_minutes(client: DeviceClient, minutes: int, readings_per_minute: int = 3) -> None:
    for minute in range(minutes):
        client.submit(some_readings(readings_per_minute, first_seq=minute * readings_per_minute))
        client.pump(NOW + timedelta(minutes=minute))


# --- the clock ---------------------------------------------------------------------------------------------


def test_clock_runs_fast_then_clamps_at_wall_time():
    wall = FakeWallClock(NOW)
    clock = SimClock(NOW - timedelta(hours=6), speed=60, wall_clock=wall)
    assert clock.now() == NOW - timedelta(hours=6)
    wall.now = NOW + timedelta(minutes=1)
    assert clock.now() == NOW - timedelta(hours=5)
    wall.now = NOW + timedelta(minutes=10)
    assert clock.now() == wall.now  # caught up: never in the future
    wall.now = NOW + timedelta(hours=2)
    assert clock.now() == wall.now  # and continues live
    with pytest.raises(ValueError):
        SimClock(NOW, speed=0)


# --- device clients ----------------------------------------------------------------------------------------


def test_client_sends_every_reading_once_in_batches():
    ingest = DedupingIngest()
    client = make_client(ingest)
    pump_minutes(client, 60)
    client.flush(deadline=float("inf"))
    assert len(ingest.seen) == 180 and client.pending == 0
    assert 60 / 5 <= len(ingest.payloads) <= 60 / 1 + 1
    assert client.stats.accepted == 180 and client.stats.duplicates == 0
    assert ingest.payloads[0][:2] == ("dev-1", "tok-1")


def test_resent_batch_carries_identical_seqs_and_is_counted_as_duplicates():
    ingest = DedupingIngest()
    client = make_client(ingest, ClientBehaviour(resend_probability=1.0, shuffle_probability=0, delay_probability=0))
    pump_minutes(client, 30)
    client.flush(deadline=float("inf"))
    payloads = [payload for _, _, payload in ingest.payloads]
    assert payloads[0::2] == payloads[1::2]  # every batch went twice, unchanged
    assert client.stats.batches_resent == len(payloads) / 2
    assert client.stats.accepted == 90 and client.stats.duplicates == 90


def test_shuffled_and_delayed_batches_arrive_out_of_order_without_loss():
    ingest = DedupingIngest()
    client = make_client(ingest, ClientBehaviour(resend_probability=0, shuffle_probability=0.5, delay_probability=0.5))
    pump_minutes(client, 120)
    client.flush(deadline=float("inf"))
    arrival = [reading["seq"] for _, _, payload in ingest.payloads for reading in payload["readings"]]
    assert sorted(arrival) == list(range(360)) and arrival != sorted(arrival)


def test_failed_deliveries_back_off_and_lose_nothing():
    monotonic = FakeMonotonic()
    ingest = DedupingIngest(failures=4)
    attempts = []

    def flaky_ingest(device_id, token, payload):
        attempts.append(monotonic.seconds)
        return ingest(device_id, token, payload)

    client = make_client(flaky_ingest, RELIABLE, monotonic)
    for step in range(1200):  # 20 simulated minutes, 0.05 s of wall time per step
        monotonic.seconds = step * 0.05
        if step % 60 == 0:
            client.submit(some_readings(2, first_seq=step))
        client.pump(NOW + timedelta(seconds=step))
    client.flush(deadline=float("inf"))
    assert client.stats.failed_attempts == 4 and len(ingest.seen) == 40 and client.pending == 0
    waits = np.diff(attempts[:5])
    assert list(waits) == sorted(waits) and waits[-1] > 2 * waits[0]  # exponential backoff


def test_refused_batch_is_dropped_and_counted():
    def refuse(device_id, token, payload):
        raise DeliveryRejected("HTTP 401")

    client = make_client(refuse)
    pump_minutes(client, 10)
    client.flush(deadline=float("inf"))
    assert client.stats.batches_rejected >= 2 and client.stats.batches_sent == 0 and client.pending == 0


# --- the runner --------------------------------------------------------------------------------------------


def small_ward(start: datetime) -> WardSimulator:
    profiles = [PatientProfile("a", "A", "healthy", seed=1), PatientProfile("b", "B", "hypertensive", seed=2)]
    return WardSimulator(profiles, start, seed=3)


def test_run_simulation_delivers_everything_and_counts_resends():
    start = datetime.now(UTC) - timedelta(hours=2)
    simulator = small_ward(start)
    ingest = DedupingIngest()
    credentials = {key: (f"dev-{key}", f"tok-{key}") for key in simulator.device_keys}
    clients = build_clients(
        credentials, InProcessTransport(ingest), seed=1, behaviour=ClientBehaviour(resend_probability=0.2)
    )
    seen = []
    result = run_simulation(
        simulator,
        clients,
        SimClock(start, speed=3 * 3600),
        threading.Event(),
        hours=1,
        progress=seen.append,
        tick_seconds=0.02,
    )
    assert result.sim_time == start.replace(second=0, microsecond=0) + timedelta(hours=1)
    assert result.generated == len(ingest.seen) > 100 and result.pending == 0
    assert result.totals.accepted == result.generated
    assert result.totals.batches_resent > 0 and result.totals.duplicates > 0
    assert len(seen) > 2 and seen[-1] == result


def test_run_simulation_stops_when_asked_and_needs_a_client_per_device():
    start = datetime.now(UTC) - timedelta(hours=1)
    simulator = small_ward(start)
    credentials = {key: (str(key), "token") for key in simulator.device_keys}
    clients = build_clients(credentials, InProcessTransport(DedupingIngest()))
    stop = threading.Event()
    result = run_simulation(
        simulator, clients, SimClock(start, speed=60), stop, progress=lambda _: stop.set(), tick_seconds=5
    )
    assert result.sim_time < start + timedelta(minutes=5)
    with pytest.raises(ValueError, match="no client"):
        run_simulation(simulator, {}, SimClock(start), stop)


# --- HTTP ------------------------------------------------------------------------------------------------------


class RecordingHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, self.headers["Authorization"], body))
        status = self.server.statuses.pop(0) if self.server.statuses else 202
        answer = json.dumps({"accepted": len(body["readings"]), "duplicates": 0, "rejected": []}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingHandler)
    server.requests, server.statuses = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_http_transport_posts_batches_with_the_device_token(http_server):
    transport = transport_for_url(f"http://127.0.0.1:{http_server.server_port}/")
    assert isinstance(transport, HttpTransport)
    payload = {"readings": some_readings(3)}
    assert transport.send("dev-1", "secret", payload) == {"accepted": 3, "duplicates": 0, "rejected": []}
    assert http_server.requests == [("/api/v1/ingest", "Bearer secret", payload)]
    http_server.statuses += [503, 401]
    with pytest.raises(DeliveryFailed, match="503"):
        transport.send("dev-1", "secret", payload)
    with pytest.raises(DeliveryRejected, match="401"):
        transport.send("dev-1", "secret", payload)
    transport.close()


def test_http_transport_reports_an_unreachable_server_as_a_failure():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = HttpTransport(f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(DeliveryFailed):
        transport.send("dev-1", "secret", {"readings": []})


# --- MQTT ------------------------------------------------------------------------------------------------------

BROKER = ("127.0.0.1", 1883)


@pytest.fixture
def broker():
    try:
        socket.create_connection(BROKER, timeout=1).close()
    except OSError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"no MQTT broker on {BROKER[0]}:{BROKER[1]}")
        pytest.skip(f"no MQTT broker on {BROKER[0]}:{BROKER[1]}")
    return f"mqtt://{BROKER[0]}:{BROKER[1]}"


def test_mqtt_transport_publishes_to_the_device_topic(broker):
    received: list[mqtt.MQTTMessage] = []
    arrived, subscribed = threading.Event(), threading.Event()
    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)

    def on_message(_client, _userdata, message):
        received.append(message)
        arrived.set()

    subscriber.on_message = on_message
    subscriber.on_subscribe = lambda *args: subscribed.set()
    subscriber.on_connect = lambda client, *args: client.subscribe("vigil/v1/devices/+/readings", qos=1)
    subscriber.connect(*BROKER)
    subscriber.loop_start()
    transport = transport_for_url(broker)
    assert isinstance(transport, MqttTransport)
    try:
        assert subscribed.wait(5)
        payload = {"readings": some_readings(2)}
        transport.send("sim-dev-42", "tok", payload)
        assert arrived.wait(5)
        assert received[0].topic == "vigil/v1/devices/sim-dev-42/readings"
        assert json.loads(received[0].payload) == payload
    finally:
        transport.close()
        subscriber.disconnect()
        subscriber.loop_stop()


def test_mqtt_transport_reports_an_unreachable_broker_as_a_failure():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DeliveryFailed, match="unreachable"):
        MqttTransport(f"mqtt://127.0.0.1:{port}", timeout=2).send("dev-1", "tok", {"readings": []})
