"""MQTT ingestion through a real Mosquitto that runs with the password and ACL files Vigil writes."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import orjson
import paho.mqtt.client as mqtt
import pytest

from tests.conftest import running_broker
from vigil.ingest.mosquitto import PID_FILE, SERVICE_USER, BrokerTls, write_broker_config, write_broker_files
from vigil.ingest.mqtt import MqttIngestor
from vigil.ingest.service import IngestService
from vigil.mqtt import MqttEndpoint, device_id_from_topic, mqtt_client, parse_mqtt_url
from vigil.store import SqlStore
from vigil.timeutil import format_time, utc_now

SERVICE_PASSWORD = "service-secret-for-tests"


@pytest.fixture
def registry(tmp_path):
    store = SqlStore(f"sqlite:///{tmp_path / 'vigil.db'}")
    patient_a = store.add_patient("Patient A")
    patient_b = store.add_patient("Patient B")
    device_a, token_a = store.add_device(patient_a.patient_id, "wearable")
    device_b, token_b = store.add_device(patient_b.patient_id, "wearable")
    return store, (device_a.device_id, token_a), (device_b.device_id, token_b)


@pytest.fixture
def broker(tmp_path, registry):
    with running_broker(tmp_path, registry[0].mqtt_credentials(), SERVICE_PASSWORD) as port:
        yield port


@pytest.fixture
def ingestor(registry, broker):
    store = registry[0]
    service = IngestService(store)
    ingestor = MqttIngestor(
        service, MqttEndpoint("127.0.0.1", broker, False, SERVICE_USER, SERVICE_PASSWORD), shared=True
    )
    ingestor.start()
    yield ingestor
    ingestor.stop()


def _publish(port: int, username: str, password: str, topic: str, payload: bytes) -> mqtt.ReasonCode:
    """Connect as a device, publish with QoS 1, wait for the broker's answer; returns the connect result."""
    client = mqtt_client(MqttEndpoint("127.0.0.1", port, False, username, password))
    connected = threading.Event()
    result = {}

    def on_connect(client, userdata, flags, reason_code, properties):
        result["rc"] = reason_code
        connected.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert connected.wait(5)
        if not result["rc"].is_failure:
            client.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()
    return result["rc"]


def _readings(seq0: int, n: int = 3) -> bytes:
    time0 = utc_now() - timedelta(minutes=10)
    return orjson.dumps(
        {
            "readings": [
                {
                    "metric": "heart_rate",
                    "value": 70 + i,
                    "unit": "/min",
                    "time": format_time(time0 + timedelta(minutes=i)),
                    "seq": seq0 + i,
                }
                for i in range(n)
            ]
        }
    )


def _wait_for(predicate, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def topic(device_id: str) -> str:
    return f"vigil/v1/devices/{device_id}/readings"


def test_device_readings_are_stored(registry, broker, ingestor):
    store, (device_a, token_a), _ = registry
    assert not _publish(broker, device_a, token_a, topic(device_a), _readings(1)).is_failure
    assert _wait_for(lambda: store.count_readings() == 3)
    assert {r.device_id for r in store.query_readings()} == {device_a}


def test_device_cannot_publish_to_another_devices_topic(registry, broker, ingestor):
    store, (device_a, token_a), (device_b, _) = registry
    _publish(broker, device_a, token_a, topic(device_b), _readings(1))
    _publish(broker, device_a, token_a, topic(device_a), _readings(10))  # a marker that does arrive
    assert _wait_for(lambda: store.count_readings() == 3)
    time.sleep(0.3)
    assert {r.device_id for r in store.query_readings()} == {device_a}
    assert {r.seq for r in store.query_readings()} == {10, 11, 12}


def test_wrong_password_cannot_connect(registry, broker):
    _, (device_a, _), _ = registry
    assert _publish(broker, device_a, "not-the-token", topic(device_a), _readings(1)).is_failure


def test_revoked_device_is_locked_out_after_files_are_rewritten(tmp_path, registry):
    store, (device_a, _token_a), _ = registry
    store.revoke_device(device_a)
    assert device_a not in dict(store.mqtt_credentials())
    files = write_broker_files(tmp_path / "again", store.mqtt_credentials(), SERVICE_PASSWORD)
    assert device_a not in files.password_file.read_text()


def test_broker_config_runs_on_the_written_files_and_listens_on_8883_with_tls(tmp_path):
    tls = BrokerTls(tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem")
    files, config = write_broker_config(tmp_path / "broker", [("d1", "$7$hash")], SERVICE_PASSWORD, tls=tls)
    text = config.read_text()
    assert config == tmp_path / "broker" / "mosquitto.conf" and "d1:$7$hash" in files.password_file.read_text()
    assert (
        "listener 8883 127.0.0.1" in text
        and f"certfile {tls.certfile}" in text
        and f"acl_file {files.acl_file}" in text
    )
    assert f"pid_file {(tmp_path / 'broker').resolve() / PID_FILE}" in text
    assert "listener 1883 " in write_broker_config(tmp_path / "plain", [], SERVICE_PASSWORD)[1].read_text()


def test_resent_message_is_counted_as_duplicates(registry, broker, ingestor):
    store, (device_a, token_a), _ = registry
    payload = _readings(1)
    _publish(broker, device_a, token_a, topic(device_a), payload)
    _publish(broker, device_a, token_a, topic(device_a), payload)
    assert _wait_for(lambda: ingestor.stats["duplicates"] == 3)
    assert store.count_readings() == 3


def test_invalid_json_is_counted_and_ingestion_goes_on(registry, broker, ingestor):
    store, (device_a, token_a), _ = registry
    _publish(broker, device_a, token_a, topic(device_a), b"{broken")
    _publish(broker, device_a, token_a, topic(device_a), b'{"readings": "nope"}')
    _publish(broker, device_a, token_a, topic(device_a), _readings(1))
    assert _wait_for(lambda: store.count_readings() == 3)
    assert ingestor.stats["invalid_json"] == 1
    assert ingestor.stats["malformed"] == 1


def test_bad_reading_in_mqtt_batch_is_rejected_alone(registry, broker, ingestor):
    store, (device_a, token_a), _ = registry
    body = orjson.loads(_readings(1))
    body["readings"][1]["value"] = 999
    _publish(broker, device_a, token_a, topic(device_a), orjson.dumps(body))
    assert _wait_for(lambda: ingestor.stats["rejected"] == 1)
    assert store.count_readings() == 2


def test_mqtt_url_parsing():
    assert parse_mqtt_url("mqtt://localhost") == MqttEndpoint("localhost", 1883, False)
    assert parse_mqtt_url("mqtts://u:p%40ss@broker:9999") == MqttEndpoint("broker", 9999, True, "u", "p@ss")
    with pytest.raises(ValueError):
        parse_mqtt_url("http://broker")
    assert device_id_from_topic("vigil/v1/devices/d123/readings") == "d123"
    assert device_id_from_topic("vigil/v1/devices/d123/other") is None
