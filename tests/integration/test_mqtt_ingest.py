"""MQTT ingest against the real Mosquitto broker and the real Kafka broker.

Readings are published with paho-mqtt (QoS 1) to the embedded broker; the gateway's
subscriber (in-process, its own client id and a topic root unique to this run) publishes
through the same ``SensorPublisher`` as HTTP, so the assertions read ``sensors.events`` and
``dlq``. The gateway uses its own topology (site ``mq-test``) so its events cannot feed the
session's correlation rules; records are picked out by event id or exact payload.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from kafka import KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client import REGISTRY

from argus.kafka import make_producer
from argus.settings import Settings
from argus.topology import Topology
from schemas.dlq import DeadLetter
from schemas.sensors import SensorEvent
from services.sensor_gateway.logic import event_id
from services.sensor_gateway.mqtt import MqttIngest, MqttOptions
from services.sensor_gateway.publisher import SensorPublisher
from tests.conftest import free_port
from tests.kafka_utils import consume
from tools import stack as embedded

pytestmark = pytest.mark.integration

TOPOLOGY = Topology.model_validate({
    "sites": [
        {"id": "mq-test", "lat": 51.5, "lon": -0.13, "zones": [{"id": "lobby"}]},
        {"id": "mq-other", "lat": 48.8, "lon": 2.29, "zones": [{"id": "yard"}]},
    ],
    "sensors": [
        {"id": "mq-pir-1", "site": "mq-test", "zone": "lobby", "type": "intrusion"},
        {"id": "mq-door-1", "site": "mq-test", "zone": "lobby", "type": "door"},
        {"id": "mq-smoke-1", "site": "mq-other", "zone": "yard", "type": "smoke"},
    ],
})


@dataclass
class Ingest:
    settings: Settings
    root: str
    """This run's topic root: readings go to ``<root>/<site>/<sensor>``."""
    ingest: MqttIngest
    producer: KafkaProducer

    def options(self, **overrides: Any) -> MqttOptions:
        return replace(self.ingest.options, **overrides)


