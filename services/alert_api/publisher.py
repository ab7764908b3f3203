"""Operator actions to the ``alerts`` Kafka topic (keyed by alert id), with an outbox.

Every change is marked unpublished in Redis in the same transaction that applies it;
a send marks it published. A background loop retries what is still unpublished after a
grace period — the API's own failed sends, and the worker's, if it crashed between its
Redis write and its send — and (re)connects the producer when Kafka was down.
Consumers de-duplicate by (alert id, version).
"""

from __future__ import annotations

import asyncio
import contextlib

import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from argus.log import get_logger
from argus.settings import Settings
from argus.stores import alert_outbox
from schemas.alerts import Alert
from services.alert_api.metrics import CHANGES_PUBLISHED

log = get_logger(__name__)

SEND_TIMEOUT_S = 10.0


class ChangePublisher:
    """Sends alert changes to Kafka and drains the Redis outbox."""

    def __init__(self, settings: Settings, client: aioredis.Redis, retry_s: float = 5.0
                 ) -> None:
        self._settings = settings
        self._client = client
        self._retry_s = retry_s
        self._topic = settings.topic("alerts")
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._connect()
        self._task = asyncio.create_task(self._drain_loop(), name="alert-outbox")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._producer is not None:
            with contextlib.suppress(KafkaError, OSError):
                await self._producer.stop()

    @property
    def connected(self) -> bool:
        return self._producer is not None

    async def _connect(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self._settings.kafka_bootstrap,
                                    client_id="argus-alert-api", acks="all",
                                    enable_idempotence=True, request_timeout_ms=10_000)
        try:
            await asyncio.wait_for(producer.start(), SEND_TIMEOUT_S)
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("alert_api.kafka_unavailable", extra={"error": repr(exc)})
            with contextlib.suppress(Exception):
                await producer.stop()
            return
        self._producer = producer

    async def _send(self, key: bytes, value: bytes) -> None:
        assert self._producer is not None
        await asyncio.wait_for(self._producer.send_and_wait(self._topic, value, key=key),
                               SEND_TIMEOUT_S)

    async def publish(self, alert: Alert) -> bool:
        """Send one change; False (and it stays in the outbox) if Kafka is unavailable."""
        if self._producer is None:
            CHANGES_PUBLISHED.labels("deferred").inc()
            return False
        try:
            await alert_outbox.publish_change(self._client, alert, self._send)
        except (KafkaError, OSError, TimeoutError) as exc:
            CHANGES_PUBLISHED.labels("failed").inc()
            log.warning("alert_api.publish_failed", extra={"alert_id": alert.alert_id,
                                                           "error": repr(exc)})
            return False
        CHANGES_PUBLISHED.labels("ok").inc()
        return True

    async def drain(self, older_than_s: float = 10.0) -> int:
        """Send what is still unpublished ``older_than_s`` after its change; the count sent."""
        if self._producer is None:
            await self._connect()
            if self._producer is None:
                return 0
        sent = 0
        for alert in await alert_outbox.unpublished(self._client, older_than_s=older_than_s):
            sent += await self.publish(alert)
        return sent

    async def _drain_loop(self) -> None:
        while True:
            await asyncio.sleep(self._retry_s)
            try:
                sent = await self.drain()
            except (RedisError, OSError) as exc:
                log.warning("alert_api.outbox_failed", extra={"error": repr(exc)})
                continue
            if sent:
                log.info("alert_api.outbox_sent", extra={"changes": sent})
