"""Pure logic of the sensor gateway: enrichment, rejection, debouncing, log parsing, replay."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest

from argus.settings import REPO_ROOT, Settings, get_settings
from argus.topology import Topology, load_topology
from schemas.dlq import DeadLetter
from schemas.sensors import SensorEvent, SensorReading, SensorType
from services.sensor_gateway.gateway import (
    BatchRejected,
    Debouncer,
    LastSeen,
    RejectedReading,
    SensorPublisher,
    event_id,
    to_event,
)
from services.sensor_gateway.replay import LogEvent, iter_csv, iter_kasteren, replay

NOW = 1_700_000_000.0
DAY = 86_400.0
KASTEREN = get_settings().shared / "data/iot/kasteren_houseA/kasterenSenseData.txt"

TOPOLOGY = Topology.model_validate({
    "sites": [
        {"id": "site-a", "lat": 51.5, "lon": -0.1, "zones": [{"id": "lobby"}, {"id": "yard"}]},
        {"id": "site-b", "lat": 48.8, "lon": 2.3, "zones": [{"id": "shop"}]},
    ],
    "sensors": [
        {"id": "pir-1", "site": "site-a", "zone": "lobby", "type": "intrusion"},
        {"id": "smoke-1", "site": "site-a", "zone": "yard", "type": "smoke"},
        {"id": "door-9", "site": "site-b", "zone": "shop", "type": "door"},
        {"id": "barrier-1", "site": "site-a", "zone": "yard", "type": "gate"},
    ],
})


def reading(sensor_id: str = "pir-1", ts: float = NOW, state: str | None = "active",
            value: float | None = None) -> SensorReading:
    return SensorReading(sensor_id=sensor_id, ts=ts, state=state, value=value)


# --- to_event -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sensor_id", "site", "zone", "kind"),
    [
        ("pir-1", "site-a", "lobby", SensorType.INTRUSION),
        ("smoke-1", "site-a", "yard", SensorType.SMOKE),
        ("door-9", "site-b", "shop", SensorType.DOOR),
        ("barrier-1", "site-a", "yard", SensorType.GATE),
    ],
)
def test_to_event_enriches_from_topology(sensor_id: str, site: str, zone: str,
                                         kind: SensorType) -> None:
    event = to_event(reading(sensor_id, value=21.5), TOPOLOGY, NOW, DAY, 300)
    assert (event.site_id, event.zone_id, event.type) == (site, zone, kind)
    assert (event.sensor_id, event.state, event.value, event.ts) == (sensor_id, "active",
                                                                     21.5, NOW)
    assert event.event_id == event_id(sensor_id, NOW, "active")
    assert event.schema_version == 1


@pytest.mark.parametrize(
    ("sensor_id", "ts", "reason"),
    [
        ("nope", NOW, "unknown_sensor"),
        ("PIR-1", NOW, "unknown_sensor"),  # ids are case-sensitive
        ("pir-1", NOW - DAY - 0.001, "stale"),
        ("pir-1", NOW - 30 * DAY, "stale"),
        ("pir-1", NOW + 300.001, "future"),
        ("pir-1", NOW + DAY, "future"),
        ("nope", NOW - 30 * DAY, "unknown_sensor"),  # unknown is reported first
    ],
)
def test_to_event_rejects(sensor_id: str, ts: float, reason: str) -> None:
    with pytest.raises(RejectedReading) as info:
        to_event(reading(sensor_id, ts), TOPOLOGY, NOW, DAY, 300)
    assert info.value.reason == reason
    if reason == "unknown_sensor":
        assert repr(sensor_id) in info.value.message


@pytest.mark.parametrize("ts", [NOW - DAY, NOW - 1, NOW, NOW + 300])
def test_to_event_accepts_up_to_the_limits(ts: float) -> None:
    assert to_event(reading(ts=ts), TOPOLOGY, NOW, DAY, 300).ts == ts


def test_event_id_is_deterministic() -> None:
    a = to_event(reading(), TOPOLOGY, NOW)
    b = to_event(reading(), TOPOLOGY, NOW + 5)
    assert a.event_id == b.event_id
    assert to_event(reading(state="inactive"), TOPOLOGY, NOW).event_id != a.event_id
    assert to_event(reading(ts=NOW + 0.01), TOPOLOGY, NOW).event_id != a.event_id
    assert to_event(reading("smoke-1"), TOPOLOGY, NOW).event_id != a.event_id


# --- Debouncer ------------------------------------------------------------------------


def event(sensor_id: str = "pir-1", ts: float = NOW, state: str | None = "active",
          value: float | None = None) -> SensorEvent:
    return to_event(reading(sensor_id, ts, state, value), TOPOLOGY, NOW)


@pytest.mark.parametrize(
    ("second", "accepted"),
    [
        (event(ts=NOW), False),  # the very same reading (a client retry)
        (event(ts=NOW + 1.999), False),  # same state inside the window
        (event(ts=NOW - 1.0), False),  # late arrival inside the window
        (event(ts=NOW + 2.0), True),  # the window edge is exclusive
        (event(ts=NOW + 10), True),
        (event(ts=NOW + 0.5, state="inactive"), True),  # a state change always passes
        (event(ts=NOW + 0.5, value=3.0), True),  # so does a value change
        (event("smoke-1", ts=NOW + 0.5), True),  # other sensors are independent
    ],
)
def test_debouncer_table(second: SensorEvent, accepted: bool) -> None:
    debouncer = Debouncer(window_s=2.0)
    assert debouncer.accept(event(ts=NOW))
    assert debouncer.accept(second) is accepted


def test_debouncer_window_runs_from_the_last_accepted_event() -> None:
    debouncer = Debouncer(window_s=2.0)
    results = [debouncer.accept(event(ts=NOW + t)) for t in (0, 1, 1.5, 2, 3, 4.5)]
    assert results == [True, False, False, True, False, True]


def test_debouncer_forget_lets_a_retry_through() -> None:
    debouncer = Debouncer()
    first = event()
    assert debouncer.accept(first)
    debouncer.forget(first)
    assert debouncer.accept(first)


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        ([("pir-1", NOW)], {"pir-1": NOW}),
        ([("pir-1", NOW), ("pir-1", NOW + 5)], {"pir-1": NOW + 5}),
        ([("pir-1", NOW + 5), ("pir-1", NOW)], {"pir-1": NOW + 5}),  # never back in time
        ([("pir-1", NOW), ("door-9", NOW - 60)], {"pir-1": NOW, "door-9": NOW - 60}),
        ([], {}),
    ],
)
def test_last_seen_keeps_the_latest_time_per_sensor(
    readings: list[tuple[str, float]], expected: dict[str, float]
) -> None:
    seen = LastSeen()
    for sensor_id, ts in readings:
        seen.update(sensor_id, ts)
    assert {sid: seen.get(sid) for sid in ("pir-1", "door-9") if seen.get(sid)} == expected


def test_publisher_tracks_last_seen_for_duplicates_too() -> None:
    publisher = _publisher(_Producer())
    publisher.publish(b'{"sensor_id": "pir-1", "state": "active", "ts": 1699999990}')
    published = publisher.publish(b'{"sensor_id": "pir-1", "state": "active", "ts": 1699999991}')
    assert published.duplicate_ids and not published.event_ids
    assert publisher.last_seen.get("pir-1") == 1699999991.0
    assert publisher.last_seen.get("door-9") is None


# --- request parsing (SensorPublisher with an in-memory producer) ---------------------


class _Future:
    def get(self, timeout: float | None = None) -> None:
        return None


class _Producer:
    """Records what would be sent to Kafka."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    def send(self, topic: str, key: bytes | None = None, value: bytes = b"") -> _Future:
        self.sent.append((topic, key, value))
        return _Future()


