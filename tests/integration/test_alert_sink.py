"""The Redis alert sink on the real Redis: idempotent writes, the lifecycle (versions,
acknowledge, resolve), the indexes, the audit streams (operator actions and the evidence
each engine write added) and the Kafka outbox marks."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
import redis
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from argus.settings import Settings
from argus.stores import alert_outbox
from argus.stores import alerts as alert_sink
from schemas import Alert, AlertState, Evidence, Severity
from schemas.alerts import InvalidTransition, cap_evidence

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

    # the recent stream is capped (about RECENT_MAXLEN, trimmed approximately, and shared
    # with every test): what this write added is what came after the newest entry before it
    newest = sync.xrevrange(alert_sink.RECENT, count=1)
    since = str(newest[0][0]) if newest else "0"
    assert asyncio.run(write_twice()) == [True, False]
    stored = sync.hgetall(alert_sink.alert_key(alert.alert_id))
    assert stored["rule"] == "confirmed_intrusion" and stored["site_id"] == "sink-site"
    assert Alert.model_validate_json(stored["json"]) == alert
    assert 0 < sync.ttl(alert_sink.alert_key(alert.alert_id)) <= 60
    assert sync.zscore(alert_sink.site_active_key("sink-site"), alert.alert_id) == pytest.approx(
        alert.last_seen)
    added = sync.xrange(alert_sink.RECENT, min=f"({since}") or []
    assert [f["alert_id"] for _id, f in added
            if f is not None and f["alert_id"] == alert.alert_id] == [
        alert.alert_id]  # once: the second write added no entry
    assert sync.geopos(alert_sink.GEO, alert.alert_id)[0] is not None
    audited = entries_of(sync, alert_sink.AUDIT, alert.alert_id)  # once, not per write
    assert [(f["actor"], f["action"], f["change"], f["event_ids"]) for f in audited] == [
        ("engine", "evidence", "created", '["e1"]')]
    messages: list[dict[str, object]] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not messages:
        message = pubsub.get_message(timeout=0.5)
        if message:
            messages.append(json.loads(message["data"]))
    assert [m["alert_id"] for m in messages] == [alert.alert_id]
    assert pubsub.get_message(timeout=0.5) is None  # the second write published nothing
    pubsub.close()


# --- the lifecycle: open → update → acknowledge → resolve -----------------------------

def collect(pubsub: redis.client.PubSub, alert_id: str, want: int, timeout_s: float = 5
            ) -> list[Alert]:
    """Pub/sub messages of one alert, until ``want`` arrived or the timeout."""
    got: list[Alert] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(got) < want:
        message = pubsub.get_message(timeout=0.2)
        if message and json.loads(message["data"])["alert_id"] == alert_id:
            got.append(Alert.model_validate_json(message["data"]))
    return got


def entries_of(sync: redis.Redis, stream: str, alert_id: str) -> list[dict[str, str]]:
    """The fields of the entries of ``stream`` that belong to ``alert_id``, oldest first."""
    rows = [{str(k): str(v) for k, v in f.items()} for _, f in sync.xrange(stream) or [] if f]
    return [f for f in rows if f["alert_id"] == alert_id]


def stored_alert(sync: redis.Redis, alert_id: str) -> Alert:
    text = sync.hget(alert_sink.alert_key(alert_id), "json")
    assert isinstance(text, str), f"{alert_id} is not in Redis"
    return Alert.model_validate_json(text)


def active_memberships(sync: redis.Redis, alert: Alert) -> dict[str, bool]:
    return {
        "global": sync.zscore(alert_sink.ACTIVE, alert.alert_id) is not None,
        "site": sync.zscore(alert_sink.site_active_key(alert.site_id), alert.alert_id)
        is not None,
        "high": sync.zscore(alert_sink.severity_active_key("high"), alert.alert_id) is not None,
        "critical": sync.zscore(alert_sink.severity_active_key("critical"), alert.alert_id)
        is not None,
        "ranked": sync.zscore(alert_sink.RANKED, alert.alert_id) is not None,
        "geo": sync.geopos(alert_sink.GEO, alert.alert_id)[0] is not None,
        "resolved": sync.zscore(alert_sink.RESOLVED, alert.alert_id) is not None,
    }


def test_lifecycle_versions_audit_and_indexes(stack: Settings) -> None:
    alert_id = f"life-{uuid.uuid4().hex[:8]}"
    v1 = make_alert(alert_id)
    v2 = v1.model_copy(update={"version": 2, "count": 2, "severity": Severity.CRITICAL,
                               "last_seen": v1.last_seen + 10, "evidence": [
                                   *v1.evidence, Evidence(source="sensor", event_id="e2",
                                                          ts=v1.last_seen + 10)]})
    v3 = v2.model_copy(update={"version": 3, "count": 3, "last_seen": v1.last_seen + 20})
    sync = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    pubsub = sync.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(alert_sink.CHANNEL)
    time.sleep(0.2)
    key = alert_sink.alert_key(alert_id)

    async def scenario() -> list[alert_sink.Change]:
        client = aioredis.Redis.from_url(stack.redis_url)
        try:
            changes = [await alert_sink.open_or_update(client, v1, ttl_s=600, now=1000.0)]
            changes.append(await alert_sink.open_or_update(client, v1, ttl_s=600))  # replay
            await alert_outbox.mark_published(client, alert_id, 1)
            changes.append(await alert_sink.open_or_update(client, v1, ttl_s=600))  # replay
            changes.append(await alert_sink.open_or_update(client, v2, ttl_s=600, now=1001.0))
            changes.append(await alert_sink.open_or_update(client, v1, ttl_s=600))  # stale
            changes.append(await alert_sink.acknowledge(client, alert_id, "alice", "on my way",
                                                        now=1002.0))
            with pytest.raises(InvalidTransition, match="cannot acknowledge an alert that is "
                                                        "acknowledged"):
                await alert_sink.acknowledge(client, alert_id, "bob", "me too")
            changes.append(await alert_sink.open_or_update(client, v3, ttl_s=600, now=1003.0))
            assert sync.ttl(key) > 300  # still the active TTL
            changes.append(await alert_sink.resolve(client, alert_id, "bob", "false alarm",
                                                    resolved_ttl_s=120, now=1004.0))
            changes.append(await alert_sink.open_or_update(client, v3.model_copy(
                update={"version": 4}), ttl_s=600))  # after resolution: closed
            return changes
        finally:
            await client.aclose()

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    resolved_before = sample("argus_alerts_resolved_total", rule="confirmed_intrusion",
                             severity="critical")
    timed_before = sample("argus_redis_command_seconds_count", command="alert_open_or_update")
    changes = asyncio.run(scenario())
    # every sink call is timed by operation, and a resolution is counted by rule and severity
    assert sample("argus_alerts_resolved_total", rule="confirmed_intrusion",
                  severity="critical") == resolved_before + 1
    assert sample("argus_redis_command_seconds_count",
                  command="alert_open_or_update") == timed_before + 7
    assert sample("argus_redis_command_seconds_count", command="alert_resolve") >= 1
    assert [(c.outcome.value, c.alert.version, c.needs_publish) for c in changes] == [
        ("created", 1, True), ("duplicate", 1, True), ("duplicate", 1, False),
        ("updated", 2, True), ("stale", 2, True), ("updated", 3, True), ("updated", 4, True),
        ("updated", 5, True), ("closed", 5, True)]
    final = stored_alert(sync, alert_id)
    assert final == changes[-2].alert
    assert (final.state, final.version, final.count, final.severity) == (
        AlertState.RESOLVED, 5, 3, Severity.CRITICAL)
    assert (final.acknowledged_by, final.acknowledged_at) == ("alice", 1002.0)
    assert (final.resolved_by, final.resolved_at) == ("bob", 1004.0)
    assert [(h.actor, h.action.value, h.comment) for h in final.history] == [
        ("alice", "acknowledge", "on my way"), ("bob", "resolve", "false alarm")]
    assert [e.event_id for e in final.evidence] == ["e1", "e2"]
    assert sync.hget(key, "source_version") == "3" and sync.hget(key, "state") == "resolved"
    assert 0 < sync.ttl(key) <= 120
    assert active_memberships(sync, final) == {
        "global": False, "site": False, "high": False, "critical": False, "ranked": False,
        "geo": False, "resolved": True}

    published = collect(pubsub, alert_id, want=5)
    assert [(a.version, a.change.value, a.state.value) for a in published] == [
        (1, "created", "open"), (2, "updated", "open"), (3, "acknowledged", "acknowledged"),
        (4, "updated", "acknowledged"), (5, "resolved", "resolved")]
    assert pubsub.get_message(timeout=0.3) is None
    pubsub.close()
    recent = entries_of(sync, alert_sink.RECENT, alert_id)
    assert [(f["version"], f["change"]) for f in recent] == [
        ("1", "created"), ("2", "updated"), ("3", "acknowledged"), ("4", "updated"),
        ("5", "resolved")]
    # the audit trail: each engine write that added evidence (the replays, the stale
    # version and v3, which added no event, wrote none) and each operator action
    audit = entries_of(sync, alert_sink.AUDIT, alert_id)
    assert audit == [
        {"ts": "1000.0", "actor": "engine", "action": "evidence", "alert_id": alert_id,
         "comment": "", "from_state": "open", "to_state": "open", "version": "1",
         "change": "created", "event_ids": '["e1"]'},
        {"ts": "1001.0", "actor": "engine", "action": "evidence", "alert_id": alert_id,
         "comment": "escalated: high -> critical", "from_state": "open", "to_state": "open",
         "version": "2", "change": "updated", "event_ids": '["e2"]'},
        {"ts": "1002.0", "actor": "alice", "action": "acknowledge", "alert_id": alert_id,
         "comment": "on my way", "from_state": "open", "to_state": "acknowledged",
         "version": "3"},
        {"ts": "1004.0", "actor": "bob", "action": "resolve", "alert_id": alert_id,
         "comment": "false alarm", "from_state": "acknowledged", "to_state": "resolved",
         "version": "5"}]
    assert entries_of(sync, alert_sink.alert_audit_key(alert_id), alert_id) == audit
    assert sync.ttl(alert_sink.alert_audit_key(alert_id)) > 300 * 24 * 3600
    entries = asyncio.run(_audit(stack, alert_id))
    assert [(e.actor, e.version, e.event_ids) for e in entries] == [
        ("bob", 5, []), ("alice", 3, []), ("engine", 2, ["e2"]), ("engine", 1, ["e1"])]


async def _audit(stack: Settings, alert_id: str) -> list[alert_sink.AuditEntry]:
    client = aioredis.Redis.from_url(stack.redis_url)
    try:
        return await alert_sink.audit_entries(client, count=10, alert_id=alert_id)
    finally:
        await client.aclose()


def test_audit_lists_every_event_id_beyond_the_cap_once(stack: Settings) -> None:
    """An engine alert (rule cap 5) updated by 30 events: the stored evidence is the
    trigger and the newest 4, the audit trail names all 31 ids, one entry per version;
    replaying every version (at-least-once delivery) adds no entry."""
    alert_id = f"audit-{uuid.uuid4().hex[:8]}"
    first = make_alert(alert_id)
    versions = [first]
    for i in range(1, 31):
        evidence = [*versions[-1].evidence, Evidence(source="video", event_id=f"v{i}",
                                                     ts=first.last_seen + i)]
        versions.append(first.model_copy(update={
            "version": i + 1, "count": i + 1, "last_seen": first.last_seen + i,
            "evidence": cap_evidence(evidence, 5)}))
    sync = redis.Redis.from_url(stack.redis_url, decode_responses=True)

    async def scenario() -> list[alert_sink.AuditEntry]:
        client = aioredis.Redis.from_url(stack.redis_url)
        try:
            for alert in versions + versions:  # the second round: a replay
                await alert_sink.open_or_update(client, alert, ttl_s=600)
            return await alert_sink.audit_entries(client, count=100, alert_id=alert_id)
        finally:
            await client.aclose()

    entries = asyncio.run(scenario())
    assert [e.event_id for e in stored_alert(sync, alert_id).evidence] == [
        "e1", "v27", "v28", "v29", "v30"]
    assert [e.version for e in entries] == list(range(31, 0, -1))
    assert [i for e in reversed(entries) for i in e.event_ids] == [
        "e1", *(f"v{i}" for i in range(1, 31))]
    assert len(entries_of(sync, alert_sink.AUDIT, alert_id)) == 31


def test_indexes_while_active_and_escalation(stack: Settings) -> None:
    alert_id = f"idx-{uuid.uuid4().hex[:8]}"
    v1 = make_alert(alert_id)
    sync = redis.Redis.from_url(stack.redis_url, decode_responses=True)

    async def scenario() -> None:
        client = aioredis.Redis.from_url(stack.redis_url)
        try:
            await alert_sink.open_or_update(client, v1, ttl_s=600)
            assert active_memberships(sync, v1) == {
                "global": True, "site": True, "high": True, "critical": False, "ranked": True,
                "geo": True, "resolved": False}
            await alert_sink.open_or_update(client, v1.model_copy(update={
                "version": 2, "severity": Severity.CRITICAL, "last_seen": v1.last_seen + 5}),
                ttl_s=600)
        finally:
            await client.aclose()

    asyncio.run(scenario())
    assert active_memberships(sync, v1) == {
        "global": True, "site": True, "high": False, "critical": True, "ranked": True,
        "geo": True, "resolved": False}
    assert sync.zscore(alert_sink.ACTIVE, alert_id) == pytest.approx(v1.last_seen + 5)
    assert sync.zscore(alert_sink.RANKED, alert_id) == pytest.approx(4e10 + v1.last_seen + 5)
    assert 500 < sync.ttl(alert_sink.alert_key(alert_id)) <= 600


def test_concurrent_acknowledgements_apply_once(stack: Settings) -> None:
    alert_id = f"race-{uuid.uuid4().hex[:8]}"

    async def scenario() -> list[str]:
        client = aioredis.Redis.from_url(stack.redis_url)
        try:
            await alert_sink.open_or_update(client, make_alert(alert_id), ttl_s=600)

            async def ack(who: str) -> str:
                try:
                    await alert_sink.acknowledge(client, alert_id, who, "")
                    return "ok"
                except InvalidTransition:
                    return "refused"
            return list(await asyncio.gather(*(ack(f"op{i}") for i in range(10))))
        finally:
            await client.aclose()

    results = asyncio.run(scenario())
    assert sorted(results) == ["ok"] + ["refused"] * 9
    sync = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    assert [f["action"] for f in entries_of(sync, alert_sink.AUDIT, alert_id)] == [
        "evidence", "acknowledge"]  # the creation's evidence, then one acknowledgement
    assert stored_alert(sync, alert_id).version == 2


def test_unknown_alert_and_unpublished_changes(stack: Settings) -> None:
    alert_id = f"pub-{uuid.uuid4().hex[:8]}"

    async def scenario() -> tuple[list[str], list[str]]:
        client = aioredis.Redis.from_url(stack.redis_url)
        try:
            with pytest.raises(alert_sink.AlertNotFound):
                await alert_sink.resolve(client, f"missing-{alert_id}", "alice")
            await alert_sink.open_or_update(client, make_alert(alert_id), ttl_s=600)
            await alert_sink.acknowledge(client, alert_id, "alice")
            before = [a.alert_id for a in await alert_outbox.unpublished(client, 1000, 0.0)]
            assert alert_id not in [a.alert_id for a in await alert_outbox.unpublished(client)]
            sent: list[tuple[bytes, bytes]] = []

            async def send(key: bytes, value: bytes) -> None:
                sent.append((key, value))
            pending = await alert_sink.get_alert(client, alert_id)
            assert pending is not None
            await alert_outbox.publish_change(client, pending, send)
            assert sent == [alert_outbox.change_message(pending)]
            after = [a.alert_id for a in await alert_outbox.unpublished(client, 1000, 0.0)]
            return before, after
        finally:
            await client.aclose()

    before, after = asyncio.run(scenario())
    assert alert_id in before and alert_id not in after
    sync = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    assert sync.hget(alert_sink.alert_key(alert_id), "published_version") == "2"
