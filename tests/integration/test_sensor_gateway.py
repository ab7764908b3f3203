"""The sensor gateway against the real Kafka broker: HTTP ingest, dead letters, replay.

The app runs in-process on a free port (its own event loop in a thread); requests are
plain HTTP. The gateway gets its own topology (site ``gw-test``, built here) rather than the
session's, so its events cannot feed the session's correlation rules. The session's topics
may also carry other tests' records, so every assertion picks its own records out by event
id or by the exact payload.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from kafka.consumer.fetcher import ConsumerRecord

from argus.kafka import make_producer
from argus.settings import Settings
from argus.topology import Topology
from schemas.dlq import DeadLetter
from schemas.sensors import SensorEvent
from services.sensor_gateway.gateway import PUBLISHER, SensorPublisher, create_app, event_id
from services.sensor_gateway.replay import iter_csv, replay
from tests.kafka_utils import consume

pytestmark = pytest.mark.integration


TOPOLOGY = Topology.model_validate({
    "sites": [{"id": "gw-test", "lat": 51.5246, "lon": -0.134,
               "zones": [{"id": "lobby"}, {"id": "car-park"}]}],
    "sensors": [
        {"id": "gw-pir-1", "site": "gw-test", "zone": "lobby", "type": "intrusion"},
        {"id": "gw-door-1", "site": "gw-test", "zone": "lobby", "type": "door"},
        {"id": "gw-smoke-1", "site": "gw-test", "zone": "car-park", "type": "smoke"},
    ],
})


@dataclass
class Gateway:
    url: str
    settings: Settings
    publisher: SensorPublisher


class _Server:
    """An aiohttp app on 127.0.0.1:<free port>, served by an event loop in a thread."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="gateway",
                                       daemon=True)
        self.runner = web.AppRunner(app, access_log=None)

    async def _start(self) -> int:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        return int(self.runner.addresses[0][1])

    def start(self) -> int:
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def gateway(stack: Settings) -> Iterator[Gateway]:
    producer = make_producer(stack, client_id="test-sensor-gateway", max_block_ms=10000)
    app = create_app(stack, TOPOLOGY, producer)
    server = _Server(app)
    port = server.start()
    try:
        yield Gateway(f"http://127.0.0.1:{port}", stack, app[PUBLISHER])
    finally:
        server.stop()
        producer.flush(10)
        producer.close(10)


