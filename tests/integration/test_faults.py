"""Infrastructure faults a worker must ride out by itself (the CI subset of ``make chaos``;
the worker kill and the Triton cut are in test_worker_lifecycle.py): Redis cut for 10 s
while sensor events arrive. The server is cut through a proxy, so the shared Redis the
rest of the session uses stays up."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from argus.stores.alerts import get_alert
from pipelines.app import group_id
from tests.conftest import metric_value, scrape
from tests.integration.test_worker_lifecycle import PANIC_SITES, Workers, send_panics, workers
from tests.kafka_utils import committed_behind, consume_until, latest_alerts
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

__all__ = ["workers"]  # the fixture, shared with test_worker_lifecycle


def test_redis_outage_mid_stream_no_alert_lost_or_duplicated(workers: Workers) -> None:
    """A correlate worker whose Redis goes away for 10 s between two rounds of panic
    events: the second round is retried with backoff (counted in
    ``argus_stage_errors_total``, nothing dead-lettered), and once Redis is
    back every site has exactly one alert in Redis and on the topic, holding both panics,
    count 2; the group's offsets reach the end and nothing stays in flight."""
    settings = workers.settings
    base, db = settings.redis_url.rsplit("/", 1)
    port = int(base.rsplit(":", 1)[1])
    proxy = TcpProxy(port)
    proxy.up()
    try:
        _, metrics_port = workers.start(
            "correlate", ARGUS_REDIS_URL=f"redis://127.0.0.1:{proxy.port}/{db}")
        now = time.time()
        round1 = send_panics(settings, "r1", now)
        created = consume_until(settings, "alerts", lambda rs: {
            json.loads(r.value)["site_id"] for r in rs} >= set(PANIC_SITES), 90)
        assert {json.loads(r.value)["site_id"] for r in created} >= set(PANIC_SITES), \
            workers.log_tail()
        proxy.cut()
        round2 = send_panics(settings, "r2", now + 5.0)
        time.sleep(10)
        # redis-py retries a lost connection itself before raising, and the runner's
        # attempt time limit may end an attempt first: either way the retry is counted
        deadline = time.monotonic() + 30
        errors = 0.0
        while time.monotonic() < deadline and not errors:
            text = scrape(metrics_port)
            errors = sum(metric_value(text, "argus_stage_errors_total", stage="correlate",
                                      kind=kind) for kind in ("redis", "timeout"))
            time.sleep(1)
        assert errors, "\n".join([line for line in text.splitlines()
                                  if line.startswith(("argus_stage_errors", "argus_stage_in",
                                                      "argus_stage_messages",
                                                      "argus_redis_command_seconds_count"))]
                                 + [workers.log_tail()])
        assert not metric_value(text, "argus_dlq_messages_total", stage="correlate",
                                reason="internal_error")
        proxy.up()
        wanted = set(round1.values()) | set(round2.values())
        records = consume_until(settings, "alerts", lambda rs: wanted <= {
            e["event_id"] for a in latest_alerts(rs).values() for e in a["evidence"]}, 120)
        alerts = latest_alerts(records)
        by_site: dict[str, list[str]] = {}
        for alert_id, alert in alerts.items():
            by_site.setdefault(alert["site_id"], []).append(alert_id)
        assert {s: len(ids) for s, ids in by_site.items()} == dict.fromkeys(PANIC_SITES, 1), (
            by_site, workers.log_tail())
        # the alerts topic is at-least-once (outbox): a change may be published again when
        # Redis went away between sending it and marking it sent; it is then the same change
        changes: dict[tuple[str, int], dict[str, Any]] = {}
        for record in records:
            alert = json.loads(record.value)
            key = (alert["alert_id"], alert["version"])
            assert changes.setdefault(key, alert) == alert, key

        async def stored() -> dict[str, Any]:
            client = aioredis.Redis.from_url(settings.redis_url)
            try:
                return {site: await get_alert(client, alert_id)
                        for site, (alert_id,) in by_site.items()}
            finally:
                await client.aclose()

        for site, alert in asyncio.run(stored()).items():
            assert alert is not None, site
            assert sorted(e.event_id for e in alert.evidence) == sorted(
                [round1[site], round2[site]]), site
            assert alert.count == 2, (site, alert.count)
        behind = committed_behind(settings, group_id(settings, ["correlate"]), "sensors.events")
        assert not any(behind.values()), (behind, workers.log_tail())
        assert metric_value(scrape(metrics_port), "argus_stage_in_flight",
                            stage="correlate") == 0
    finally:
        proxy.cut()
