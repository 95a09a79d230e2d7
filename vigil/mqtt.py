"""The MQTT contract shared by devices and ingestion: the readings topic, broker URLs, and configured paho clients."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from vigil.errors import InvalidInput

READINGS_TOPIC = "vigil/v1/devices/{device_id}/readings"
READINGS_SUBSCRIPTION = "vigil/v1/devices/+/readings"


@dataclass(frozen=True)
class MqttEndpoint:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None


def parse_mqtt_url(url: str) -> MqttEndpoint:
    """mqtt://[user:pass@]host[:1883] or mqtts://[user:pass@]host[:8883]."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise InvalidInput(f"unsupported MQTT URL {url!r}: use mqtt://host:1883 or mqtts://host:8883")
    tls = parts.scheme == "mqtts"
    return MqttEndpoint(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def mqtt_client(
    endpoint: MqttEndpoint,
    client_id: str = "",
    clean_session: bool = True,
    ca_file: str | None = None,
    manual_ack: bool = False,
) -> mqtt.Client:
    """A paho client configured (credentials, TLS) for this endpoint, not yet connected."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_session,
        protocol=mqtt.MQTTv311,
        manual_ack=manual_ack,
    )
    if endpoint.username:
        client.username_pw_set(endpoint.username, endpoint.password)
    if endpoint.tls:
        client.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED)
    return client


def device_id_from_topic(topic: str) -> str | None:
    """The device id in a readings topic; None for any other topic."""
    parts = topic.split("/")
    if len(parts) == 5 and parts[:3] == ["vigil", "v1", "devices"] and parts[4] == "readings":
        return parts[3]
    return None