def _publisher(producer: _Producer) -> SensorPublisher:
    return SensorPublisher(Settings(topic_prefix="unit."), TOPOLOGY, cast(Any, producer),
                           clock=lambda: NOW)


def _letters(producer: _Producer) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(v) for t, _, v in producer.sent if t == "unit.dlq"]


def test_publisher_sends_keyed_by_site_and_drops_duplicates() -> None:
    producer = _Producer()
    publisher = _publisher(producer)
    body = json.dumps([
        {"sensor_id": "pir-1", "state": "active", "ts": NOW},
        {"sensor_id": "door-9", "state": "open", "ts": NOW},
        {"sensor_id": "pir-1", "state": "active", "ts": NOW + 1},
    ]).encode()
    published = publisher.publish(body)
    assert len(published.event_ids) == 2 and len(published.duplicate_ids) == 1
    assert [(t, k) for t, k, _ in producer.sent] == [("unit.sensors.events", b"site-a"),
                                                     ("unit.sensors.events", b"site-b")]
    first = SensorEvent.model_validate_json(producer.sent[0][2])
    assert (first.site_id, first.zone_id, first.type) == ("site-a", "lobby", "intrusion")


@pytest.mark.parametrize(
    ("body", "reason", "fields"),
    [
        (b"{not json", "malformed", []),
        (b"\xff\xfe", "malformed", []),
        (b'{"sensor_id": "pir-1", "ts": NaN}', "malformed", []),
        (b"[]", "schema", []),
        (b'"pir-1"', "schema", ["(reading)"]),
        (b'{"sensor_id": "pir-1"}', "schema", ["ts"]),
        (b'{"sensor_id": "pir-1", "ts": -5}', "schema", ["ts"]),
        (b'{"sensor_id": "pir-1", "ts": 1700000000, "colour": "red"}', "schema", ["colour"]),
        (b'{"sensor_id": "ghost", "ts": 1700000000}', "unknown_sensor", []),
        (b'{"sensor_id": "pir-1", "ts": 1000}', "stale", []),
        (b'{"sensor_id": "pir-1", "ts": 1800000000}', "future", []),
    ],
)
def test_publisher_rejects_and_dead_letters_the_original_bytes(
    body: bytes, reason: str, fields: list[str]
) -> None:
    producer = _Producer()
    with pytest.raises(BatchRejected) as info:
        _publisher(producer).publish(body)
    assert info.value.reason == reason
    assert info.value.rejections[0].error.fields == fields
    [letter] = _letters(producer)
    assert (letter.stage, letter.reason, letter.payload()) == ("sensor_gateway", reason, body)
    assert not [s for s in producer.sent if s[0] == "unit.sensors.events"]