def request(url: str, body: bytes | None = None) -> tuple[int, dict[str, Any] | str]:
    """GET (no body) or POST; returns the status and the JSON (or text) body."""
    req = urllib.request.Request(url, data=body, method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


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


def test_health_ready_and_metrics(gateway: Gateway) -> None:
    assert request(gateway.url + "/healthz") == (200, {"status": "ok"})
    status, body = request(gateway.url + "/readyz")
    assert status == 200 and isinstance(body, dict) and body["partitions"] >= 1
    status, text = request(gateway.url + "/metrics")
    assert status == 200 and "argus_sensor_events_total" in str(text)


def test_good_event_is_published_keyed_by_site_and_enriched(gateway: Gateway) -> None:
    ts = round(time.time(), 3)
    body = json.dumps({"sensor_id": "gw-pir-1", "state": "active", "ts": ts,
                       "battery": 87.5}).encode()
    status, reply = request(gateway.url + "/v1/sensors/events", body)
    expected_id = event_id("gw-pir-1", ts, "active")
    assert (status, reply) == (202, {"accepted": 1, "event_ids": [expected_id],
                                     "duplicates": []})

    [record] = find(gateway.settings, "sensors.events",
                    lambda r: _event(r).event_id == expected_id)
    assert record.key == b"gw-test"
    event = _event(record)
    assert (event.sensor_id, event.site_id, event.zone_id, event.type) == (
        "gw-pir-1", "gw-test", "lobby", "intrusion")
    assert (event.state, event.ts, event.battery) == ("active", ts, 87.5)

    # the same reading again (a client retry) is acknowledged but not published twice
    status, reply = request(gateway.url + "/v1/sensors/events", body)
    assert (status, reply) == (202, {"accepted": 0, "event_ids": [],
                                     "duplicates": [expected_id]})


def test_a_list_of_readings_is_published(gateway: Gateway) -> None:
    ts = round(time.time(), 3)
    items = [{"sensor_id": "gw-door-1", "state": "open", "ts": ts},
             {"sensor_id": "gw-smoke-1", "value": 0.0, "ts": ts}]
    status, reply = request(gateway.url + "/v1/sensors/events", json.dumps(items).encode())
    assert status == 202 and isinstance(reply, dict) and reply["accepted"] == 2
    ids = set(reply["event_ids"])
    records = find(gateway.settings, "sensors.events", lambda r: _event(r).event_id in ids, 2)
    assert sorted((_event(r).sensor_id, _event(r).zone_id) for r in records) == [
        ("gw-door-1", "lobby"), ("gw-smoke-1", "car-park")]


def test_malformed_json_is_400_and_dead_lettered(gateway: Gateway) -> None:
    body = f'{{"sensor_id": "gw-pir-1", "ts": {time.time()}'.encode()  # unterminated
    status, reply = request(gateway.url + "/v1/sensors/events", body)
    assert status == 400 and isinstance(reply, dict)
    assert reply["error"] == "malformed" and "not valid JSON" in reply["detail"]
    [record] = find(gateway.settings, "dlq", lambda r: _letter(r).payload() == body)
    assert _letter(record).reason == "malformed"


def test_unknown_sensor_is_422_and_dead_lettered_with_the_original_bytes(
    gateway: Gateway,
) -> None:
    body = json.dumps({"sensor_id": "pir-nowhere-7", "state": "active",
                       "ts": time.time()}).encode()
    status, reply = request(gateway.url + "/v1/sensors/events", body)
    assert status == 422 and isinstance(reply, dict)
    assert reply["error"] == "unknown_sensor" and "'pir-nowhere-7'" in reply["detail"]

    [record] = find(gateway.settings, "dlq", lambda r: _letter(r).payload() == body)
    letter = _letter(record)
    assert (letter.stage, letter.reason) == ("sensor_gateway", "unknown_sensor")
    assert record.key == b"sensor_gateway"
    assert "pir-nowhere-7" in letter.error


def test_schema_error_is_422_naming_the_field(gateway: Gateway) -> None:
    body = json.dumps({"sensor_id": "gw-pir-1", "state": f"x{time.time()}"}).encode()
    status, reply = request(gateway.url + "/v1/sensors/events", body)
    assert status == 422 and isinstance(reply, dict)
    assert reply["error"] == "schema" and "ts" in reply["detail"]
    assert reply["errors"][0]["fields"] == ["ts"]
    [record] = find(gateway.settings, "dlq", lambda r: _letter(r).payload() == body)
    assert _letter(record).reason == "schema"


def test_body_over_1_mib_is_413(gateway: Gateway) -> None:
    status, reply = request(gateway.url + "/v1/sensors/events", b" " * (1024 * 1024 + 1))
    assert status == 413 and isinstance(reply, dict) and reply["error"] == "too_large"


def test_replay_of_a_small_csv_publishes_every_event_in_order(
    gateway: Gateway, tmp_path: Path
) -> None:
    log = tmp_path / "tiny.csv"
    log.write_text("offset_s,sensor_id,state,value\n"
                   "0,gw-door-1,open,\n"
                   "1,gw-pir-1,active,\n"
                   "4,gw-pir-1,inactive,\n"
                   "5,gw-door-1,closed,\n"
                   "60,gw-smoke-1,,12.5\n")
    events = list(iter_csv(log))
    publisher = SensorPublisher(gateway.settings, gateway.publisher.topology,
                                gateway.publisher.producer)
    speed, start = 200.0, time.time()
    began = time.monotonic()
    stats = replay(events, publisher, speed=speed, start=start)
    elapsed = time.monotonic() - began
    assert stats.published == 5 and stats.rejected == 0
    assert 60 / speed - 0.05 <= elapsed < 5.0  # on the compressed clock, not instantly

    expected = [event_id(e.sensor_id, round(start + e.offset_s / speed, 6), e.state)
                for e in events]
    records = find(gateway.settings, "sensors.events",
                   lambda r: _event(r).event_id in expected, len(expected))
    got = sorted(records, key=lambda r: (r.partition, r.offset))
    assert [_event(r).event_id for r in got] == expected  # one site: one partition, in order
    assert {r.key for r in got} == {b"gw-test"}
    assert [round(_event(r).ts - start, 3) for r in got] == [
        round(e.offset_s / speed, 3) for e in events]
