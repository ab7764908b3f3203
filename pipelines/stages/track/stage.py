"""The track stage: ``detections`` → ``tracks``, one ByteTrack-style tracker per camera
(``registry.py``, ``tracker.py``), its state in the ``tracker-state`` table (ADR 0004).
Each camera's newest tracks also go to Redis (throttled) for the console's camera wall."""

from __future__ import annotations

from collections.abc import Sequence

from argus.inference.detector import COCO_CLASSES
from argus.stores.latest_tracks import LatestTracks
from argus.topology import Topology
from pipelines.stage import OneByOne, Record, StageContext
from pipelines.stages.track.registry import TrackerRegistry, TrackSettings
from pipelines.stages.track.tracker import TrackerConfig
from schemas.detections import Detections
from schemas.tracks import Tracks


def camera_configs(settings: TrackSettings, topology: Topology) -> dict[str, TrackerConfig]:
    """The tracker configs of the cameras with thresholds of their own (``tracking``)."""
    return {c.id: settings.tracker_config(COCO_CLASSES, c.tracking)
            for c in topology.cameras if c.tracking is not None and c.tracking.overrides()}


class Track(OneByOne[Detections, Tracks]):
    name = "track"
    inputs = ("detections",)
    output = "tracks"
    settings_class = TrackSettings
    tables = ("tracker-state",)
    settings: TrackSettings

    def __init__(self, registry: TrackerRegistry, settings: TrackSettings,
                 latest: LatestTracks | None = None) -> None:
        self.registry = registry
        self.settings = settings
        self.latest = latest

    @classmethod
    def build(cls, ctx: StageContext) -> Track | None:
        settings = TrackSettings()
        registry = TrackerRegistry(settings.tracker_config(COCO_CLASSES), COCO_CLASSES,
                                   store=ctx.table("tracker-state"),
                                   persist_every_s=settings.persist_every_s,
                                   camera_configs=camera_configs(settings, ctx.topology))
        return cls(registry, settings, LatestTracks(ctx.redis))

    def parse(self, record: Record) -> Detections:
        return Detections.model_validate_json(record.value or b"")

    async def handle_one(self, item: Detections) -> Sequence[Tracks]:
        result = self.registry.process(item)
        if result is not None and self.latest is not None:
            await self.latest.write(result)  # the camera wall's live tracks (throttled)
        return [] if result is None else [result]

    def key(self, out: Tracks) -> bytes:
        return out.camera_id.encode()