def test_publisher_rejects_a_whole_list_naming_each_bad_item() -> None:
    producer = _Producer()
    items: list[dict[str, Any]] = [
        {"sensor_id": "pir-1", "state": "active", "ts": NOW},
        {"sensor_id": "ghost", "ts": NOW},
        {"sensor_id": "pir-1"},
    ]
    with pytest.raises(BatchRejected) as info:
        _publisher(producer).publish(json.dumps(items).encode())
    assert [(r.index, r.error.reason) for r in info.value.rejections] == [
        (1, "unknown_sensor"), (2, "schema")]
    assert [(d.reason, json.loads(d.payload())) for d in _letters(producer)] == [
        ("unknown_sensor", items[1]), ("schema", items[2])]
    assert len(producer.sent) == 2  # the two dead letters, nothing on sensors.events


# --- log formats ----------------------------------------------------------------------


def test_iter_csv(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(
        "# a comment\n"
        "offset_s,sensor_id,state,value\n"
        "\n"
        "8,pir-1,active,\n"
        "2.5,smoke-1,,42.5\n"
        "11, pir-1 ,inactive,\n"
    )
    assert list(iter_csv(path)) == [
        LogEvent(2.5, "smoke-1", None, 42.5),
        LogEvent(8.0, "pir-1", "active", None),
        LogEvent(11.0, "pir-1", "inactive", None),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty log"),
        ("time,sensor_id\n1,a\n", "no 'offset_s' column"),
        ("offset_s,sensor_id\n-1,a\n", ":2: offset_s must be a number >= 0"),
        ("offset_s,sensor_id\nsoon,a\n", ":2:"),
        ("offset_s,sensor_id\n1,\n", ":2: sensor_id is empty"),
        ("offset_s,sensor_id,state,value\n1,a,on,inf\n", ":2: value must be a finite"),
    ],
)
def test_iter_csv_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        list(iter_csv(path))


def test_demo_csv_is_valid_against_the_topology() -> None:
    events = list(iter_csv(REPO_ROOT / "config" / "demo-sensors.csv"))
    topology = load_topology(REPO_ROOT / "config" / "topology.yaml", REPO_ROOT.parent / "shared")
    assert all(topology.sensor(e.sensor_id) is not None for e in events)
    pir = [(e.offset_s, e.state) for e in events if e.sensor_id == "pir-lobby-1"]
    assert pir == [(8, "active"), (11, "inactive"), (38, "active"), (41, "inactive"),
                   (68, "active"), (71, "inactive"), (98, "active"), (101, "inactive")]
    assert {e.state for e in events if e.sensor_id == "door-lobby-1"} == {"open", "closed"}


KASTEREN_SMALL = (
    "Start time: Time sensor started firing\r\n"
    "\r\n"
    "Start time          \tEnd time            \tID\tVal\r\n"
    "--------------------\t--------------------\t--\t---\r\n"
    "25-Feb-2008 00:20:14\t25-Feb-2008 00:22:57\t24\t1\r\n"
    "25-Feb-2008 00:21:00\t25-Feb-2008 00:21:00\t5\t1\r\n"
    "25-Feb-2008 00:22:57\t25-Feb-2008 00:23:10\t24\t1\r\n"
)


