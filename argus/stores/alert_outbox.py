"""The alerts' Redis → Kafka outbox: every change written by ``argus.stores.alerts`` adds its
alert id to ``argus:alerts:unpublished`` in the same transaction; :func:`publish_change`
sends the change to the ``alerts`` topic and then :func:`mark_published` records it;
:func:`unpublished` finds what a crash or a Kafka outage left unsent (the alert API's
outbox loop re-sends it). Delivery is at-least-once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from argus.stores.alerts import UNPUBLISHED, _read, _Stored, _text, _transaction, alert_key
from schemas.alerts import Alert


def change_message(alert: Alert) -> tuple[bytes, bytes]:
    """The ``alerts`` Kafka record of a change: key = alert id, value = the alert's JSON."""
    return alert.alert_id.encode(), alert.to_bytes()


def _forget(pipe: Pipeline, alert_id: str) -> None:
    pipe.zrem(UNPUBLISHED, alert_id)


async def mark_published(client: aioredis.Redis, alert_id: str, version: int) -> None:
    """Record that ``version`` of the alert is on Kafka (drops it from ``UNPUBLISHED``
    once the latest version is)."""
    def decide(stored: _Stored) -> Callable[[Pipeline], None] | None:
        if stored.alert is None:
            return lambda pipe: _forget(pipe, alert_id)  # expired: nothing to send
        if version <= stored.published_version:
            return None

        def writes(pipe: Pipeline) -> None:
            pipe.hset(alert_key(alert_id), "published_version", version)
            if version >= stored.alert.version:  # type: ignore[union-attr]
                pipe.zrem(UNPUBLISHED, alert_id)
        return writes

    await _transaction(client, alert_id, decide, "alert_mark_published")


async def publish_change(client: aioredis.Redis, alert: Alert,
                         send: Callable[[bytes, bytes], Awaitable[Any]]) -> None:
    """Send one change to Kafka with ``send(key, value)`` (the worker's Faust topic or the
    API's producer), then ``mark_published``. Shared by the worker and the API."""
    key, value = change_message(alert)
    await send(key, value)
    await mark_published(client, alert.alert_id, alert.version)


async def unpublished(client: aioredis.Redis, limit: int = 100, older_than_s: float = 10.0
                      ) -> list[Alert]:
    """Alerts whose latest version has not reached Kafka ``older_than_s`` after the change
    (a crash or a Kafka outage between the Redis write and the send; the grace period
    leaves in-flight sends alone). Ids of expired or already published alerts are dropped.
    """
    raw = await client.zrangebyscore(UNPUBLISHED, "-inf", time.time() - older_than_s,
                                     start=0, num=limit)
    pending: list[Alert] = []
    for alert_id in (_text(i) for i in raw):
        if alert_id is None:
            continue
        stored = await _read(client, alert_id)
        if stored.alert is None or stored.published_version >= stored.alert.version:
            await client.zrem(UNPUBLISHED, alert_id)
        else:
            pending.append(stored.alert)
    return pending
