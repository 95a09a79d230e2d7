"""How a device's batch reaches Vigil: an HTTP POST, an MQTT publish, or a direct call in the same process."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

import httpx
import paho.mqtt.client as mqtt

from vigil.errors import InvalidInput
from vigil.mqtt import READINGS_TOPIC, mqtt_client, parse_mqtt_url

INGEST_PATH = "/api/v1/ingest"
RETRYABLE_STATUS = frozenset({408, 425, 429})
Payload = dict[str, Any]


class DeliveryFailed(Exception):
    """The batch may not have arrived (server down, timeout, 5xx): send it again later."""


class DeliveryRejected(Exception):
    """The server refused the batch for good (bad token, malformed body): resending cannot help."""


class Transport(Protocol):
    def send(self, device_id: str, token: str, payload: Payload) -> Payload | None:
        """Deliver one {"readings": [...]} payload; the ingest answer when the transport has one.
        Raises DeliveryFailed or DeliveryRejected."""

    def close(self) -> None: ...


class HttpTransport:
    """POSTs to {base_url}/api/v1/ingest with the device token as a bearer token."""

    def __init__(self, base_url: str, timeout: float = 10.0, ca_file: str | None = None):
        self.url = base_url.rstrip("/") + INGEST_PATH
        self._http = httpx.Client(
            timeout=timeout, verify=ssl.create_default_context(cafile=ca_file) if ca_file else True
        )

    def send(self, device_id: str, token: str, payload: Payload) -> Payload:
        try:
            response = self._http.post(self.url, json=payload, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as error:
            raise DeliveryFailed(f"POST {self.url} for {device_id}: {error!r}") from error
        if response.status_code in RETRYABLE_STATUS or response.status_code >= 500:
            raise DeliveryFailed(f"POST {self.url} for {device_id}: HTTP {response.status_code}")
        if response.is_error:
            detail = response.text[:300]
            raise DeliveryRejected(f"POST {self.url} for {device_id}: HTTP {response.status_code} {detail}")
        return response.json()

    def close(self) -> None:
        self._http.close()


class MqttTransport:
    """Publishes with QoS 1 to vigil/v1/devices/{device_id}/readings; one broker session per device,
    logged in with username = device id and password = token."""

    def __init__(self, url: str, timeout: float = 10.0, ca_file: str | None = None):
        self.endpoint = parse_mqtt_url(url)
        self.timeout = timeout
        self.ca_file = ca_file
        self._clients: dict[str, mqtt.Client] = {}

    def send(self, device_id: str, token: str, payload: Payload) -> None:
        client = self._clients.get(device_id) or self._connect(device_id, token)
        message = client.publish(READINGS_TOPIC.format(device_id=device_id), json.dumps(payload), qos=1)
        try:
            message.wait_for_publish(self.timeout)
        except (RuntimeError, ValueError) as error:
            raise DeliveryFailed(f"MQTT publish for {device_id}: {error}") from error
        if not message.is_published():
            raise DeliveryFailed(f"MQTT publish for {device_id}: no PUBACK within {self.timeout:g} s")

    def _connect(self, device_id: str, token: str) -> mqtt.Client:
        """A connected client for the device; paho reconnects it by itself after later losses."""
        endpoint = replace(self.endpoint, username=device_id, password=token)
        client = mqtt_client(endpoint, client_id=device_id, ca_file=self.ca_file)
        connack: list[mqtt.ReasonCode] = []
        answered = threading.Event()

        def on_connect(_client, _userdata, _flags, reason: mqtt.ReasonCode, _properties) -> None:
            connack.append(reason)
            answered.set()

        client.on_connect = on_connect
        where = f"{self.endpoint.host}:{self.endpoint.port}"
        try:
            client.connect(self.endpoint.host, self.endpoint.port, keepalive=60)
        except OSError as error:
            raise DeliveryFailed(f"MQTT broker {where} unreachable for {device_id}: {error}") from error
        client.loop_start()
        if not answered.wait(self.timeout) or connack[0].is_failure:
            client.loop_stop()
            client.disconnect()
            reason = connack[0] if connack else f"no CONNACK within {self.timeout:g} s"
            raise DeliveryFailed(f"MQTT broker {where} did not accept {device_id}: {reason}")
        self._clients[device_id] = client
        return client

    def close(self) -> None:
        for client in self._clients.values():
            client.disconnect()
            client.loop_stop()
        self._clients.clear()


class InProcessTransport:
    """Hands each batch to a function in this process, deliver(device_id, token, payload) -> ingest answer;
    the function raises DeliveryFailed or DeliveryRejected like the other transports."""

    def __init__(self, deliver: Callable[[str, str, Payload], Payload | None]):
        self.deliver = deliver

    def send(self, device_id: str, token: str, payload: Payload) -> Payload | None:
        return self.deliver(device_id, token, payload)

    def close(self) -> None:
        pass


def transport_for_url(url: str, timeout: float = 10.0, ca_file: str | None = None) -> HttpTransport | MqttTransport:
    """An HTTP transport for http(s)://, an MQTT transport for mqtt(s)://; TLS servers checked against `ca_file`
    (default: the system's CAs)."""
    if url.startswith(("http://", "https://")):
        return HttpTransport(url, timeout, ca_file)
    if url.startswith(("mqtt://", "mqtts://")):
        return MqttTransport(url, timeout, ca_file)
    raise InvalidInput(f"unsupported device URL {url!r}: use http(s)://host:port or mqtt(s)://host:port")
