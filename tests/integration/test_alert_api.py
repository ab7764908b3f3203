"""The alert API on the real Redis and Kafka (FastAPI's TestClient runs the app in
process): auth (401/403), filters (site, severity, state, bbox, time), the
acknowledge/resolve flow (Redis, audit, Kafka) and the WebSocket feed."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aioredis
from fastapi.testclient import TestClient
from kafka import KafkaConsumer
from starlette.websockets import WebSocketDisconnect

from argus.settings import Settings
from argus.stores import alerts as alert_sink
from schemas.alerts import Alert, Evidence, Severity
from services.alert_api.app import create_app
from services.alert_api.config import ApiConfig
from services.alert_api.publisher import ChangePublisher

pytestmark = pytest.mark.integration

READ_KEY = secrets.token_urlsafe(24)
OPERATOR_KEY = secrets.token_urlsafe(24)
READ = {"X-API-Key": READ_KEY}
OPERATOR = {"X-API-Key": OPERATOR_KEY}
RULE = f"api_test_{uuid.uuid4().hex[:6]}"  # isolates this module's alerts in shared indexes
PARIS, LYON = (48.8566, 2.3522), (45.7640, 4.8357)


def make_alert(name: str, site: str, severity: Severity, where: tuple[float, float],
               age_s: float = 0.0) -> Alert:
    now = time.time() - age_s
    return Alert(alert_id=f"{RULE}-{name}", rule=RULE, title=f"alert {name}",
                 severity=severity, site_id=site, zone_id="gate", lat=where[0], lon=where[1],
                 first_seen=now - 5, last_seen=now, created_at=now, evidence=[
                     Evidence(source="sensor", event_id=f"ev-{name}", ts=now, sensor_id="pir"),
                     Evidence(source="video", event_id=f"vid-{name}", ts=now,
                              camera_id="cam-1", snapshot_ref="frames.raw/cam-1/7")])


def on_kafka(stack: Settings, alert_id: str, want: int, timeout_s: float = 15.0
             ) -> list[Alert]:
    """The alerts-topic records keyed by ``alert_id`` (from the beginning), as soon as
    ``want`` arrived (or what arrived by the timeout)."""
    consumer = KafkaConsumer(stack.topic("alerts"), bootstrap_servers=stack.kafka_bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             group_id=None)
    found: list[Alert] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < want and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300).values():
                found += [Alert.model_validate_json(r.value) for r in batch
                          if r.key == alert_id.encode()]
        for batch in consumer.poll(timeout_ms=500).values():  # anything extra shows up
            found += [Alert.model_validate_json(r.value) for r in batch
                      if r.key == alert_id.encode()]
    finally:
        consumer.close()
    return found


def seed(stack: Settings, *alerts: Alert, resolve: tuple[str, ...] = ()) -> None:
    async def run() -> None:
        client = aioredis.Redis.from_url(stack.redis_url)
        try:
            for alert in alerts:
                await alert_sink.open_or_update(client, alert, ttl_s=600)
            for alert_id in resolve:
                await alert_sink.resolve(client, alert_id, "seeder", "seeded")
        finally:
            await client.aclose()
    asyncio.run(run())


@pytest.fixture(scope="module")
def api(stack: Settings) -> Iterator[TestClient]:
    config = ApiConfig(api_keys=f"wall:{READ_KEY}:read,alice:{OPERATOR_KEY}:operator",
                       alert_resolved_ttl_s=300, publish_retry_s=1.0)
    with TestClient(create_app(stack, config)) as client:
        yield client


@pytest.fixture(scope="module")
def seeded(stack: Settings) -> dict[str, Alert]:
    alerts = {
        "p-high": make_alert("p-high", "paris-1", Severity.HIGH, PARIS),
        "p-crit": make_alert("p-crit", "paris-1", Severity.CRITICAL, PARIS, age_s=60),
        "l-med": make_alert("l-med", "lyon-1", Severity.MEDIUM, LYON, age_s=120),
        "l-old": make_alert("l-old", "lyon-1", Severity.LOW, LYON, age_s=3600),
        "l-done": make_alert("l-done", "lyon-1", Severity.HIGH, LYON, age_s=30),
    }
    seed(stack, *alerts.values(), resolve=(f"{RULE}-l-done",))
    return alerts


def ids(api: TestClient, **params: str | int) -> list[str]:
    response = api.get("/v1/alerts", params={"rule": RULE, **params}, headers=READ)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["alerts"])
    return [a["alert_id"].removeprefix(f"{RULE}-") for a in body["alerts"]]


@pytest.mark.parametrize(("method", "path", "headers", "status"), [
    ("get", "/v1/alerts", {}, 401),
    ("get", "/v1/alerts", {"X-API-Key": "not-a-configured-key-at-all"}, 401),
    ("get", "/v1/alerts", READ, 200),
    ("get", "/v1/alerts", OPERATOR, 200),
    ("get", "/v1/alerts/whatever", {}, 401),
    ("get", "/v1/audit", {}, 401),
    ("post", "/v1/alerts/whatever/ack", {}, 401),
    ("post", "/v1/alerts/whatever/ack", READ, 403),
    ("post", "/v1/alerts/whatever/resolve", READ, 403),
    ("post", "/v1/alerts/whatever/ack", OPERATOR, 404),
    ("get", "/v1/alerts/stream", {}, 401),
    ("get", "/healthz", {}, 200),
    ("get", "/readyz", {}, 200),
    ("get", "/docs", {}, 200),
])
def test_auth(api: TestClient, method: str, path: str, headers: dict[str, str], status: int
              ) -> None:
    response = api.request(method, path, headers=headers)
    assert response.status_code == status, response.text
    if status == 401:
        assert response.headers["www-authenticate"] == "ApiKey"
    if status == 403:
        assert response.json()["detail"] == "the read role cannot do this (needs operator)"


def test_openapi_readyz_and_metrics(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    assert {"/v1/alerts", "/v1/alerts/{alert_id}", "/v1/alerts/{alert_id}/ack",
            "/v1/alerts/{alert_id}/resolve", "/v1/audit"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    assert api.get("/readyz").json() == {"redis": "ok", "kafka": "connected",
                                         "feed": "subscribed"}
    api.get("/v1/alerts", headers=READ)
    text = api.get("/metrics").text
    assert 'argus_alert_api_requests_total{method="GET",route="/v1/alerts",status="200"}' in text


@pytest.mark.parametrize(("params", "expected"), [
    ({}, ["p-high", "p-crit", "l-med", "l-old"]),
    ({"site": "paris-1"}, ["p-high", "p-crit"]),
    ({"severity": "critical"}, ["p-crit"]),
    ({"severity": "low,medium"}, ["l-med", "l-old"]),
    ({"site": "lyon-1", "severity": "high"}, []),
    ({"bbox": "2.2,48.8,2.5,48.9"}, ["p-high", "p-crit"]),
    ({"bbox": "4.7,45.7,4.9,45.8"}, ["l-med", "l-old"]),
    ({"bbox": "-10,40,10,50"}, ["p-high", "p-crit", "l-med", "l-old"]),  # both cities
    ({"bbox": "0,0,1,1"}, []),
    ({"state": "resolved"}, ["l-done"]),
    ({"state": "all"}, ["p-high", "l-done", "p-crit", "l-med", "l-old"]),
    ({"order": "severity"}, ["p-crit", "p-high", "l-med", "l-old"]),
    ({"limit": 2}, ["p-high", "p-crit"]),
])
def test_filters(api: TestClient, seeded: dict[str, Alert], params: dict[str, str | int],
                 expected: list[str]) -> None:
    assert ids(api, **params) == expected


def test_time_filters(api: TestClient, seeded: dict[str, Alert]) -> None:
    now = time.time()
    assert ids(api, since=str(now - 600)) == ["p-high", "p-crit", "l-med"]
    assert ids(api, until=str(now - 1800)) == ["l-old"]
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 90))
    assert ids(api, since=iso) == ["p-high", "p-crit"]


@pytest.mark.parametrize(("params", "message"), [
    ({"bbox": "1,2,3"}, "bbox must be minLon,minLat,maxLon,maxLat"),
    ({"bbox": "10,0,5,1"}, "minLon <= maxLon"),
    ({"severity": "urgent"}, "'urgent' is not a valid Severity"),
    ({"state": "closed"}, "'closed' is not a valid AlertState"),
    ({"since": "yesterday"}, "not a Unix time or ISO 8601 time"),
])
def test_bad_filters(api: TestClient, params: dict[str, str], message: str) -> None:
    response = api.get("/v1/alerts", params=params, headers=READ)
    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_get_one_with_evidence(api: TestClient, seeded: dict[str, Alert]) -> None:
    response = api.get(f"/v1/alerts/{RULE}-p-high", headers=READ)
    assert response.status_code == 200
    assert Alert.model_validate(response.json()) == seeded["p-high"]
    assert [e["event_id"] for e in response.json()["evidence"]] == ["ev-p-high", "vid-p-high"]
    assert api.get(f"/v1/alerts/{RULE}-nope", headers=READ).status_code == 404


def test_ack_and_resolve_flow(api: TestClient, stack: Settings) -> None:
    alert = make_alert(f"flow-{uuid.uuid4().hex[:6]}", "flow-site", Severity.HIGH, PARIS)
    seed(stack, alert)
    path = f"/v1/alerts/{alert.alert_id}"
    sync = redis.Redis.from_url(stack.redis_url, decode_responses=True)

    acked = api.post(f"{path}/ack", json={"comment": "guard sent"}, headers=OPERATOR)
    assert acked.status_code == 200, acked.text
    assert acked.headers["x-argus-kafka"] == "published"
    body = acked.json()
    assert (body["state"], body["acknowledged_by"], body["version"]) == ("acknowledged",
                                                                         "alice", 2)
    assert sync.hget(alert_sink.alert_key(alert.alert_id), "state") == "acknowledged"
    again = api.post(f"{path}/ack", headers=OPERATOR)
    assert again.status_code == 409
    assert again.json()["detail"].startswith("cannot acknowledge an alert that is acknowledged")

    resolved = api.post(f"{path}/resolve", json={"comment": "cat on the fence"},
                        headers=OPERATOR)
    assert resolved.status_code == 200
    assert (resolved.json()["state"], resolved.json()["resolved_by"]) == ("resolved", "alice")
    assert api.post(f"{path}/resolve", headers=OPERATOR).status_code == 409
    assert 0 < sync.ttl(alert_sink.alert_key(alert.alert_id)) <= 300
    listed = api.get("/v1/alerts", params={"site": "flow-site"}, headers=READ).json()
    assert listed["count"] == 0
    listed = api.get("/v1/alerts", params={"site": "flow-site", "state": "resolved"},
                     headers=READ).json()
    assert [a["alert_id"] for a in listed["alerts"]] == [alert.alert_id]

    audit = api.get("/v1/audit", params={"alert_id": alert.alert_id}, headers=READ).json()
    assert [(e["actor"], e["action"], e["comment"], e["from_state"], e["to_state"],
             e["version"], e["change"], e["event_ids"]) for e in audit] == [
        ("alice", "resolve", "cat on the fence", "acknowledged", "resolved", 3, None, []),
        ("alice", "acknowledge", "guard sent", "open", "acknowledged", 2, None, []),
        ("engine", "evidence", "", "open", "open", 1, "created",  # the seeded creation
         [e.event_id for e in alert.evidence])]

    assert [(a.version, a.state.value, a.change.value)
            for a in on_kafka(stack, alert.alert_id, 2)] == [
        (2, "acknowledged", "acknowledged"), (3, "resolved", "resolved")]
    assert sync.zscore(alert_sink.UNPUBLISHED, alert.alert_id) is None


@pytest.mark.timeout(30)  # a TestClient WebSocket read has no timeout of its own
def test_websocket_feed(api: TestClient, stack: Settings) -> None:
    alert = make_alert(f"ws-{uuid.uuid4().hex[:6]}", "ws-site", Severity.HIGH, PARIS)
    other = make_alert(f"ws-other-{uuid.uuid4().hex[:6]}", "ws-elsewhere", Severity.HIGH,
                       PARIS)
    seed(stack, alert)
    with pytest.raises(WebSocketDisconnect) as refused, api.websocket_connect(
            "/v1/alerts/stream") as ws:
        ws.receive_json()
    assert refused.value.code == 1008

    with api.websocket_connect(f"/v1/alerts/stream?site=ws-site&api_key={READ_KEY}") as ws:
        snapshot = ws.receive_json()
        assert snapshot["type"] == "snapshot"
        assert [a["alert_id"] for a in snapshot["alerts"]] == [alert.alert_id]
        started = time.monotonic()
        assert api.post(f"/v1/alerts/{alert.alert_id}/ack", headers=OPERATOR,
                        json={"comment": "seen"}).status_code == 200
        change = ws.receive_json()
        # the seed's own change may arrive after the snapshot (the feed subscribes before it
        # reads the snapshot; clients keep the highest version, services/alert_api/stream.py)
        while change["type"] == "change" and change["alert"]["version"] <= 1:
            change = ws.receive_json()
        latency = time.monotonic() - started
        assert change["type"] == "change"
        assert (change["alert"]["alert_id"], change["alert"]["state"],
                change["alert"]["version"]) == (alert.alert_id, "acknowledged", 2)
        assert latency < 3.0

        # the rule engine's side: an update through the sink reaches the feed too; an
        # alert of another site does not
        seed(stack, other, alert.model_copy(update={"version": 2, "count": 2}))
        change = ws.receive_json()
        while change["alert"]["change"] == "acknowledged":  # the ack's, delivered twice
            change = ws.receive_json()
        assert (change["alert"]["alert_id"], change["alert"]["change"],
                change["alert"]["count"], change["alert"]["state"]) == (
            alert.alert_id, "updated", 2, "acknowledged")


def test_outbox_sends_what_a_crashed_writer_left(stack: Settings) -> None:
    """The worker wrote Redis and died before its Kafka send: the API's outbox loop sends
    the change (keyed by alert id) and marks it published."""
    alert = make_alert(f"outbox-{uuid.uuid4().hex[:6]}", "outbox-site", Severity.HIGH, PARIS)

    async def run() -> tuple[int, int]:
        client = aioredis.Redis.from_url(stack.redis_url)
        publisher = ChangePublisher(stack, client)
        try:
            await alert_sink.open_or_update(client, alert, ttl_s=600)  # ...and no send
            await publisher.start()
            assert publisher.connected
            return await publisher.drain(older_than_s=0.0), await publisher.drain(0.0)
        finally:
            await publisher.stop()
            await client.aclose()

    first, second = asyncio.run(run())
    assert first >= 1 and second == 0
    assert on_kafka(stack, alert.alert_id, 1) == [alert]
    sync = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    assert sync.hget(alert_sink.alert_key(alert.alert_id), "published_version") == "1"
