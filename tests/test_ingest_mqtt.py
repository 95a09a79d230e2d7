"""MQTT ingestion through a real Mosquitto that runs with the password and ACL files Vigil writes."""

from __future__ import annotations

import time

import orjson
import pytest

from tests.mqtt_clients import SERVICE_PASSWORD, publish, readings_payload, topic, wait_for
from vigil.ingest.mosquitto import PID_FILE, BrokerTls, write_broker_config, write_broker_files
from vigil.mqtt import MqttEndpoint, device_id_from_topic, parse_mqtt_url


def test_device_readings_are_stored(registry, broker, ingestor):
    store, (device_a, token_a), _ = registry
    assert not publish(broker, device_a, token_a, topic(device_a), readings_payload(1)).is_failure
    assert wait_for(lambda: store.count_readings() == 3)
    assert {r.device_id for r in store.query_readings()} == {device_a}


def test_device_cannot_publish_to_another_devices_topic(registry, broker, ingestor):
    store, (device_a, token_a), (device_b, _) = registry
    publish(broker, device_a, token_a, topic(device_b), readings_payload(1))
    publish(broker, device_a, token_a, topic(device_a), readings_payload(10))  # a marker that does arrive
    assert wait_for(lambda: store.count_readings() == 3)
    time.sleep(0.3)
    assert {r.device_id for r in store.query_readings()} == {device_a}
    assert {r.seq for r in store.query_readings()} == {10, 11, 12}


def test_wrong_password_cannot_connect(registry, broker):
    _, (device_a, _), _ = registry
    assert publish(broker, device_a, "not-the-token", topic(device_a), readings_payload(1)).is_failure


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
    payload = readings_payload(1)
    publish(broker, device_a, token_a, topic(device_a), payload)
    publish(broker, device_a, token_a, topic(device_a), payload)
    assert wait_for(lambda: ingestor.stats["duplicates"] == 3)
    assert store.count_readings() == 3


def test_invalid_json_is_counted_and_ingestion_goes_on(registry, broker, ingestor):
    store, (device_a, token_a), _ = registry
    publish(broker, device_a, token_a, topic(device_a), b"{broken")
    publish(broker, device_a, token_a, topic(device_a), b'{"readings": "nope"}')
    publish(broker, device_a, token_a, topic(device_a), readings_payload(1))
    assert wait_for(lambda: store.count_readings() == 3)
    assert ingestor.stats["invalid_json"] == 1
    assert ingestor.stats["malformed"] == 1


def test_bad_reading_in_mqtt_batch_is_rejected_alone(registry, broker, ingestor):
    store, (device_a, token_a), _ = registry
    body = orjson.loads(readings_payload(1))
    body["readings"][1]["value"] = 999
    publish(broker, device_a, token_a, topic(device_a), orjson.dumps(body))
    assert wait_for(lambda: ingestor.stats["rejected"] == 1)
    assert store.count_readings() == 2


def test_mqtt_url_parsing():
    assert parse_mqtt_url("mqtt://localhost") == MqttEndpoint("localhost", 1883, False)
    assert parse_mqtt_url("mqtts://u:p%40ss@broker:9999") == MqttEndpoint("broker", 9999, True, "u", "p@ss")
    with pytest.raises(ValueError):
        parse_mqtt_url("http://broker")
    assert device_id_from_topic("vigil/v1/devices/d123/readings") == "d123"
    assert device_id_from_topic("vigil/v1/devices/d123/other") is None
