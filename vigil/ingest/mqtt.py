"""MQTT ingestion: subscribe to every device's readings topic and feed the one ingest path."""

from __future__ import annotations

import logging
import threading
from collections import Counter

import orjson
import paho.mqtt.client as mqtt

from vigil.ingest.service import BatchShapeError, IngestService
from vigil.mqtt import READINGS_SUBSCRIPTION, MqttEndpoint, device_id_from_topic, mqtt_client

log = logging.getLogger(__name__)
SHARED_GROUP = "vigil"


class MqttIngestor:
    """Subscribes with QoS 1; a message is acknowledged only after its readings are stored."""

    def __init__(
        self,
        service: IngestService,
        endpoint: MqttEndpoint,
        client_id: str = "vigil-ingest",
        shared: bool = True,
        ca_file: str | None = None,
    ):
        self.service = service
        self.stats: Counter[str] = Counter()
        self._subscription = f"$share/{SHARED_GROUP}/{READINGS_SUBSCRIPTION}" if shared else READINGS_SUBSCRIPTION
        self._subscribed = threading.Event()
        self._client = mqtt_client(endpoint, client_id, clean_session=False, ca_file=ca_file, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *args: self._subscribed.set()
        self._client.on_message = self._on_message
        self._endpoint = endpoint

    def start(self, timeout: float = 10.0) -> None:
        """Connect and subscribe; returns once the broker has confirmed the subscription."""
        self._client.connect(self._endpoint.host, self._endpoint.port, keepalive=30)
        self._client.loop_start()
        if not self._subscribed.wait(timeout):
            self.stop()
            raise ConnectionError(f"no subscription confirmed by {self._endpoint.host}:{self._endpoint.port}")

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("MQTT connection refused: %s", reason_code)
            return
        client.subscribe(self._subscription, qos=1)

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        """Acknowledge once stored or permanently rejected; a failed store leaves it for redelivery."""
        self.stats["messages"] += 1
        try:
            self._ingest_message(message)
        except Exception:  # keep consuming; the broker redelivers the unacknowledged message
            self.stats["errors"] += 1
            log.exception("MQTT message on %s could not be stored; left unacknowledged", message.topic)
            return
        client.ack(message.mid, message.qos)

    def _ingest_message(self, message: mqtt.MQTTMessage) -> None:
        device_id = device_id_from_topic(message.topic)
        device = self.service.store.get_device(device_id) if device_id else None
        if device is None or device.revoked:
            self.stats["unknown_device"] += 1
            log.warning("MQTT message from unknown or revoked device on %s dropped", message.topic)
            return
        try:
            body = orjson.loads(message.payload)
        except orjson.JSONDecodeError as error:
            self.stats["invalid_json"] += 1
            log.warning("MQTT payload from %s is not valid JSON (%s); dropped", device_id, error)
            return
        try:
            result = self.service.ingest(device, body)
        except BatchShapeError as error:
            self.stats["malformed"] += 1
            log.warning("MQTT payload from %s rejected: %s", device_id, error)
            return
        self.stats["accepted"] += result.accepted
        self.stats["duplicates"] += result.duplicates
        self.stats["rejected"] += len(result.rejected)
        self.stats["warnings"] += len(result.warnings)
        for rejection in result.rejected:
            log.info("device %s reading %d rejected: %s", device_id, rejection.index, rejection.error)
        for warning in result.warnings:
            log.info("device %s reading %d stored as implausible: %s", device_id, warning.index, warning.warning)
