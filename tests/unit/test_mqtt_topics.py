"""Pure logic of the MQTT input: topic patterns, origins, payload checks, ack ordering."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from paho.mqtt.enums import MQTTErrorCode

from argus.settings import Settings
from argus.topology import Topology
from schemas.dlq import DeadLetter
from schemas.sensors import SensorEvent, SensorType
from services.sensor_gateway.logic import (
    Origin,
    RejectedReading,
    apply_origin,
    check_origin_site,
    event_id,
)
from services.sensor_gateway.mqtt import (
    MqttIngest,
    MqttOptions,
    TopicPattern,
    _Message,
    _Pending,
)
from services.sensor_gateway.publisher import BatchRejected, PublishError, SensorPublisher

NOW = 1_700_000_000.0
TOPOLOGY = Topology.model_validate({
    "sites": [{"id": "depot", "lat": 51.5, "lon": -0.1, "zones": [{"id": "lobby"}]},
              {"id": "shop", "lat": 48.8, "lon": 2.3, "zones": [{"id": "floor"}]}],
    "sensors": [{"id": "pir-1", "site": "depot", "zone": "lobby", "type": "intrusion"},
                {"id": "door-9", "site": "shop", "zone": "floor", "type": "door"}],
})
DEFAULT = TopicPattern.parse("argus/sensors/{site}/{sensor_id}")


# --- topic patterns -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "subscription"),
    [
        ("argus/sensors/{site}/{sensor_id}", "argus/sensors/+/+"),
        ("city/{site}/alarm/{sensor_id}", "city/+/alarm/+"),
        ("{sensor_id}", "+"),
        ("building-7/sensors", "building-7/sensors"),
        ("t1a2b/argus/sensors/{site}/{sensor_id}", "t1a2b/argus/sensors/+/+"),
    ],
)
def test_pattern_subscription(pattern: str, subscription: str) -> None:
    assert TopicPattern.parse(pattern).subscription == subscription


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "non-empty"),
        ("$SYS/{sensor_id}", "not start with '$'"),
        ("argus/+/{sensor_id}", "level '+'"),
        ("argus/#", "level '#'"),
        ("argus/{zone}/{sensor_id}", "level '{zone}'"),
        ("argus/x{site}/{sensor_id}", "level 'x{site}'"),
        ("{sensor_id}/{sensor_id}", "{sensor_id} appears twice"),
    ],
)
def test_bad_patterns_are_refused(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match="bad MQTT topic pattern") as info:
        TopicPattern.parse(pattern)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("pattern", "topic", "sensor_id", "site_id"),
    [
        (DEFAULT, "argus/sensors/depot/pir-1", "pir-1", "depot"),
        (DEFAULT, "argus/sensors/shop/door-9", "door-9", "shop"),
        (TopicPattern.parse("city/{site}/alarm/{sensor_id}"), "city/a/alarm/b", "b", "a"),
        (TopicPattern.parse("{sensor_id}"), "pir-1", "pir-1", None),
        (TopicPattern.parse("building-7/sensors"), "building-7/sensors", None, None),
    ],
)
def test_origin_of_a_topic(pattern: TopicPattern, topic: str, sensor_id: str | None,
                           site_id: str | None) -> None:
    assert pattern.origin(topic) == Origin(f"mqtt:{topic}", sensor_id, site_id)


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("argus/sensors/depot", "does not match"),
        ("argus/sensors/depot/pir-1/extra", "does not match"),
        ("argus/sensor/depot/pir-1", "does not match"),
        ("argus/sensors/depot/", "the {sensor_id} level is empty"),
        ("argus/sensors//pir-1", "the {site} level is empty"),
    ],
)
def test_topics_that_name_no_sensor_are_rejected(topic: str, message: str) -> None:
    with pytest.raises(RejectedReading) as info:
        DEFAULT.origin(topic)
    assert info.value.reason == "topic" and message in info.value.message


# --- payload against origin -----------------------------------------------------------

ORIGIN = Origin("mqtt:argus/sensors/depot/pir-1", "pir-1", "depot")


@pytest.mark.parametrize(
    ("item", "origin", "expected"),
    [
        ({"ts": NOW}, ORIGIN, {"ts": NOW, "sensor_id": "pir-1"}),
        ({"sensor_id": None, "ts": NOW}, ORIGIN, {"sensor_id": "pir-1", "ts": NOW}),
        ({"sensor_id": "pir-1", "ts": NOW}, ORIGIN, {"sensor_id": "pir-1", "ts": NOW}),
        ({"ts": NOW}, None, {"ts": NOW}),  # HTTP: no origin
        ({"ts": NOW}, Origin("mqtt:all"), {"ts": NOW}),  # a topic without {sensor_id}
        ("not an object", ORIGIN, "not an object"),  # left to schema validation
        ([1, 2], ORIGIN, [1, 2]),
    ],
)
def test_apply_origin_fills_the_sensor_id(item: Any, origin: Origin | None,
                                          expected: Any) -> None:
    assert apply_origin(item, origin) == expected


@pytest.mark.parametrize("claimed", ["door-9", "PIR-1", "", 7])
def test_apply_origin_rejects_another_sensor(claimed: Any) -> None:
    with pytest.raises(RejectedReading) as info:
        apply_origin({"sensor_id": claimed, "ts": NOW}, ORIGIN)
    assert info.value.reason == "topic_mismatch"
    assert f"names sensor {claimed!r}" in info.value.message


@pytest.mark.parametrize(
    ("site", "origin", "rejected"),
    [
        ("depot", ORIGIN, False),
        ("shop", ORIGIN, True),
        ("shop", Origin("mqtt:x/door-9", "door-9"), False),  # the topic names no site
        ("shop", None, False),
    ],
)
def test_check_origin_site(site: str, origin: Origin | None, rejected: bool) -> None:
    event = SensorEvent(event_id="e", sensor_id="door-9", site_id=site, zone_id="floor",
                        type=SensorType.DOOR, ts=NOW)
    if rejected:
        with pytest.raises(RejectedReading, match="belongs to site 'shop'"):
            check_origin_site(event, origin)
    else:
        check_origin_site(event, origin)


# --- the publisher with an origin, and the subscriber's ack order ----------------------


class _Future:
    def __init__(self, fail: bool) -> None:
        self.fail = fail

    def get(self, timeout: float | None = None) -> None:
        if self.fail:
            raise TimeoutError("no acknowledgement")


class _Producer:
    """Records what would be sent to Kafka; ``failures`` sends of events time out."""

    def __init__(self, failures: int = 0) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.failures = failures

    def send(self, topic: str, key: bytes | None = None, value: bytes = b"") -> _Future:
        self.sent.append((topic, value))
        fail = topic.endswith("sensors.events") and self.failures > 0
        self.failures -= fail
        return _Future(fail)

    def letters(self) -> list[DeadLetter]:
        return [DeadLetter.model_validate_json(v) for t, v in self.sent if t.endswith("dlq")]

    def events(self) -> list[SensorEvent]:
        return [SensorEvent.model_validate_json(v) for t, v in self.sent
                if t.endswith("sensors.events")]


def _publisher(producer: _Producer) -> SensorPublisher:
    return SensorPublisher(Settings(topic_prefix="unit."), TOPOLOGY, cast(Any, producer),
                           clock=lambda: NOW, ack_timeout_s=0.01)


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("argus/sensors/depot/pir-1", b'{"state": "active", "ts": 1700000000}', None),
        ("argus/sensors/depot/pir-1", b'[{"ts": 1700000000}, {"ts": 1700000009}]', None),
        ("argus/sensors/depot/pir-1", b'{"state": "active"', "malformed"),
        ("argus/sensors/depot/pir-1", b'{"sensor_id": "door-9", "ts": 1700000000}',
         "topic_mismatch"),
        ("argus/sensors/depot/door-9", b'{"ts": 1700000000}', "topic_mismatch"),
        ("argus/sensors/depot/ghost", b'{"ts": 1700000000}', "unknown_sensor"),
        ("argus/sensors/depot/pir-1", b'{"ts": 1000}', "stale"),
    ],
)
def test_publisher_with_an_origin(topic: str, payload: bytes, reason: str | None) -> None:
    producer = _Producer()
    origin = DEFAULT.origin(topic)
    if reason is None:
        published = _publisher(producer).publish(payload, origin)
        assert len(published.event_ids) == len(producer.events()) >= 1
        assert {e.sensor_id for e in producer.events()} == {origin.sensor_id}
        return
    with pytest.raises(BatchRejected) as info:
        _publisher(producer).publish(payload, origin)
    assert info.value.reason == reason
    [letter] = producer.letters()
    assert (letter.reason, letter.payload(), letter.headers) == (
        reason, payload, {"origin": f"mqtt:{topic}"})
    assert producer.events() == []


def _ingest(producer: _Producer) -> tuple[MqttIngest, list[int]]:
    """A subscriber that is never connected; its acknowledgements are recorded."""
    ingest = MqttIngest(_publisher(producer), MqttOptions(min_backoff_s=0))
    acked: list[int] = []

    def ack(mid: int, qos: int) -> MQTTErrorCode:
        acked.append(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    ingest.client.ack = ack  # type: ignore[method-assign]
    return ingest, acked


def _message(mid: int, topic: str, payload: dict[str, Any] | bytes, retain: bool = False
             ) -> _Message:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return _Message(topic, body, mid, 1, retain, generation=0)


def test_messages_are_acknowledged_in_order_once_kafka_has_them() -> None:
    producer = _Producer(failures=1)  # the first event send is not acknowledged
    ingest, acked = _ingest(producer)
    pending = [
        _Pending(_message(1, "argus/sensors/depot/pir-1", {"state": "active", "ts": NOW})),
        _Pending(_message(2, "argus/sensors/depot/pir-1", b"garbage")),
        _Pending(_message(3, "argus/sensors/depot/pir-1", {"state": "off", "ts": NOW + 1})),
        _Pending(_message(4, "argus/sensors/depot/pir-1", {"ts": NOW}, retain=True)),
    ]
    with pytest.raises(PublishError, match="did not acknowledge"):
        ingest._publish(pending)
    assert acked == [] and len(pending) == 4  # nothing acknowledged past the failure
    ingest._publish(pending)  # the retry
    assert acked == [1, 2, 3, 4] and pending == []
    assert [letter.reason for letter in producer.letters()] == ["malformed"]  # not twice
    ids = [event_id("pir-1", NOW, "active"), event_id("pir-1", NOW + 1, "off")]
    # the failed send and the one after it were sent again: at least once, same ids
    assert [e.event_id for e in producer.events()] == [ids[0], ids[1], ids[0], ids[1]]
    assert (ingest.stats.published, ingest.stats.rejected, ingest.stats.retained) == (2, 1, 1)


def test_a_message_from_an_earlier_connection_is_not_acknowledged() -> None:
    ingest, acked = _ingest(_Producer())
    ingest._generation = 2
    old = _message(7, "argus/sensors/depot/pir-1", {"state": "active", "ts": NOW})
    ingest._publish([_Pending(old)])
    assert acked == []  # the broker redelivers it on the new connection
