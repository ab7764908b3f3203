"""The Redis alert sink on the real Redis: every key written once, idempotent."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import redis
import redis.asyncio as aioredis

from argus.settings import Settings
from pipelines import alert_sink
from schemas import Alert, Evidence, Severity

pytestmark = pytest.mark.integration


def make_alert(alert_id: str) -> Alert:
    now = time.time()
    return Alert(alert_id=alert_id, rule="confirmed_intrusion", title="t", severity=Severity.HIGH,
                 site_id="sink-site", zone_id="lobby", camera_id="cam", lat=48.85, lon=2.29,
                 first_seen=now - 5, last_seen=now,
                 evidence=[Evidence(source="sensor", event_id="e1", ts=now, sensor_id="pir")],
                 created_at=now)


def test_write_alert_is_idempotent(stack: Settings) -> None:
    alert = make_alert("sink-test-1")
    sync = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    pubsub = sync.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(alert_sink.CHANNEL)
    time.sleep(0.2)

    async def write_twice() -> list[bool]:
        client = aioredis.Redis.from_url(stack.redis_url)
        try:
            return [await alert_sink.write_alert(client, alert, ttl_s=60) for _ in range(2)]
        finally:
            await client.aclose()

    stream_before = sync.xlen(alert_sink.RECENT)
    assert asyncio.run(write_twice()) == [True, False]
    stored = sync.hgetall(alert_sink.alert_key(alert.alert_id))
    assert stored["rule"] == "confirmed_intrusion" and stored["site_id"] == "sink-site"
    assert Alert.model_validate_json(stored["json"]) == alert
    assert 0 < sync.ttl(alert_sink.alert_key(alert.alert_id)) <= 60
    assert sync.zscore(alert_sink.site_active_key("sink-site"), alert.alert_id) == pytest.approx(
        alert.last_seen)
    assert sync.xlen(alert_sink.RECENT) == stream_before + 1
    assert sync.geopos(alert_sink.GEO, alert.alert_id)[0] is not None
    messages: list[dict[str, object]] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not messages:
        message = pubsub.get_message(timeout=0.5)
        if message:
            messages.append(json.loads(message["data"]))
    assert [m["alert_id"] for m in messages] == [alert.alert_id]
    assert pubsub.get_message(timeout=0.5) is None  # the second write published nothing
    pubsub.close()
