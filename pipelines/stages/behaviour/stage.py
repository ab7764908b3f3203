"""The behaviour stage: ``tracks`` → ``events.video`` (lines, loitering, running, crowd,
wrong way, abandoned objects, stopped vehicles, and person down with pose on Triton).

The work on one message is :class:`~pipelines.stages.behaviour.processor.BehaviourStage`;
each behaviour is one module of this folder, registered in ``engine.py``. State per
camera lives in the ``behaviour-state`` table (docs/behaviours.md, "State and restarts").
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic_settings import SettingsConfigDict

from argus.inference.pose import TritonPose
from argus.topology import Camera
from pipelines.stage import (
    OneByOne,
    Record,
    Rejected,
    StageContext,
    StageSettings,
    counted,
)
from pipelines.stages.behaviour.processor import BehaviourStage, UnknownCamera
from schemas.events import VideoEvent
from schemas.tracks import Tracks


class BehaviourSettings(StageSettings):
    """``ARGUS_BEHAVIOUR_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="ARGUS_BEHAVIOUR_", frozen=True,
                                      extra="ignore")


class Behaviour(OneByOne[tuple[Tracks, Camera], VideoEvent]):
    name = "behaviour"
    inputs = ("tracks",)
    output = "events.video"
    settings_class = BehaviourSettings
    tables = ("behaviour-state",)

    def __init__(self, work: BehaviourStage, settings: BehaviourSettings) -> None:
        self.work = work
        self.settings = settings

    @classmethod
    def build(cls, ctx: StageContext) -> Behaviour | None:
        settings = BehaviourSettings()
        # Person-down confirmation: MoveNet on Triton, only if some camera has `fall:` set.
        pose = TritonPose(ctx.settings.triton_grpc_url) if any(
            c.fall is not None and c.fall.enabled for c in ctx.topology.cameras) else None
        work = BehaviourStage(ctx.topology, ctx.frame_cache, store=ctx.table("behaviour-state"),
                              per_camera=ctx.settings.metrics_per_camera,
                              pose=pose.keypoints if pose else None)
        return cls(work, settings)

    def parse(self, record: Record) -> tuple[Tracks, Camera]:
        try:
            return self.work.parse(record.value or b"")
        except UnknownCamera as exc:
            raise Rejected("unknown_camera", str(exc)) from None

    async def handle_one(self, item: tuple[Tracks, Camera]) -> Sequence[VideoEvent]:
        found = self.work.rules(*item)
        found += await self.work.falls(*item)
        return counted(await self.work.snapshots(found))

    def key(self, out: VideoEvent) -> bytes:
        return out.site_id.encode()
