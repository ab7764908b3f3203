"""The webhook notifier against a real HTTP receiver (aiohttp on 127.0.0.1), the real
Redis (outcomes, de-duplication) and the real Kafka ``alerts`` topic."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import pytest
import redis
import redis.asyncio as aioredis
from aiohttp import web

from argus.kafka import make_producer
from argus.settings import Settings
from argus.stores import alert_outbox
from schemas.alerts import Action, Alert, Severity, apply_action
from services.notifier.notifier import DELIVERIES, RetryPolicy, Webhook, deliver, notify, record
from services.notifier.service import run
from tests.conftest import free_port
from tests.integration.test_alert_api import PARIS, make_alert

pytestmark = pytest.mark.integration

FAST = RetryPolicy(attempts=3, base_s=0.05, cap_s=0.2, timeout_s=2.0)


@dataclass
class Receiver:
    """Answers each path with its scripted statuses in turn (then 200) and keeps what
    it received."""

    script: dict[str, list[int]] = field(default_factory=dict)
    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((request.path, dict(request.headers), await request.read()))
        statuses = self.script.get(request.path, [])
        status = statuses.pop(0) if statuses else 200
        return web.Response(status=status, headers={"Retry-After": "0"} if status == 503 else {})


@asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/{name}", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def test_retries_outcomes_and_records(stack: Settings) -> None:
    alert = make_alert(f"hook-{uuid.uuid4().hex[:6]}", "hook-site", Severity.HIGH, PARIS)
    receiver = Receiver(script={"/flaky": [503, 500], "/gone": [404]})

    async def scenario() -> list[tuple[str, str, int, int | None]]:
        client = aioredis.Redis.from_url(stack.redis_url)
        async with receiving(receiver) as base, aiohttp.ClientSession() as session:
            hooks = [Webhook(name="flaky", url=f"{base}/flaky"),
                     Webhook(name="gone", url=f"{base}/gone"),
                     Webhook(name="down", url=f"http://127.0.0.1:{free_port()}/x")]
            results: list[tuple[str, str, int, int | None]] = []
            for hook in hooks:
                delivery = await deliver(session, hook, alert, FAST)
                await record(client, delivery)
                results.append((delivery.webhook, delivery.outcome, delivery.attempts,
                                delivery.status))
        await client.aclose()
        return results

    assert asyncio.run(scenario()) == [("flaky", "delivered", 3, 200),
                                       ("gone", "failed", 1, 404),
                                       ("down", "failed", 3, None)]
    assert [path for path, _, _ in receiver.received] == ["/flaky"] * 3 + ["/gone"]
    sync = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    rows = [{str(k): str(v) for k, v in f.items()} for _, f in sync.xrange(DELIVERIES) or []
            if f and f["alert_id"] == alert.alert_id]
    assert [(r["webhook"], r["outcome"], r["attempts"], r["status"]) for r in rows] == [
        ("flaky", "delivered", "3", "200"), ("gone", "failed", "1", "404"),
        ("down", "failed", "3", "")]
    assert rows[2]["error"].startswith("ClientConnectorError")


def test_notify_skips_what_was_already_delivered(stack: Settings) -> None:
    alert = make_alert(f"dedup-{uuid.uuid4().hex[:6]}", "hook-site", Severity.HIGH, PARIS)
    receiver = Receiver()

    async def scenario() -> list[int]:
        client = aioredis.Redis.from_url(stack.redis_url)
        async with receiving(receiver) as base, aiohttp.ClientSession() as session:
            hook = Webhook(name="once", url=f"{base}/once")
            counts = [len(await notify(session, client, [hook], alert, FAST))
                      for _ in range(2)]
        await client.aclose()
        return counts

    assert asyncio.run(scenario()) == [1, 0]
    assert len(receiver.received) == 1


@pytest.mark.timeout(60)
def test_alerts_topic_to_webhook(stack: Settings) -> None:
    site = f"notify-{uuid.uuid4().hex[:6]}"
    created = make_alert(f"kafka-{uuid.uuid4().hex[:6]}", site, Severity.CRITICAL, PARIS)
    acked = apply_action(created, Action.ACKNOWLEDGE, "alice", "on it", now=time.time())
    receiver = Receiver()

    async def scenario() -> None:
        async with receiving(receiver) as base:
            hook = Webhook(name=f"ops-{site}", url=f"{base}/ops", sites=frozenset({site}),
                           secret="s3cret")
            stop = asyncio.Event()
            task = asyncio.create_task(run(stack, [hook], FAST, stop, "earliest"))
            producer = make_producer(stack)
            for change in (created, created, acked):  # the replay of v1 is delivered once
                key, value = alert_outbox.change_message(change)
                producer.send(stack.topic("alerts"), key=key, value=value)
            producer.flush()
            producer.close()
            deadline = time.monotonic() + 40
            while len(receiver.received) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)  # a duplicate would land now
            stop.set()
            await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    bodies = [json.loads(body) for _, _, body in receiver.received]
    assert [(b["change"], b["alert"]["version"]) for b in bodies] == [("created", 1),
                                                                      ("acknowledged", 2)]
    assert Alert.model_validate(bodies[1]["alert"]) == acked
    _, headers, body = receiver.received[1]
    assert headers["X-Argus-Delivery"] == f"{created.alert_id}:2"
    digest = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Argus-Signature"] == f"sha256={digest}"
