"""MQTT input of the sensor gateway: a paho-mqtt subscriber feeding the same publisher.

Sensors publish one JSON reading (or a list) per message to a topic that names their site
and sensor, by default ``argus/sensors/{site}/{sensor_id}``::

    argus/sensors/depot-north/pir-lobby-1   {"state": "active", "ts": 1700000000.5}

The payload is a :class:`~schemas.sensors.SensorReading`; its ``sensor_id`` may be left
out (the topic's is used). A payload naming another sensor, or a sensor of another site
than the topic, is rejected (``topic_mismatch``). Every message goes through
:class:`~services.sensor_gateway.publisher.SensorPublisher`, so validation, dead letters
(with the MQTT topic in the ``origin`` header), debouncing and metrics are those of HTTP.

Delivery: the gateway subscribes with QoS 1 on a persistent session (``clean_session``
false, a stable client id) and acknowledges a message only once Kafka acknowledged its
events (or it was dead-lettered), in the order received. While Kafka is down it retries
with backoff and the broker holds the rest (at most its in-flight window is unacknowledged);
messages that arrived while the gateway was away are delivered when it reconnects. A lost
broker connection is retried with exponential backoff (paho's reconnect loop). Retained
messages replayed on subscribe are last-known states, not new readings: they are counted
(``retained``) and not published.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from argus.backoff import Backoff
from argus.kafka import make_producer, stop_producer
from argus.log import get_logger
from argus.metrics import SENSOR_REJECTED
from argus.settings import Settings
from argus.topology import Topology
from services.sensor_gateway.logic import Origin, RejectedReading
from services.sensor_gateway.metrics import MQTT_CONNECTED, MQTT_DISCONNECTS, MQTT_MESSAGES
from services.sensor_gateway.publisher import (
    BatchRejected,
    PublishError,
    SensorPublisher,
    Submission,
)

log = get_logger(__name__)

DEFAULT_TOPIC = "argus/sensors/{site}/{sensor_id}"
PLACEHOLDERS = {"{site}": "site_id", "{sensor_id}": "sensor_id"}
MAX_BATCH = 100
"""Messages submitted to Kafka together before their acknowledgements are awaited."""


# --- topics (pure) ------------------------------------------------------------------


@dataclass(frozen=True)
class TopicPattern:
    """A topic layout: literal levels and the placeholders ``{site}`` and ``{sensor_id}``."""

    text: str
    levels: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> TopicPattern:
        """Validate a pattern; raises ``ValueError`` naming the problem."""
        levels = tuple(text.split("/"))
        if not text or text.startswith("$"):
            raise ValueError(f"bad MQTT topic pattern {text!r}: it must be non-empty and not "
                             f"start with '$' (use share_group for shared subscriptions)")
        for level in levels:
            if level in PLACEHOLDERS:
                if levels.count(level) > 1:
                    raise ValueError(f"bad MQTT topic pattern {text!r}: {level} appears twice")
            elif any(c in level for c in "+#{}"):
                raise ValueError(f"bad MQTT topic pattern {text!r}: level {level!r} is neither "
                                 f"a literal nor one of {', '.join(PLACEHOLDERS)}")
        return cls(text, levels)

    @property
    def subscription(self) -> str:
        """The MQTT topic filter (each placeholder becomes ``+``)."""
        return "/".join("+" if level in PLACEHOLDERS else level for level in self.levels)

    def origin(self, topic: str) -> Origin:
        """The site and sensor a topic names; raises ``RejectedReading("topic")``."""
        parts = topic.split("/")
        if len(parts) != len(self.levels) or any(
            level not in PLACEHOLDERS and level != part
            for level, part in zip(self.levels, parts, strict=False)
        ):
            raise RejectedReading("topic", f"MQTT topic {topic!r} does not match the pattern "
                                           f"{self.text!r}")
        ids: dict[str, str] = {}
        for level, part in zip(self.levels, parts, strict=True):
            if level in PLACEHOLDERS:
                if not part:
                    raise RejectedReading("topic", f"MQTT topic {topic!r}: the {level} level "
                                                   f"is empty")
                ids[PLACEHOLDERS[level]] = part
        return Origin(channel=f"mqtt:{topic}", **ids)


# --- the subscriber -------------------------------------------------------------------


@dataclass(frozen=True)
class MqttOptions:
    """Where and how to subscribe."""

    host: str = "127.0.0.1"
    port: int = 21883
    topic: str = DEFAULT_TOPIC
    client_id: str = "argus-sensor-gateway"
    qos: int = 1
    keepalive_s: int = 30
    min_backoff_s: int = 1
    max_backoff_s: int = 30
    clean_session: bool = False
    share_group: str | None = None
    """Subscribe as ``$share/<group>/...``: gateways of one group split the messages."""


@dataclass
class MqttStats:
    """What the subscriber did (messages, not events: a message may hold a list)."""

    received: int = 0
    published: int = 0
    duplicates: int = 0
    rejected: int = 0
    retained: int = 0


@dataclass(frozen=True)
class _Message:
    topic: str
    payload: bytes
    mid: int
    qos: int
    retain: bool
    generation: int
    """The connection it arrived on: message ids mean nothing on a later connection."""


@dataclass
class _Pending:
    """A message of the batch in hand: submitted (or rejected: nothing to confirm) or not."""

    message: _Message
    submitted: bool = False
    submission: Submission | None = field(default=None)


class MqttIngest:
    """Subscribes to the sensor topics and publishes through a ``SensorPublisher``.

    ``start()`` connects in the background (retrying with backoff until the broker
    answers); ``subscribed`` is set while the subscription is active; ``stop()`` finishes
    the message in hand and disconnects (unacknowledged messages stay with the broker).
    """

    def __init__(self, publisher: SensorPublisher, options: MqttOptions | None = None) -> None:
        self.publisher = publisher
        self.options = options or MqttOptions()
        self.pattern = TopicPattern.parse(self.options.topic)
        self.stats = MqttStats()
        self.subscribed = threading.Event()
        self._stop = threading.Event()
        # QoS 1 is bounded by the broker's in-flight window; this bounds QoS 0 floods too
        self._inbox: queue.Queue[_Message] = queue.Queue(maxsize=10_000)
        self._generation = 0
        self._worker = threading.Thread(target=self._work, name="mqtt-ingest", daemon=True)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.options.client_id,
                             clean_session=self.options.clean_session, manual_ack=True)
        client.reconnect_delay_set(self.options.min_backoff_s, self.options.max_backoff_s)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.client = client

    @property
    def subscription(self) -> str:
        group = self.options.share_group
        return f"$share/{group}/{self.pattern.subscription}" if group else (
            self.pattern.subscription)

    def start(self) -> None:
        self._worker.start()
        o = self.options
        log.info("mqtt.connecting", extra={"host": o.host, "port": o.port,
                                           "subscription": self.subscription,
                                           "client_id": o.client_id})
        self.client.connect_async(o.host, o.port, keepalive=o.keepalive_s)
        self.client.loop_start()

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stop.set()
        if self._worker.is_alive():
            self._worker.join(timeout_s)
        self.client.disconnect()
        self.client.loop_stop()
        self.subscribed.clear()
        MQTT_CONNECTED.set(0)
        log.info("mqtt.stopped", extra={"stats": vars(self.stats)})

    # --- paho callbacks (the network thread: no blocking here) ---------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            MQTT_DISCONNECTS.inc()
            log.error("mqtt.refused", extra={"reason": str(reason)})
            return
        self._generation += 1
        log.info("mqtt.connected", extra={"session_present": flags.session_present})
        client.subscribe(self.subscription, qos=self.options.qos)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        MQTT_DISCONNECTS.inc()
        log.warning("mqtt.connect_failed", extra={"host": self.options.host,
                                                  "port": self.options.port,
                                                  "detail": "retrying with backoff"})

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any,
                      properties: Any) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            log.error("mqtt.subscribe_refused", extra={"subscription": self.subscription,
                                                       "reasons": failed})
            return
        self.subscribed.set()
        MQTT_CONNECTED.set(1)
        log.info("mqtt.subscribed", extra={"subscription": self.subscription,
                                           "qos": [int(r.value) for r in reasons]})

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        self.subscribed.clear()
        MQTT_CONNECTED.set(0)
        if not self._stop.is_set():
            MQTT_DISCONNECTS.inc()
            log.warning("mqtt.disconnected", extra={"reason": str(reason),
                                                    "detail": "reconnecting with backoff"})

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.stats.received += 1
        MQTT_MESSAGES.inc()
        self._inbox.put(_Message(msg.topic, bytes(msg.payload), msg.mid, msg.qos,
                                 bool(msg.retain), self._generation))

    # --- the worker thread: submit, confirm, acknowledge in order ----------------------

    def _take(self) -> list[_Pending]:
        try:
            batch = [_Pending(self._inbox.get(timeout=0.2))]
        except queue.Empty:
            return []
        while len(batch) < MAX_BATCH:
            try:
                batch.append(_Pending(self._inbox.get_nowait()))
            except queue.Empty:
                break
        return batch

    def _work(self) -> None:
        while not self._stop.is_set():
            batch = self._take()
            backoff = Backoff(float(self.options.min_backoff_s),
                              cap=float(self.options.max_backoff_s))
            while batch and not self._stop.is_set():
                try:
                    self._publish(batch)
                except PublishError as exc:
                    delay = backoff.next_delay()
                    if backoff.attempts == 1:  # one line per outage, not per attempt
                        log.error("mqtt.kafka_retry", extra={
                            "error": str(exc), "retry_in_s": round(delay, 2),
                            "messages": len(batch)})
                    self._stop.wait(delay)

    def _publish(self, batch: list[_Pending]) -> None:
        """Submit the batch, then confirm and acknowledge in order, removing each
        acknowledged message; on ``PublishError`` the unacknowledged ones are rolled back
        for a retry (rejected ones are not dead-lettered twice)."""
        try:
            for item in batch:
                if not item.submitted:
                    item.submission = self._submit(item.message)
                    item.submitted = True
            while batch:
                head = batch[0]
                if head.submission is not None:
                    published = self.publisher.confirm(head.submission)
                    self.stats.published += len(published.event_ids)
                    self.stats.duplicates += len(published.duplicate_ids)
                self._ack(head.message)
                batch.pop(0)
        except PublishError:
            for item in batch:
                if item.submission is not None:
                    self.publisher.rollback(item.submission.events)
                    item.submission, item.submitted = None, False
            raise

    def _submit(self, message: _Message) -> Submission | None:
        """Validate and send one message; None if it was rejected or is retained."""
        if message.retain:
            self.stats.retained += 1
            SENSOR_REJECTED.labels("retained").inc()
            log.info("mqtt.retained_skipped", extra={"topic": message.topic})
            return None
        try:
            origin = self.pattern.origin(message.topic)
        except RejectedReading as error:
            self.stats.rejected += 1
            self.publisher.reject(error, message.payload,
                                  origin=Origin(channel=f"mqtt:{message.topic}"))
            return None
        try:
            return self.publisher.submit(message.payload, origin)
        except BatchRejected as exc:
            self.stats.rejected += 1
            log.info("mqtt.rejected", extra={"topic": message.topic, "reason": exc.reason,
                                             "detail": str(exc)})
            return None

    def _ack(self, message: _Message) -> None:
        if message.generation == self._generation:
            self.client.ack(message.mid, message.qos)
        # else: it arrived on an earlier connection; the broker redelivers it


def run_mqtt(settings: Settings, topology: Topology, options: MqttOptions,
             stop: threading.Event, metrics_port: int | None = None) -> MqttStats:
    """Subscribe and publish until ``stop`` is set, then disconnect and flush Kafka.

    With ``metrics_port``, serves ``/metrics``, ``/healthz`` and ``/readyz`` (ready while
    subscribed and Kafka answers).
    """
    from argus.metrics import serve as serve_metrics
    from services.sensor_gateway.gateway import kafka_reachable

    producer = make_producer(settings, client_id="argus-sensor-mqtt", max_block_ms=10000)
    ingest = MqttIngest(SensorPublisher(settings, topology, producer), options)
    server = None
    if metrics_port is not None:
        server = serve_metrics(metrics_port, ready=lambda: ingest.subscribed.is_set()
                               and kafka_reachable(settings))
    ingest.start()
    try:
        stop.wait()
    finally:
        ingest.stop()
        if server is not None:
            server.shutdown()
        stop_producer(producer)
    return ingest.stats
