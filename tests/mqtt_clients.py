"""MQTT test fixtures and device helpers: a registry of two devices, a private Mosquitto on Vigil's files, an
ingestor logged in as the service, and devices that publish with QoS 1."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import orjson
import paho.mqtt.client as mqtt
import pytest

from tests.conftest import running_broker
from vigil.ingest.mosquitto import SERVICE_USER
from vigil.ingest.mqtt import MqttIngestor
from vigil.ingest.service import IngestService
from vigil.mqtt import MqttEndpoint, mqtt_client
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


def connect_as(
    port: int, username: str, password: str, then: Callable[[mqtt.Client], object] = lambda client: None
) -> mqtt.ReasonCode:
    """Connect as ``username``, run ``then`` on the client if the broker accepted, disconnect; the connect result."""
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
            then(client)
    finally:
        client.disconnect()
        client.loop_stop()
    return result["rc"]


def publish(port: int, username: str, password: str, topic: str, payload: bytes) -> mqtt.ReasonCode:
    """Connect as a device, publish with QoS 1, wait for the broker's answer; returns the connect result."""
    return connect_as(
        port, username, password, lambda client: client.publish(topic, payload, qos=1).wait_for_publish(5)
    )


def readings_payload(seq0: int, n: int = 3) -> bytes:
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


def wait_for(predicate, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def topic(device_id: str) -> str:
    return f"vigil/v1/devices/{device_id}/readings"
