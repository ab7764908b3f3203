"""``argus chaos``'s measurements: what a run's output says (alert changes republished or
duplicated, recovery time from the detection and lag samples) and the report table.

Pure except for reading a run's topic; the doctests are the tests."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from kafka import KafkaConsumer

from argus.settings import Settings

FRESH_S = 2.0
"""Recovered: a detection arrives within this many seconds of its frame's capture."""

def alert_changes(settings: Settings) -> list[dict[str, Any]]:
    """Every record on the run's ``alerts`` topic."""
    return [json.loads(r) for r in read_topic(settings, "alerts")]


def read_topic(settings: Settings, topic: str) -> list[bytes]:
    consumer = KafkaConsumer(settings.topic(topic), bootstrap_servers=settings.kafka_bootstrap,
                             group_id=None, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=3000)
    try:
        return [record.value for record in consumer]
    finally:
        consumer.close()


def republished(changes: list[dict[str, Any]]) -> int:
    """Alert changes published more than once (same alert id and version): the ``alerts``
    topic is at-least-once, so a consumer keeps the highest version per alert id.

    >>> republished([{"alert_id": "a", "version": 1}, {"alert_id": "a", "version": 2},
    ...              {"alert_id": "a", "version": 2}, {"alert_id": "b", "version": 1}])
    1
    """
    seen = Counter((c["alert_id"], c["version"]) for c in changes)
    return sum(n - 1 for n in seen.values())


def duplicated(changes: list[dict[str, Any]], events: set[str]) -> int:
    """Sensor events (of ``events``) that ended up in more than one alert of the same rule:
    one incident, two alerts.

    >>> duplicated([{"alert_id": "a", "rule": "r", "evidence": [{"event_id": "e1"}]},
    ...             {"alert_id": "b", "rule": "r", "evidence": [{"event_id": "e1"}]},
    ...             {"alert_id": "a", "rule": "r", "evidence": [{"event_id": "e2"}]}],
    ...            {"e1", "e2"})
    1
    """
    alerts: dict[tuple[str, str], set[str]] = {}
    for change in changes:
        for item in change.get("evidence", []):
            if item.get("event_id") in events:
                alerts.setdefault((item["event_id"], change["rule"]), set()).add(
                    change["alert_id"])
    return sum(1 for ids in alerts.values() if len(ids) > 1)


def recovery_time(samples: list[tuple[float, float]], lags: list[tuple[float, int]],
                  cleared_at: float, steady_lag: float) -> float | None:
    """Seconds from ``cleared_at`` until both hold: the consumer lag stays at most
    ``steady_lag`` from then on, and a detection has arrived within :data:`FRESH_S` of its
    frame's capture; None if that never happens in the samples.

    >>> recovery_time([(10.0, 9.0), (12.0, 1.0), (13.0, 0.5)],
    ...               [(11.0, 80), (12.5, 5), (14.0, 3)], 10.0, 10)
    2.5
    >>> recovery_time([(12.0, 1.0)], [(11.0, 5), (14.0, 80)], 10.0, 10) is None
    True
    """
    after = [(t, lag) for t, lag in lags if t >= cleared_at]
    lag_ok_at = cleared_at
    for i, (_, lag) in enumerate(after):
        if lag > steady_lag:
            if i + 1 == len(after):
                return None  # still behind at the end
            lag_ok_at = after[i + 1][0]
    fresh = [t for t, latency in samples if t >= cleared_at and latency <= FRESH_S]
    if not fresh:
        return None
    return round(max(lag_ok_at, fresh[0]) - cleared_at, 1)


def alerted_share(events: list[str], alerted: dict[str, float]) -> float | None:
    return round(sum(1 for e in events if e in alerted) / len(events), 3) if events else None


def failed_row(fault: str, exc: Exception) -> dict[str, Any]:
    """The row of a fault whose run could not finish (the error says why)."""
    return {"fault": fault, "recovered": False, "recovery_s": None, "crashed": ["run"],
            "error": repr(exc)[:500], "panic_events": 0, "panic_without_alert": 0,
            "mqtt_panic_without_alert": 0, "intrusion_alerted_share": None, "duplicated": 0,
            "republished": 0, "dead_letters": {}, "skipped": {}, "stage_errors": {},
            "signals": {"worker_unhealthy_s": None}}


def format_table(results: list[dict[str, Any]]) -> str:
    head = ("fault", "recovered", "recovery s", "panic lost", "intrusion alerted",
            "duplicated", "republished", "dead letters", "skipped", "errors by kind",
            "worker down s")
    rows = [head] + [(
        r["fault"], "yes" if r["recovered"] else "NO", str(r["recovery_s"]),
        f"{r['panic_without_alert']}/{r['panic_events']} "
        f"(mqtt {r['mqtt_panic_without_alert']})", str(r["intrusion_alerted_share"]),
        str(r["duplicated"]), str(r["republished"]),
        json.dumps(r["dead_letters"]) if r["dead_letters"] else "0",
        json.dumps({k: round(v) for k, v in r["skipped"].items() if v}) or "0",
        json.dumps({k: round(v) for k, v in r["stage_errors"].items() if v}) or "0",
        str(r["signals"]["worker_unhealthy_s"])) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
                     for row in rows)
