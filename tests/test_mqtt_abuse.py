"""Devices that try to stop or rob MQTT ingestion, against a real Mosquitto on Vigil's files: bad messages are
acknowledged and dead-lettered, a device can neither take shares of the workers' subscription nor their session."""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import timedelta

import orjson
import paho.mqtt.client as mqtt
import pytest
from typer.testing import CliRunner

from tests.mqtt_clients import SERVICE_PASSWORD, readings_payload, topic, wait_for
from vigil.cli import app
from vigil.domain import DeadLetter
from vigil.ingest.mosquitto import SERVICE_USER, WORKER_USER, service_users, write_broker_files
from vigil.ingest.mqtt import MqttIngestor
from vigil.ingest.service import IngestService
from vigil.mqtt import MqttEndpoint, mqtt_client
from vigil.timeutil import format_time, utc_now

OUT_OF_RANGE = "0001-01-01T00:00:00+05:00"


def _one_reading(seq: int, time_value: object = None) -> bytes:
    when = time_value if time_value is not None else format_time(utc_now() - timedelta(minutes=5))
    return orjson.dumps({"readings": [{"metric": "heart_rate", "value": 70, "unit": "/min", "time": when, "seq": seq}]})


class Device:
    """A device's own connection, kept open to publish many QoS 1 messages (each waits for its PUBACK)."""

    def __init__(self, port: int, username: str, password: str, client_id: str = "", clean_session: bool = True):
        self.received: list[mqtt.MQTTMessage] = []
        self.subacks: list[list[mqtt.ReasonCode]] = []
        self._suback = threading.Event()
        self._connected = threading.Event()
        self.client = mqtt_client(MqttEndpoint("127.0.0.1", port, False, username, password), client_id, clean_session)
        self.client.on_connect = lambda *args: self._connected.set()
        self.client.on_message = lambda client, userdata, message: self.received.append(message)
        self.client.on_subscribe = self._on_subscribe
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._connected.wait(5)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self.subacks.append(reason_codes)
        self._suback.set()

    def subscribe(self, subscription: str) -> list[mqtt.ReasonCode]:
        self._suback.clear()
        self.client.subscribe(subscription, qos=1)
        assert self._suback.wait(5)
        return self.subacks[-1]

    def publish(self, topic_name: str, payload: bytes) -> None:
        info = self.client.publish(topic_name, payload, qos=1)
        info.wait_for_publish(5)
        assert info.is_published()  # the broker sent PUBACK

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def devices(registry, broker):
    _, (device_a, token_a), (device_b, token_b) = registry
    attacker, victim = Device(broker, device_a, token_a), Device(broker, device_b, token_b)
    yield attacker, victim
    attacker.close()
    victim.close()


def _stored(store, device_id: str) -> set[int]:
    return {r.seq for r in store.query_readings() if r.device_id == device_id}


