"""Each camera's newest tracks on the real Redis (argus/stores/latest_tracks.py): what the
track stage writes for the console's camera wall, throttled per camera, never raising."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from argus.metrics import STAGE_ERRORS
from argus.settings import Settings
from argus.stores.latest_tracks import LatestTracks, read_latest, tracks_key
from schemas.detections import Box
from schemas.tracks import Track, Tracks, Velocity

pytestmark = pytest.mark.integration


def tracks(camera: str, seq: int, *ids: int) -> Tracks:
    return Tracks(camera_id=camera, seq=seq, capture_ts=100.0 + seq, width=640, height=480,
                  tracks=[Track(track_id=i, class_id=0, class_name="person",
                                box=Box(x1=0.1, y1=0.1, x2=0.2, y2=0.3),
                                velocity=Velocity(vx=0, vy=0), age=3, state="confirmed",
                                first_seen=100.0, last_seen=100.0 + seq, score=0.8)
                          for i in ids])


async def _throttled(settings: Settings) -> None:
    client = aioredis.Redis.from_url(settings.redis_url)
    now = [1000.0]
    latest = LatestTracks(client, ttl_s=5.0, every_s=0.5, clock=lambda: now[0])
    cam, other = f"cam-lt-{uuid.uuid4().hex[:6]}", f"cam-lt-{uuid.uuid4().hex[:6]}"
    try:
        assert await read_latest(client, cam) is None
        assert await latest.write(tracks(cam, 1, 4))
        assert 0 < await client.pttl(tracks_key(cam)) <= 5000
        now[0] += 0.2  # within every_s: skipped (the pipeline's cost stays flat)
        assert not await latest.write(tracks(cam, 2, 4, 5))
        assert await latest.write(tracks(other, 2, 9))  # another camera has its own clock
        stored = await read_latest(client, cam)
        assert stored is not None and (stored.seq, [t.id for t in stored.tracks]) == (1, [4])
        now[0] += 0.4
        assert await latest.write(tracks(cam, 3, 4, 5))
        stored = await read_latest(client, cam)
        assert stored is not None and (stored.seq, [t.id for t in stored.tracks]) == (3, [4, 5])
        await client.set(tracks_key(cam), b"not json")
        assert await read_latest(client, cam) is None
    finally:
        await client.delete(tracks_key(cam), tracks_key(other))
        await client.aclose()


async def _unreachable() -> bool:
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        return await LatestTracks(client).write(tracks("cam-lt", 1, 1))
    finally:
        await client.aclose()


def test_latest_tracks_are_written_throttled_and_read_back(stack: Settings) -> None:
    asyncio.run(_throttled(stack))


def test_a_redis_outage_does_not_raise_into_the_track_stage() -> None:
    errors = STAGE_ERRORS.labels("track", "latest_tracks")
    before = errors._value.get()
    assert asyncio.run(_unreachable()) is False
    assert errors._value.get() == before + 1
