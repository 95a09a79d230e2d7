"""MQTT ingestion: subscribe to every device's readings topic and feed the one ingest path."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections import Counter

import orjson
import paho.mqtt.client as mqtt

from vigil.domain import DeadLetter
from vigil.errors import RetryLater
from vigil.ingest.service import BatchShapeError, IngestResult, IngestService
from vigil.mqtt import READINGS_SUBSCRIPTION, MqttEndpoint, device_id_from_topic, mqtt_client
from vigil.timeutil import utc_now

log = logging.getLogger(__name__)
MAX_REASON_CHARS = 1000


def shared_group(service_password: str | None) -> str:
    """The workers' shared-subscription group, named from the service password: a device that cannot know it cannot
    join the group and take shares of the messages (Mosquitto's ACL file does not refuse subscriptions)."""
    digest = hmac.new((service_password or "").encode(), b"vigil shared subscription", hashlib.sha256).hexdigest()
    return f"vigil-{digest[:24]}"


class NotIngested(Exception):
    """A message acknowledged without (fully) ingesting it; the message is its dead letter's reason."""

    def __init__(self, stat: str, reason: str):
        super().__init__(reason)
        self.stat = stat


class MqttIngestor:
    """Subscribes with QoS 1; every message is acknowledged once stored or dead-lettered, so no message can stop
    ingestion. Only while the store is unavailable is a message left unacknowledged (redelivered on reconnect)."""

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
        group = shared_group(endpoint.password)
        self._subscription = f"$share/{group}/{READINGS_SUBSCRIPTION}" if shared else READINGS_SUBSCRIPTION
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
        """Ingest, else dead-letter; acknowledge either way unless the store is down (then redelivered later)."""
        self.stats["messages"] += 1
        try:
            self._handle(message)
        except Exception as error:  # even the dead letter could not be written
            self.stats["errors"] += 1
            log.exception("MQTT message on %s neither stored nor dead-lettered; left unacknowledged", message.topic)
            if not self._retry_later(error):
                self._ack(client, message)  # never let one message hold the in-flight window
            return
        self._ack(client, message)

    def _ack(self, client: mqtt.Client, message: mqtt.MQTTMessage) -> None:
        client.ack(message.mid, message.qos)
        self.stats["acknowledged"] += 1

    def _handle(self, message: mqtt.MQTTMessage) -> None:
        try:
            self._ingest_message(message)
        except NotIngested as refusal:
            self.stats[refusal.stat] += 1
            self._dead_letter(message, str(refusal))
        except Exception as error:
            if self._retry_later(error):
                raise
            self.stats["failed"] += 1
            log.exception("MQTT message on %s failed unexpectedly; dead-lettered", message.topic)
            self._dead_letter(message, f"internal error: {type(error).__name__}: {error}")

    def _retry_later(self, error: BaseException) -> bool:
        """The store is down or the stream too far behind: leave the message unacknowledged for redelivery."""
        return isinstance(error, RetryLater) or self.service.store.is_unavailable(error)

    def _dead_letter(self, message: mqtt.MQTTMessage, reason: str) -> None:
        device_id = device_id_from_topic(message.topic)
        log.warning("MQTT message from %s dead-lettered: %s", device_id or message.topic, reason)
        self.service.store.add_dead_letter(
            DeadLetter(
                utc_now(),
                device_id,
                message.topic,
                reason[:MAX_REASON_CHARS],
                hashlib.sha256(message.payload).hexdigest(),
                len(message.payload),
            )
        )
        self.stats["dead_letters"] += 1

    def _ingest_message(self, message: mqtt.MQTTMessage) -> None:
        device_id = device_id_from_topic(message.topic)
        device = self.service.store.get_device(device_id) if device_id else None
        if device is None or device.revoked:
            raise NotIngested("unknown_device", f"topic: {message.topic!r} names no known, unrevoked device")
        try:
            body = orjson.loads(message.payload)
        except orjson.JSONDecodeError as error:
            raise NotIngested("invalid_json", f"body: not valid JSON ({error})") from None
        try:
            result = self.service.ingest(device, body)
        except BatchShapeError as error:
            raise NotIngested("malformed", str(error)) from None
        self._count(device_id, result)
        if result.rejected:
            reasons = "; ".join(f"readings[{r.index}] {r.error}" for r in result.rejected)
            raise NotIngested("partly_rejected", f"{len(result.rejected)} reading(s) rejected: {reasons}")

    def _count(self, device_id: str | None, result: IngestResult) -> None:
        self.stats["accepted"] += result.accepted
        self.stats["duplicates"] += result.duplicates
        self.stats["rejected"] += len(result.rejected)
        self.stats["warnings"] += len(result.warnings)
        for warning in result.warnings:
            log.info("device %s reading %d stored as implausible: %s", device_id, warning.index, warning.warning)
