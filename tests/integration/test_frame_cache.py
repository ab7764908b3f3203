"""The frame cache and snapshots on the real Redis (argus/stores/frame_cache.py)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from argus.settings import Settings
from argus.stores.frame_cache import FrameCache, frame_key, snapshot_key

pytestmark = pytest.mark.integration


async def _roundtrip(settings: Settings) -> None:
    client = aioredis.Redis.from_url(settings.redis_url)
    cache = FrameCache(client, ttl_s=5.0, snapshot_ttl_s=120)
    try:
        assert await cache.put_many([("cam-fc", 1, b"\xff\xd8one\xff\xd9"),
                                     ("cam-fc", 2, b"\xff\xd8two\xff\xd9")])
        assert await cache.get("cam-fc", 2) == b"\xff\xd8two\xff\xd9"
        assert 0 < await client.pttl(frame_key("cam-fc", 1)) <= 5000
        # keeping a frame copies it under the snapshot key with the snapshot TTL
        assert await cache.keep("cam-fc", 1, "cam-fc:fall:1") == "cam-fc:fall:1"
        assert await cache.snapshot("cam-fc:fall:1") == b"\xff\xd8one\xff\xd9"
        assert 60 < await client.ttl(snapshot_key("cam-fc:fall:1")) <= 120
        assert await cache.keep("cam-fc", 1, "cam-fc:fall:1") == "cam-fc:fall:1"  # idempotent
        # an expired (or never cached) frame cannot be kept
        assert await cache.keep("cam-fc", 99, "cam-fc:fall:99") is None
        assert await cache.snapshot("cam-fc:fall:99") is None
        assert await cache.store("cam-fc:face:7", b"jpeg") == "cam-fc:face:7"
        assert await cache.snapshot("cam-fc:face:7") == b"jpeg"
        # ttl 0: the cache is off and nothing is written
        off = FrameCache(client, ttl_s=0, snapshot_ttl_s=120)
        assert not await off.put_many([("cam-fc", 3, b"x")])
        assert await client.exists(frame_key("cam-fc", 3)) == 0
    finally:
        await client.aclose()


async def _unreachable() -> bool:
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        return await FrameCache(client, ttl_s=5.0, snapshot_ttl_s=60).put_many(
            [("cam-fc", 1, b"x")])
    finally:
        await client.aclose()


def test_frames_are_cached_and_kept_as_snapshots(stack: Settings) -> None:
    asyncio.run(_roundtrip(stack))


def test_a_redis_outage_does_not_raise_into_the_detect_stage() -> None:
    assert asyncio.run(_unreachable()) is False
