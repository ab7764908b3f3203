"""People and vehicle counts in Redis (written by the counting stage)::

    argus:counts:latest:{site}                        hash: "{camera}/{area}" -> the latest
                                                      closed window's Counts JSON
    argus:counts:{site}:{camera}:{area}:{window}      one window's Counts JSON (window =
                                                      its start, Unix seconds), with a TTL

Writes are idempotent (a replayed window writes the same bytes under the same keys) and
one transaction per frame.

>>> latest_key("depot"), window_key("depot", "cam-1", "door", 1767225600.0)
('argus:counts:latest:depot', 'argus:counts:depot:cam-1:door:1767225600')
"""

from __future__ import annotations

from collections.abc import Sequence

import redis
import redis.asyncio as aioredis

from argus.metrics import redis_command
from schemas.counts import Counts

PREFIX = "argus:counts:"


def latest_key(site_id: str) -> str:
    return f"{PREFIX}latest:{site_id}"


def window_key(site_id: str, camera_id: str, area_id: str, window_start: float) -> str:
    return f"{PREFIX}{site_id}:{camera_id}:{area_id}:{int(window_start)}"


async def write(client: aioredis.Redis, counts: Sequence[Counts], ttl_s: int) -> None:
    """Keep ``counts`` (closed windows): each window under its own key for ``ttl_s``, and
    as the latest of its area."""
    if not counts:
        return
    pipe = client.pipeline(transaction=True)
    for item in counts:
        value = item.model_dump_json()
        pipe.set(window_key(item.site_id, item.camera_id, item.area_id, item.window_start),
                 value, ex=ttl_s)
        pipe.hset(latest_key(item.site_id), f"{item.camera_id}/{item.area_id}", value)
    with redis_command("counts_write"):
        await pipe.execute()


def latest(client: redis.Redis, site_id: str) -> dict[str, Counts]:
    """The latest closed window of every area of a site, by ``camera/area``."""
    raw = client.hgetall(latest_key(site_id))
    return {(k.decode() if isinstance(k, bytes) else str(k)): Counts.model_validate_json(v)
            for k, v in sorted(raw.items())}
