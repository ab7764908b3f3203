"""The live feed: one Redis pub/sub subscription fanned out to every WebSocket/SSE client.

Each client gets a bounded queue; a client that falls ``queue_size`` changes behind is
dropped (``None`` in its queue) rather than slowing the others — it reconnects and gets
a fresh snapshot. The subscription reconnects with backoff if Redis goes away.

Redis pub/sub channels are shared by all databases of a server, so a change is passed on
only if this API's database holds that alert at that version or newer (``is_ours``):
another database's alerts (a second deployment or test session on the same server) never
show up in this feed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.exceptions import RedisError

from argus.backoff import Backoff
from argus.log import get_logger
from argus.stores import alerts as alert_sink
from schemas.alerts import Alert
from services.alert_api.metrics import FEED_DROPPED, FEED_FOREIGN

log = get_logger(__name__)

FeedQueue = asyncio.Queue[Alert | None]


async def is_ours(client: aioredis.Redis, alert: Alert) -> bool:
    """Whether ``client``'s database holds ``alert`` at its version or a newer one (the
    change is published inside the transaction that writes it, so it is there)."""
    stored = await client.hget(alert_sink.alert_key(alert.alert_id), "version")
    return stored is not None and int(stored) >= alert.version


class Feed:
    """Fan-out of the ``argus:alerts`` channel."""

    def __init__(self, client: aioredis.Redis, queue_size: int = 256) -> None:
        self._client = client
        self._queue_size = queue_size
        self._queues: set[FeedQueue] = set()
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    async def start(self, wait_s: float = 5.0) -> None:
        """Start listening; waits up to ``wait_s`` for the subscription to be confirmed
        (a Redis outage does not stop the API: the listener keeps retrying)."""
        self._task = asyncio.create_task(self._run(), name="alert-feed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.subscribed.wait(), wait_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for queue in self._queues:
            self._drop(queue)

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[FeedQueue]:
        """A queue of the changes from now on (``None``: the client was dropped)."""
        queue: FeedQueue = asyncio.Queue(maxsize=self._queue_size)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    def _drop(self, queue: FeedQueue) -> None:
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(None)

    def _fan_out(self, alert: Alert) -> None:
        for queue in list(self._queues):
            try:
                queue.put_nowait(alert)
            except asyncio.QueueFull:
                FEED_DROPPED.inc()
                log.warning("feed.client_dropped", extra={"queue_size": self._queue_size})
                self._queues.discard(queue)
                self._drop(queue)

    async def _run(self) -> None:
        backoff = Backoff(initial=0.5, cap=30.0)
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(alert_sink.CHANNEL)
                async for message in pubsub.listen():
                    if message["type"] == "subscribe":
                        self.subscribed.set()
                        if backoff.attempts:
                            log.warning("feed.redis_back", extra={"attempts": backoff.attempts})
                        backoff.reset()
                    elif message["type"] == "message":
                        try:
                            alert = Alert.model_validate_json(message["data"])
                        except ValidationError as exc:
                            log.warning("feed.bad_message", extra={"error": str(exc)})
                            continue
                        if await is_ours(self._client, alert):
                            self._fan_out(alert)
                        else:
                            FEED_FOREIGN.inc()
            except (RedisError, OSError) as exc:
                self.subscribed.clear()
                delay = backoff.next_delay()
                if backoff.attempts == 1:  # one line per outage, not per attempt
                    log.warning("feed.redis_lost", extra={"error": str(exc),
                                                          "retry_in_s": round(delay, 2)})
                await asyncio.sleep(delay)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
