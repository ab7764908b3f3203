"""The counting stage: ``tracks`` → ``counts`` (people and vehicles in and out of every
camera zone and across every line, occupancy, per minute of capture time).

The logic is ``counter.py``; this module keeps one counter per camera, in memory and in
the ``counting-state`` table (JSON-safe, restored after a restart or a rebalance; written
when a window closes or the counts change, else every ``state_every_s``), writes each
closed window to Redis (``argus.stores.counts``) before it is sent, and exports
``argus_zone_occupancy`` and ``argus_counted_total``. docs/adding-a-stage.md walks
through it.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from redis.exceptions import RedisError

from argus.metrics import ALL_CAMERAS, COUNTED, STAGE_SKIPPED, ZONE_OCCUPANCY, camera_label
from argus.stores import counts as store
from argus.topology import Camera, Topology
from pipelines.stage import OneByOne, Record, Rejected, Skipped, StageContext, StageSettings
from pipelines.stages.counting.counter import (
    DEFAULT_GROUPS,
    CameraCounter,
    FrameResult,
    Saved,
    save_due,
)
from schemas.counts import Counts
from schemas.tracks import Tracks


class CountingSettings(StageSettings):
    """``ARGUS_COUNTING_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="ARGUS_COUNTING_", frozen=True,
                                      extra="ignore")

    window_s: float = Field(default=60.0, gt=0, le=86400)
    """Length of a counting window (capture time); one ``counts`` message per area each."""
    groups: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_GROUPS))
    """Class groups counted, COCO class names per group (JSON in the environment)."""
    forget_s: float = Field(default=10.0, gt=0)
    """A track not seen for this long is forgotten (and, inside a zone with
    ``appearances``, counted out)."""
    zone_margin: float = Field(default=0.01, ge=0, le=0.2)
    """A foot point closer than this to a zone's edge does not change in/out (jitter)."""
    appearances: bool = True
    """Tracks that appear inside a zone count as entries, and tracks lost inside it as
    exits (zones reaching the image border); false: only moves seen across the edge."""
    redis_ttl_s: int = Field(default=7 * 24 * 3600, gt=0)
    """How long each window's counts stay in Redis (the latest per area stays)."""
    state_every_s: float = Field(default=5.0, ge=0, le=3600)
    """Capture time between writes of a camera's state to the ``counting-state`` table
    (each a changelog message) while only track positions change; a closed window or
    changed counts (entries, exits, max occupancy) are written at once; 0: every frame.
    A crash loses at most this many seconds of frames not replayed after the restart:
    their track membership (which tracks were where, re-learnt from the next frames; a
    track first seen in them that crosses a line or zone edge just after the restart may
    go uncounted) and their share of the window's ``frames``. Keep it below
    ``forget_s``, or tracks may be counted out and in again after a restart."""


class Counting(OneByOne[tuple[Tracks, Camera], Counts]):
    name = "counting"
    inputs = ("tracks",)
    output = "counts"
    settings_class = CountingSettings
    tables = ("counting-state",)
    retry_on = (RedisError,)
    settings: CountingSettings

    def __init__(self, topology: Topology, redis: aioredis.Redis,
                 state: MutableMapping[str, Any], settings: CountingSettings,
                 per_camera: bool = True) -> None:
        self.topology = topology
        self.redis = redis
        self.state = state
        self.settings = settings
        self.per_camera = per_camera
        self.counters: dict[str, CameraCounter] = {}
        self.saved: dict[str, Saved] = {}
        """camera → its state in the table as this worker last wrote or read it."""
        self.occupancy: dict[tuple[str, str, str], int] = {}
        """(camera, zone, group) → occupancy now, for the summed gauge without per-camera
        metrics."""

    @classmethod
    def build(cls, ctx: StageContext) -> Counting | None:
        settings = CountingSettings()
        return cls(ctx.topology, ctx.redis, ctx.table("counting-state"), settings,
                   per_camera=ctx.settings.metrics_per_camera)

    def parse(self, record: Record) -> tuple[Tracks, Camera]:
        frame = Tracks.model_validate_json(record.value or b"")
        camera = self.topology.camera(frame.camera_id)
        if camera is None:
            raise Rejected("unknown_camera", f"camera {frame.camera_id!r} not in topology")
        if not camera.zones and not camera.lines:
            raise Skipped("no_areas")
        return frame, camera

    async def handle_one(self, item: tuple[Tracks, Camera]) -> Sequence[Counts]:
        frame, camera = item
        counter = self.counter(camera)
        before = counter.to_dict()
        try:
            result = counter.update(frame)
            if result is not None:
                await store.write(self.redis, result.closed, self.settings.redis_ttl_s)
        except BaseException:
            counter.load(before)  # a retry (Redis down) starts from the same state
            raise
        if result is None:
            STAGE_SKIPPED.labels(self.name, "stale").inc()
            return []
        now = Saved.of(counter)
        if save_due(self.saved.get(camera.id), now, bool(result.closed),
                    self.settings.state_every_s):
            self.state[camera.id] = counter.to_dict()
            self.saved[camera.id] = now
        self.export(camera.id, result)
        return result.closed

    def key(self, out: Counts) -> bytes:
        return out.site_id.encode()

    def counter(self, camera: Camera) -> CameraCounter:
        """The camera's counter: the one in memory (which may be ahead of the table, see
        ``state_every_s``) unless the table changed since this worker last wrote or read
        it (another worker counted this camera since: a rebalance)."""
        stored = self.state.get(camera.id)
        counter = self.counters.get(camera.id)
        saved = self.saved.get(camera.id)
        if counter is not None and (stored is None or (
                saved is not None and stored.get("last_ts") == saved.last_ts)):
            return counter
        s = self.settings
        counter = CameraCounter(camera, camera.site, s.groups, window_s=s.window_s,
                                forget_s=s.forget_s, zone_margin=s.zone_margin,
                                appearances=s.appearances)
        if stored:
            counter.load(stored)
            self.saved[camera.id] = Saved.of(counter)  # what the table holds
        self.counters[camera.id] = counter
        return counter

    def export(self, camera_id: str, result: FrameResult) -> None:
        """Prometheus: occupancy on every frame, a count per track in or out."""
        label = camera_label(camera_id, self.per_camera)
        summed = label == ALL_CAMERAS
        for crossing in result.crossings:
            COUNTED.labels(label, ALL_CAMERAS if summed else crossing.area, crossing.group,
                           crossing.direction).inc()
        for zone, groups in result.occupancy.items():
            for group, n in groups.items():
                if not summed:
                    ZONE_OCCUPANCY.labels(label, zone, group).set(n)
                    continue
                self.occupancy[(camera_id, zone, group)] = n
                ZONE_OCCUPANCY.labels(ALL_CAMERAS, ALL_CAMERAS, group).set(
                    sum(v for (_, _, g), v in self.occupancy.items() if g == group))