def test_a_flood_of_out_of_range_times_is_dead_lettered_and_another_devices_readings_are_stored(
    registry, broker, ingestor, devices
):
    store, (device_a, _), (device_b, _) = registry
    attacker, victim = devices
    for seq in range(25):
        attacker.publish(topic(device_a), _one_reading(seq, OUT_OF_RANGE))
    for seq in range(20):
        victim.publish(topic(device_b), _one_reading(seq))
    assert wait_for(lambda: _stored(store, device_b) == set(range(20)), timeout=10), _stored(store, device_b)
    assert wait_for(lambda: len(store.list_dead_letters()) == 25)
    letter = store.list_dead_letters()[-1]  # the oldest: seq 0
    payload = _one_reading(0, OUT_OF_RANGE)
    assert (letter.device_id, letter.topic, letter.payload_bytes) == (device_a, topic(device_a), len(payload))
    assert letter.payload_sha256 == hashlib.sha256(payload).hexdigest()
    assert "readings[0] time:" in letter.reason and "range" in letter.reason
    assert _stored(store, device_a) == set() and ingestor.stats["errors"] == 0


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{broken", "body: not valid JSON"),
        (b'{"readings": "nope"}', "readings: must be a list"),
        (b"[1, 2]", "body: must be a JSON object"),
        (_one_reading(1, OUT_OF_RANGE), "time: cannot parse"),
        (_one_reading(1, "9999-12-31T23:59:59-23:59"), "time: cannot parse"),
        (_one_reading(1, "2026-01-01T00:00:00+99:00"), "time: cannot parse"),
        (_one_reading(1, "0999-06-01T00:00:00Z"), "time: 0999-06-01T00:00:00Z is before 1900"),
        (_one_reading(1, 1764000000), "time: must be an ISO 8601 string"),
        (_one_reading(1, "NaN"), "time: cannot parse"),
        (_one_reading(1, "2999-01-01T00:00:00Z"), "minutes in the future"),
    ],
)
def test_every_bad_message_is_acknowledged_and_dead_lettered_naming_the_field(
    registry, broker, ingestor, devices, payload, reason
):
    store, (device_a, _), _ = registry
    attacker, _ = devices
    attacker.publish(topic(device_a), payload)
    attacker.publish(topic(device_a), readings_payload(100))
    assert wait_for(lambda: _stored(store, device_a) == {100, 101, 102})
    assert wait_for(lambda: len(store.list_dead_letters()) == 1)
    assert reason in store.list_dead_letters()[0].reason


def test_a_restarted_worker_gets_no_dead_lettered_message_back(registry, broker, ingestor, devices):
    store, (device_a, _), _ = registry
    for seq in range(5):
        devices[0].publish(topic(device_a), _one_reading(seq, OUT_OF_RANGE))
    assert wait_for(lambda: len(store.list_dead_letters()) == 5 and ingestor.stats["acknowledged"] == 5)
    ingestor.stop()
    again = MqttIngestor(IngestService(store), MqttEndpoint("127.0.0.1", broker, False, SERVICE_USER, SERVICE_PASSWORD))
    again.start()
    time.sleep(1)
    again.stop()
    assert again.stats["messages"] == 0 and len(store.list_dead_letters()) == 5


def test_an_unexpected_error_in_the_handler_is_dead_lettered_and_ingestion_goes_on(
    registry, broker, ingestor, devices, monkeypatch
):
    store, (device_a, _), (device_b, _) = registry
    insert = store.insert_readings

    def fails_for_device_a(readings, audit=None):
        if readings and readings[0].device_id == device_a:
            raise RuntimeError("a bug")
        return insert(readings, audit)

    monkeypatch.setattr(store, "insert_readings", fails_for_device_a)
    for seq in range(25):
        devices[0].publish(topic(device_a), _one_reading(seq))
    for seq in range(20):
        devices[1].publish(topic(device_b), _one_reading(seq))
    assert wait_for(lambda: _stored(store, device_b) == set(range(20)), timeout=10)
    assert wait_for(lambda: len(store.list_dead_letters()) == 25)
    assert store.list_dead_letters()[0].reason == "internal error: RuntimeError: a bug"


@pytest.mark.parametrize(
    "subscription",
    ["$share/vigil/vigil/v1/devices/+/readings", "vigil/v1/devices/+/readings", "#", "$SYS/#", "$share/vigil/#"],
)
def test_a_device_subscribing_takes_no_share_and_receives_nothing(registry, broker, ingestor, devices, subscription):
    store, _, (device_b, _) = registry
    attacker, victim = devices
    attacker.subscribe(subscription)
    for seq in range(20):
        victim.publish(topic(device_b), _one_reading(seq))
    assert wait_for(lambda: _stored(store, device_b) == set(range(20)), timeout=10), _stored(store, device_b)
    time.sleep(0.3)
    assert attacker.received == []


