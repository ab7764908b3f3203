"""Rule actions as ``commands`` on the real Kafka and Redis.

- A worker on topics of its own turns the two halves of ``confirmed_intrusion`` (whose
  shipped rule has a ``lights`` action) into exactly one lights command; re-sending the
  input, and re-processing it from scratch in another consumer group (empty state), adds
  no second command.
- The command outbox: a command whose send failed stays in Redis and is re-sent by the
  replay or by ``resend``; an expired one is dropped, never sent.
- The notifier executes a ``webhook`` command once (not again when it is replayed, not
  when a configured webhook already gets that alert change, not when expired).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator

import pytest
import redis
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from argus.kafka import make_producer
from argus.settings import Settings
from argus.stores import alert_outbox
from argus.stores import alerts as alert_sink
from pipelines.stages.correlate.rules import AlertChange, ChangeKind
from pipelines.stages.correlate.rules.model import LightsAction, PtzAction
from pipelines.stages.correlate.writer import COMMANDS_UNSENT, AlertWriter, command_key
from schemas import Alert, Command
from schemas.commands import command_id
from services.notifier.notifier import DELIVERIES, RetryPolicy, Webhook
from services.notifier.service import run
from tests.conftest import metric_value, scrape
from tests.integration.test_alert_api_notifier import Receiver, receiving
from tests.integration.test_correlation_restart import (
    Private,
    active_alerts,
    on_topic,
    person_event,
    private_env,
    send,
    sensor_event,
    wait_for,
)

pytestmark = pytest.mark.integration

FAST = RetryPolicy(attempts=3, base_s=0.05, cap_s=0.2, timeout_s=2.0)


@pytest.fixture(scope="module")
def private(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Private]:
    yield from private_env(stack, tmp_path_factory, "cm")


def commands_of(settings: Settings, site: str, min_count: int = 1, timeout_s: float = 10.0
                ) -> list[Command]:
    return [Command.model_validate_json(v)
            for v in on_topic(settings, "commands", site.encode(), min_count, timeout_s)]


@pytest.mark.timeout(180)
def test_a_lights_action_makes_exactly_one_command(private: Private) -> None:
    settings, site = private.settings, private.site
    port = private.start_worker()
    fired = time.time()
    sensor, person = sensor_event(private, fired), person_event(private, fired + 3.0, seq=4)
    for topic, event in (("sensors.events", sensor), ("events.video", person)):
        send(settings, topic, event)
    assert wait_for(lambda: len(active_alerts(settings, site)) == 1, 60), private.log_tail()
    [alert] = active_alerts(settings, site)

    [command] = commands_of(settings, site)
    assert (command.type.value, command.site_id, command.zone_id, command.camera_id) == (
        "lights", site, "lobby", None)
    assert command.params == {"state": "on", "duration_s": 300.0}
    assert (command.alert_id, command.alert_version, command.rule, command.trigger) == (
        alert.alert_id, 1, "confirmed_intrusion", "opened")
    assert command.command_id == command_id(alert.alert_id, 1, 0)
    assert command.expires_at - command.issued_at == pytest.approx(settings.command_ttl_s)
    db = redis.Redis.from_url(settings.redis_url)
    assert db.zscore(COMMANDS_UNSENT, command.command_id) is None  # left the outbox

    # at-least-once redelivery of the same input: the engine has seen it, nothing new
    for topic, event in (("sensors.events", sensor), ("events.video", person)):
        send(settings, topic, event)
    def duplicates() -> float:
        text = scrape(port)
        return sum(metric_value(text, "argus_correlation_duplicate_events_total", source=s)
                   for s in ("sensors.events", "events.video"))

    assert wait_for(lambda: duplicates() == 2, 30), (duplicates(), private.log_tail())

    # the whole input again from scratch (another consumer group, empty state): the same
    # alert version and command id come out, the sinks see them as done
    private.stop_workers()
    replay = settings.model_copy(update={"app_id": f"{settings.app_id}-replay"})
    replay_port = private.start_worker(replay)
    def replayed() -> float:
        return metric_value(scrape(replay_port), "argus_alerts_duplicate_total",
                            rule="confirmed_intrusion")

    assert wait_for(lambda: replayed() >= 1, 60), (replayed(), private.log_tail())
    assert replayed() == 1
    time.sleep(1.0)  # a second command would land now
    assert commands_of(settings, site, min_count=2, timeout_s=3) == [command]
    assert [a.alert_id for a in active_alerts(settings, site)] == [alert.alert_id]
    assert len(on_topic(settings, "alerts", alert.alert_id.encode(), 2, timeout_s=3)) == 1


def make_change(site: str, version: int, kind: ChangeKind) -> AlertChange:
    alert_id = f"test_commands-{uuid.uuid4().hex[:12]}"
    alert = Alert(alert_id=alert_id, rule="test_commands", title="t", severity="high",
                  site_id=site, zone_id="lobby", lat=48.85, lon=2.35, first_seen=1.0,
                  last_seen=2.0, evidence=[], created_at=time.time(), version=version)
    return AlertChange(change=kind, alert=alert, actions=[
        LightsAction(type="lights", zone="lobby"),
        PtzAction(type="ptz", camera=f"{site}-cam", preset="door")])


def test_the_outbox_resends_failed_commands_and_drops_expired_ones(private: Private) -> None:
    settings, site = private.settings, private.site
    failing = {"left": 0}

    async def scenario() -> dict[str, object]:
        client = aioredis.Redis.from_url(settings.redis_url)
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        await producer.start()

        def sender(topic: str) -> Callable[[bytes, bytes], Awaitable[None]]:
            async def send_one(key: bytes, value: bytes) -> None:
                if topic == "commands" and failing["left"] > 0:
                    failing["left"] -= 1
                    raise ConnectionError("broker unreachable")  # injected failure
                await producer.send_and_wait(settings.topic(topic), value, key=key)
            return send_one

        writer = AlertWriter(settings, client, sender("alerts"), sender("commands"))
        short = AlertWriter(settings.model_copy(update={"command_ttl_s": 0.2}), client,
                            sender("alerts"), sender("commands"))
        try:
            # 1. both sends fail: the alert is stored, its two commands wait in the outbox
            first = make_change(site, 1, ChangeKind.OPENED)
            failing["left"] = 2
            outcome = (await writer.write(first, None)).value
            pending = [await client.zscore(COMMANDS_UNSENT, command_id(
                first.alert.alert_id, 1, i)) is not None for i in range(2)]
            # 2. the replay of the same change (a redelivered event) sends them
            replayed = (await writer.write(first, None)).value
            after_replay = await client.zscore(COMMANDS_UNSENT, command_id(
                first.alert.alert_id, 1, 0))
            # 3. a failed send is picked up by the timer's resend
            second = make_change(site, 1, ChangeKind.OPENED)
            failing["left"] = 1
            await writer.write(second, None)
            was_pending = await client.zscore(COMMANDS_UNSENT, command_id(
                second.alert.alert_id, 1, 0)) is not None
            if writer.commands is not None:
                await writer.commands.resend(older_than_s=0)
            # 4. an expired command is dropped, not sent
            third = make_change(site, 1, ChangeKind.OPENED)
            failing["left"] = 2
            await short.write(third, None)
            await asyncio.sleep(0.3)
            if short.commands is not None:
                await short.commands.resend(older_than_s=0)
            left = [await client.zscore(COMMANDS_UNSENT, command_id(c.alert.alert_id, 1, i))
                    for c in (first, second, third) for i in range(2)]
            stored = await client.exists(command_key(command_id(third.alert.alert_id, 1, 0)))
        finally:
            await producer.stop()
            await client.aclose()
        return {"outcome": outcome, "pending": pending, "replayed": replayed,
                "after_replay": after_replay, "was_pending": was_pending,
                "left": left, "stored": stored,
                "ids": [first.alert.alert_id, second.alert.alert_id, third.alert.alert_id]}

    got = asyncio.run(scenario())
    assert (got["outcome"], got["pending"], got["replayed"], got["after_replay"]) == (
        "created", [True, True], "duplicate", None)
    assert got["was_pending"] is True
    assert got["left"] == [None] * 6 and got["stored"] == 1  # sent, or dropped as expired
    ids = got["ids"]
    assert isinstance(ids, list)
    first, second, third = (str(i) for i in ids)
    sent = [c for c in commands_of(settings, site, min_count=4, timeout_s=10)
            if c.alert_id in (first, second, third)]
    assert sorted((c.alert_id == first, c.alert_id == second, c.type.value) for c in sent) == [
        (False, True, "lights"), (False, True, "ptz"), (True, False, "lights"),
        (True, False, "ptz")]
    assert len({c.command_id for c in sent}) == 4


def webhook_command(site: str, alert_id: str, url: str, *, issued_at: float | None = None,
                    type_: str = "webhook") -> Command:
    issued = issued_at or time.time()
    params: dict[str, str | int | float | bool] = (
        {"url": url} if type_ == "webhook" else {"state": "on"})
    return Command(command_id=command_id(alert_id, 1, 0), type=type_, site_id=site,
                   zone_id="lobby", alert_id=alert_id, alert_version=1, action_index=0,
                   rule="test_commands", severity="high", trigger="opened", params=params,
                   issued_at=issued, expires_at=issued + 60)


@pytest.mark.timeout(60)
def test_the_notifier_posts_a_webhook_command_once(private: Private) -> None:
    settings, site = private.settings, private.site
    receiver = Receiver()
    alert_ids = [f"test_commands-{uuid.uuid4().hex[:12]}" for _ in range(4)]
    covered_site = f"cov-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        client = aioredis.Redis.from_url(settings.redis_url)
        alert = make_change(site, 1, ChangeKind.OPENED).alert.model_copy(
            update={"alert_id": alert_ids[0]})
        await alert_sink.write_alert(client, alert, ttl_s=600)
        await alert_outbox.mark_published(client, alert.alert_id, 1)  # nothing for an outbox
        await client.aclose()
        async with receiving(receiver) as base:
            # a subscription that gets every change of covered_site's alerts
            configured = Webhook(name="ops", url=f"{base}/ops",
                                 sites=frozenset({covered_site}))
            commands = [
                webhook_command(site, alert_ids[0], f"{base}/rule"),
                webhook_command(site, alert_ids[0], f"{base}/rule"),  # replayed
                webhook_command(covered_site, alert_ids[1], f"{base}/ops"),  # covered
                webhook_command(site, alert_ids[2], f"{base}/rule",
                                issued_at=time.time() - 120),  # expired
                webhook_command(site, alert_ids[3], f"{base}/rule", type_="lights"),
            ]
            producer = make_producer(settings)
            for command in commands:
                producer.send(settings.topic("commands"), key=site.encode(),
                              value=command.to_bytes())
            producer.flush()
            producer.close()
            stop = asyncio.Event()
            task = asyncio.create_task(run(settings, [configured], FAST, stop, "earliest",
                                           commands=True, command_secret="k3y"))
            deadline = time.monotonic() + 30
            while not receiver.received and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.5)  # a second POST would land now
            stop.set()
            await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    assert [path for path, _, _ in receiver.received] == ["/rule"]
    _, headers, body = receiver.received[0]
    expected_id = command_id(alert_ids[0], 1, 0)
    assert (headers["X-Argus-Event"], headers["X-Argus-Delivery"]) == (
        "command.webhook", expected_id)
    digest = hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
    assert headers["X-Argus-Signature"] == f"sha256={digest}"
    payload = json.loads(body)
    assert payload["command"]["command_id"] == expected_id
    assert payload["alert"]["alert_id"] == alert_ids[0]
    db = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    rows = [f for _, f in db.xrange(DELIVERIES) or []
            if f and f.get("command_id") == expected_id]
    assert [(r["webhook"], r["outcome"], r["change"]) for r in rows] == [
        ("rule:test_commands", "delivered", "command.opened")]
