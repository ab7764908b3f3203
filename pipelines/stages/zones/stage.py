"""The zones stage: ``detections`` → ``events.video`` (``zone_intrusion``), see
``intrusion.py``."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic_settings import SettingsConfigDict

from argus.topology import Camera, Topology
from pipelines.stage import (
    OneByOne,
    Record,
    Rejected,
    StageContext,
    StageSettings,
    counted,
)
from pipelines.stages.zones.intrusion import ZoneIntrusion
from schemas.detections import Detections
from schemas.events import VideoEvent


class ZonesSettings(StageSettings):
    """``ARGUS_ZONES_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="ARGUS_ZONES_", frozen=True, extra="ignore")

    cooldown_s: float = 10.0
    """At most one event per camera zone per cool-down (capture time)."""


class Zones(OneByOne[tuple[Detections, Camera], VideoEvent]):
    name = "zones"
    inputs = ("detections",)
    output = "events.video"
    settings_class = ZonesSettings

    def __init__(self, topology: Topology, settings: ZonesSettings) -> None:
        self.topology = topology
        self.settings = settings
        self.rule = ZoneIntrusion(settings.cooldown_s)

    @classmethod
    def build(cls, ctx: StageContext) -> Zones | None:
        settings = ZonesSettings()
        return cls(ctx.topology, settings)

    def parse(self, record: Record) -> tuple[Detections, Camera]:
        frame = Detections.model_validate_json(record.value or b"")
        camera = self.topology.camera(frame.camera_id)
        if camera is None:
            raise Rejected("unknown_camera", f"camera {frame.camera_id!r} not in topology")
        return frame, camera

    async def handle_one(self, item: tuple[Detections, Camera]) -> Sequence[VideoEvent]:
        return counted(self.rule(*item))

    def key(self, out: VideoEvent) -> bytes:
        return out.site_id.encode()