def send(port: int, topic: str, payload: bytes, retain: bool = False) -> None:
    """Publish one message with QoS 1 and wait for the broker's PUBACK."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"test-sensor-{uuid.uuid4().hex[:8]}")
    client.connect("127.0.0.1", port, keepalive=10)
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=10)
        assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def find(settings: Settings, topic: str, match: Callable[[ConsumerRecord], bool],
         count: int = 1, timeout_s: float = 30.0) -> list[ConsumerRecord]:
    """The records of a topic that ``match``, once ``count`` of them arrived (or time ran out)."""
    deadline = time.monotonic() + timeout_s
    want = 1
    while True:
        records = consume(settings, topic, want, max(1.0, deadline - time.monotonic()))
        hits = [r for r in records if match(r)]
        if len(hits) >= count or time.monotonic() >= deadline:
            return hits
        want = len(records) + 1


def _event(record: ConsumerRecord) -> SensorEvent:
    return SensorEvent.model_validate_json(record.value)


def _letter(record: ConsumerRecord) -> DeadLetter:
    return DeadLetter.model_validate_json(record.value)


def start_ingest(settings: Settings, producer: KafkaProducer, options: MqttOptions
                 ) -> MqttIngest:
    ingest = MqttIngest(SensorPublisher(settings, TOPOLOGY, producer), options)
    ingest.start()
    assert ingest.subscribed.wait(15), "the gateway did not subscribe within 15 s"
    return ingest


@pytest.fixture(scope="module")
def gateway(stack: Settings) -> Iterator[Ingest]:
    producer = make_producer(stack, client_id="test-mqtt-gateway", max_block_ms=10000)
    root = f"t{uuid.uuid4().hex[:8]}/argus/sensors"
    # a clean session: tests leave no session behind on the shared broker
    options = MqttOptions(port=stack.mqtt_port, topic=root + "/{site}/{sensor_id}",
                          client_id=f"test-gateway-{uuid.uuid4().hex[:8]}", clean_session=True)
    ingest = start_ingest(stack, producer, options)
    try:
        yield Ingest(stack, root, ingest, producer)
    finally:
        ingest.stop()
        producer.flush(10)
        producer.close(10)


def test_a_reading_without_sensor_id_is_published_enriched_and_seen(gateway: Ingest) -> None:
    ts = round(time.time(), 3)
    send(gateway.settings.mqtt_port, f"{gateway.root}/mq-test/mq-pir-1",
         json.dumps({"state": "active", "ts": ts, "battery": 64.0}).encode())
    expected = event_id("mq-pir-1", ts, "active")
    [record] = find(gateway.settings, "sensors.events", lambda r: _event(r).event_id == expected)
    event = _event(record)
    assert record.key == b"mq-test"
    assert (event.sensor_id, event.site_id, event.zone_id, event.type.value) == (
        "mq-pir-1", "mq-test", "lobby", "intrusion")
    assert (event.state, event.ts, event.battery) == ("active", ts, 64.0)
    # the heartbeat metrics: last seen is the reading's time, battery its level
    assert REGISTRY.get_sample_value("argus_sensor_last_seen_timestamp_seconds",
                                     {"sensor": "mq-pir-1"}) == ts
    assert REGISTRY.get_sample_value("argus_sensor_battery_percent",
                                     {"sensor": "mq-pir-1"}) == 64.0


def test_a_list_payload_and_a_matching_sensor_id_are_published(gateway: Ingest) -> None:
    ts = round(time.time(), 3)
    readings = [{"sensor_id": "mq-door-1", "state": "open", "ts": ts},
                {"state": "closed", "ts": ts + 1.5}]
    send(gateway.settings.mqtt_port, f"{gateway.root}/mq-test/mq-door-1",
         json.dumps(readings).encode())
    ids = [event_id("mq-door-1", ts, "open"), event_id("mq-door-1", ts + 1.5, "closed")]
    records = find(gateway.settings, "sensors.events", lambda r: _event(r).event_id in ids, 2)
    got = sorted(records, key=lambda r: r.offset)
    assert [_event(r).event_id for r in got] == ids  # in order, on one partition
    assert [_event(r).state for r in got] == ["open", "closed"]


@pytest.mark.parametrize(
    ("topic_tail", "payload", "reason", "detail"),
    [
        ("mq-test/mq-pir-1", b'{"state": "active", "ts": ', "malformed", "not valid JSON"),
        ("mq-test/mq-pir-9", b'{"state": "active", "ts": NOW}', "unknown_sensor", "'mq-pir-9'"),
        ("mq-test/mq-pir-1", b'{"sensor_id": "mq-door-1", "state": "open", "ts": NOW}',
         "topic_mismatch", "names sensor 'mq-door-1'"),
        ("mq-test/mq-smoke-1", b'{"value": 0.7, "ts": NOW}', "topic_mismatch",
         "belongs to site 'mq-other'"),
        ("mq-test/mq-pir-1", b'{"state": "active"}', "schema", "ts: Field required"),
    ],
)
def test_bad_messages_are_dead_lettered_with_their_topic(
    gateway: Ingest, topic_tail: str, payload: bytes, reason: str, detail: str
) -> None:
    payload = payload.replace(b"NOW", f"{time.time():.6f}".encode())
    topic = f"{gateway.root}/{topic_tail}"
    send(gateway.settings.mqtt_port, topic, payload)
    [record] = find(gateway.settings, "dlq", lambda r: _letter(r).payload() == payload)
    letter = _letter(record)
    assert (letter.stage, letter.reason) == ("sensor_gateway", reason)
    assert detail in letter.error
    assert letter.headers == {"origin": f"mqtt:{topic}"}


def test_messages_sent_while_the_gateway_was_away_are_delivered(gateway: Ingest) -> None:
    """The session is persistent (the default): the broker keeps QoS 1 messages for the
    gateway's id."""
    options = gateway.options(client_id=f"test-away-{uuid.uuid4().hex[:8]}",
                              topic=f"{gateway.root}-away/{{site}}/{{sensor_id}}",
                              clean_session=MqttOptions().clean_session)
    assert options.clean_session is False
    start_ingest(gateway.settings, gateway.producer, options).stop()
    ts = round(time.time(), 3)
    send(gateway.settings.mqtt_port, f"{gateway.root}-away/mq-test/mq-pir-1",
         json.dumps({"state": "inactive", "ts": ts}).encode())
    ingest = start_ingest(gateway.settings, gateway.producer, options)
    try:
        expected = event_id("mq-pir-1", ts, "inactive")
        hits = find(gateway.settings, "sensors.events", lambda r: _event(r).event_id == expected)
        assert len(hits) == 1
        assert (ingest.stats.received, ingest.stats.published) == (1, 1)
    finally:
        ingest.stop()
        end_session(gateway.settings.mqtt_port, options.client_id)


def end_session(port: int, client_id: str) -> None:
    """Drop a persistent session from the broker (connect once with a clean session)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         clean_session=True)
    client.connect("127.0.0.1", port, keepalive=10)
    client.loop(timeout=1.0)
    client.disconnect()


def test_the_gateway_reconnects_after_the_broker_restarts(
    gateway: Ingest, tmp_path: Path
) -> None:
    """A private broker on a free port (the shared one stays up), stopped and started."""
    settings = Settings(stack_dir=tmp_path, mqtt_port=free_port())
    assert embedded.up(settings, ["mosquitto"]) == ["mosquitto"]
    broker = embedded.Mosquitto(settings)
    options = gateway.options(port=settings.mqtt_port, min_backoff_s=1, max_backoff_s=2,
                              client_id=f"test-restart-{uuid.uuid4().hex[:8]}")
    ingest = start_ingest(gateway.settings, gateway.producer, options)
    try:
        broker.stop()
        assert broker.status().state == "stopped"
        deadline = time.monotonic() + 10
        while ingest.subscribed.is_set() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not ingest.subscribed.is_set()
        assert embedded.up(settings, ["mosquitto"]) == ["mosquitto"]
        assert ingest.subscribed.wait(15), "no resubscription within 15 s of the restart"
        ts = round(time.time(), 3)
        send(settings.mqtt_port, f"{gateway.root}/mq-test/mq-door-1",
             json.dumps({"state": "open", "ts": ts}).encode())
        expected = event_id("mq-door-1", ts, "open")
        assert len(find(gateway.settings, "sensors.events",
                        lambda r: _event(r).event_id == expected)) == 1
    finally:
        ingest.stop()
        embedded.down(settings, ["mosquitto"])
    assert broker.status().state == "stopped"