def test_iter_kasteren_small(tmp_path: Path) -> None:
    path = tmp_path / "sense.txt"
    path.write_text(KASTEREN_SMALL)
    got = [(e.offset_s, e.sensor_id, e.state) for e in iter_kasteren(path)]
    assert got == [
        (0.0, "kasteren-24", "active"),
        (46.0, "kasteren-5", "active"),  # a zero-length firing: start before end
        (46.0, "kasteren-5", "inactive"),
        (163.0, "kasteren-24", "inactive"),  # the end of one firing before the next start
        (163.0, "kasteren-24", "active"),
        (176.0, "kasteren-24", "inactive"),
    ]
    mapped = list(iter_kasteren(path, {24: "door-lobby-1"}))
    assert [e.sensor_id for e in mapped] == ["door-lobby-1"] * 4
    assert mapped[0].offset_s == 0.0 and mapped[0].at == datetime(2008, 2, 25, 0, 20, 14)
    assert len(list(iter_kasteren(path, {24: "door-lobby-1"}, keep_unmapped=True))) == 6


def _kasteren_rows() -> int:
    lines = KASTEREN.read_text(errors="replace").splitlines()
    return sum(1 for line in lines if line[:2].isdigit() and line.count("\t") == 3)


@pytest.mark.skipif(not KASTEREN.exists(), reason="the van Kasteren data set is not mirrored")
def test_iter_kasteren_real_file() -> None:
    rows = _kasteren_rows()
    assert rows == 1319
    events = list(iter_kasteren(KASTEREN))
    assert len(events) == 2 * rows
    first = events[0]
    assert (first.sensor_id, first.state, first.offset_s) == ("kasteren-24", "active", 0.0)
    assert first.at == datetime(2008, 2, 25, 0, 20, 14)
    assert isinstance(first.offset_s, float)
    offsets = [e.offset_s for e in events]
    assert offsets == sorted(offsets)
    assert events[-1].at == datetime(2008, 3, 23, 19, 4, 47)
    states = {e.sensor_id: 0 for e in events}
    for e in events:
        states[e.sensor_id] += 1 if e.state == "active" else -1
    assert set(states.values()) == {0}  # every firing starts and ends


# --- replay scheduling (no Kafka: a publisher that records bodies) ---------------------


class _RecordingPublisher:
    topic = "unit.sensors.events"

    def __init__(self, stop_after: int | None = None, stop: threading.Event | None = None
                 ) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.stop_after, self.stop = stop_after, stop

    def submit(self, body: bytes) -> Any:
        self.bodies.append(json.loads(body))
        if self.stop is not None and len(self.bodies) == self.stop_after:
            self.stop.set()
        return type("S", (), {"events": [1], "duplicates": []})()

    def confirm(self, submission: Any) -> None:
        return None


LOG = [LogEvent(0.0, "pir-1", "active"), LogEvent(3600.0, "pir-1", "inactive"),
       LogEvent(7200.0, "smoke-1", None, 55.0)]


def test_replay_restamps_on_the_compressed_clock() -> None:
    publisher = _RecordingPublisher()
    stats = replay(LOG, cast(Any, publisher), speed=3600, start=NOW - 10, clock=lambda: NOW)
    assert publisher.bodies == [
        {"sensor_id": "pir-1", "ts": NOW - 10, "state": "active"},
        {"sensor_id": "pir-1", "ts": NOW - 9, "state": "inactive"},
        {"sensor_id": "smoke-1", "ts": NOW - 8, "value": 55.0},
    ]
    assert (stats.published, stats.cycles) == (3, 1)


def test_replay_loops_with_a_period_until_stopped() -> None:
    stop = threading.Event()
    publisher = _RecordingPublisher(stop_after=7, stop=stop)
    stats = replay(LOG, cast(Any, publisher), speed=3600, start=NOW - 100, loop=True,
                   period_s=10800, stop=stop, clock=lambda: NOW)
    assert [b["ts"] - (NOW - 100) for b in publisher.bodies] == [0, 1, 2, 3, 4, 5, 6]
    assert stats.cycles == 2


@pytest.mark.parametrize("speed", [0.0, -1.0, float("nan"), float("inf")])
def test_replay_rejects_bad_speed(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        replay(LOG, cast(Any, _RecordingPublisher()), speed=speed)