def test_the_acl_lets_devices_write_their_own_topic_only_and_gives_each_worker_its_own_login(tmp_path):
    files = write_broker_files(tmp_path, [("dev_1", "$7$hash")], SERVICE_PASSWORD, workers=3)
    acl = files.acl_file.read_text()
    assert "pattern write vigil/v1/devices/%u/readings" in acl
    assert [line for line in acl.splitlines() if line.startswith("pattern")] == [
        "pattern write vigil/v1/devices/%u/readings"
    ]
    assert service_users(3) == [SERVICE_USER, WORKER_USER.format(1), WORKER_USER.format(2), WORKER_USER.format(3)]
    assert all(f"user {user}\ntopic read vigil/v1/devices/+/readings" in acl for user in service_users(3))
    rewritten = write_broker_files(tmp_path, [], SERVICE_PASSWORD)  # a device change keeps the worker logins
    assert WORKER_USER.format(3) in rewritten.password_file.read_text()


def test_a_device_using_the_workers_client_id_does_not_take_over_its_session(registry, broker, ingestor, devices):
    store, (device_a, token_a), (device_b, _) = registry
    victim = devices[1]
    for seq in range(10):
        victim.publish(topic(device_b), _one_reading(seq))
    impostor = Device(broker, device_a, token_a, client_id=SERVICE_USER, clean_session=False)
    try:
        for seq in range(10, 20):
            victim.publish(topic(device_b), _one_reading(seq))
        assert wait_for(lambda: _stored(store, device_b) == set(range(20)), timeout=10), _stored(store, device_b)
        assert impostor.received == []
    finally:
        impostor.close()


def test_two_workers_with_their_own_logins_share_the_readings(registry, broker, ingestor):
    store, (device_a, token_a), _ = registry
    second = MqttIngestor(
        IngestService(store), MqttEndpoint("127.0.0.1", broker, False, WORKER_USER.format(1), SERVICE_PASSWORD)
    )
    second.start()
    try:
        device = Device(broker, device_a, token_a)
        for seq in range(20):
            device.publish(topic(device_a), _one_reading(seq))
        device.close()
        assert wait_for(lambda: _stored(store, device_a) == set(range(20)), timeout=10)
        assert ingestor.stats["messages"] + second.stats["messages"] == 20 and second.stats["messages"] > 0
    finally:
        second.stop()


def _bad_message_dead_lettered(store, broker, device_id: str, token: str) -> bytes:
    payload = _one_reading(1, OUT_OF_RANGE)
    Device(broker, device_id, token).publish(topic(device_id), payload)
    assert wait_for(lambda: len(store.list_dead_letters()) == 1)
    return payload


def test_admins_list_dead_letters_on_the_command_line(registry, broker, ingestor, monkeypatch):
    store, (device_a, token_a), _ = registry
    payload = _bad_message_dead_lettered(store, broker, device_a, token_a)
    monkeypatch.setenv("VIGIL_DB", store.url)
    result = CliRunner().invoke(app, ["mqtt", "dead-letters", "--json"])
    assert result.exit_code == 0, result.output
    [letter] = orjson.loads(result.stdout)
    assert letter["device_id"] == device_a and letter["payload_sha256"] == hashlib.sha256(payload).hexdigest()
    assert letter["reason"].startswith("1 reading(s) rejected: readings[0] time: cannot parse")
    assert OUT_OF_RANGE not in orjson.dumps({k: v for k, v in letter.items() if k != "reason"}).decode()
    assert store.audit_entries()[-1].action == "dead_letters.list"


def test_only_admins_list_dead_letters_through_the_api_and_no_body_is_in_them(ward):
    letter = DeadLetter(utc_now(), ward.device_id, topic(ward.device_id), "body: not valid JSON", "ab" * 32, 7)
    ward.ctx.store.add_dead_letter(letter)
    answer = ward.client.get("/api/v1/mqtt/dead-letters", headers=ward.login("root"))
    assert answer.status_code == 200
    assert answer.json() == [
        {
            "received_at": format_time(letter.received_at),
            "device_id": ward.device_id,
            "topic": topic(ward.device_id),
            "reason": "body: not valid JSON",
            "payload_sha256": "ab" * 32,
            "payload_bytes": 7,
        }
    ]
    assert ward.client.get("/api/v1/mqtt/dead-letters", headers=ward.login("dr_who")).status_code == 403
