"""The anomaly stages, one per method (``ARGUS_ANOMALY_METHOD``, docs/anomaly.md):

* ``anomaly`` (``flow``, the default): ``frames.raw`` → Triton ``anomaly`` →
  ``events.video`` (learned motion anomaly per camera). The work is
  :class:`~.agent.AnomalyAgent`. Cameras without a trained model cost one Triton question
  per ``ARGUS_ANOMALY_RETRY_S``.
* ``anomaly_objects`` (``objects``): ``tracks`` → ``events.video``, tracked objects scored
  in process by the camera's object model (:class:`~.objects.ObjectAnomalyAgent`).

Both read ``AnomalySettings``; a stage whose method ``ARGUS_ANOMALY_METHOD`` does not name
builds to nothing. ``flow,objects`` builds both: each scores only the cameras with a model
of its kind (an ONNX file in Triton's folder, a JSON file in the object models' folder), so a
camera is scored by whichever model it has (both, if it has both)."""

from __future__ import annotations

from collections.abc import Sequence

from argus.settings import Settings
from argus.topology import Camera, Topology
from pipelines.stage import OneByOne, Record, Rejected, StageContext, counted
from pipelines.stages.anomaly.agent import AnomalyAgent, AnomalySettings
from pipelines.stages.anomaly.objects import ObjectAnomalyAgent
from schemas.events import VideoEvent
from schemas.tracks import Tracks


class Anomaly(OneByOne[Record, VideoEvent]):
    name = "anomaly"
    inputs = ("frames.raw",)
    output = "events.video"
    settings_class = AnomalySettings
    settings: AnomalySettings

    def __init__(self, agent: AnomalyAgent) -> None:
        self.agent = agent
        self.settings = agent.config

    @classmethod
    def build(cls, ctx: StageContext) -> Anomaly | None:
        config = AnomalySettings()
        if "flow" not in config.methods:
            return None
        return cls(AnomalyAgent(ctx.settings, ctx.topology, ctx.frame_cache, config))

    def parse(self, record: Record) -> Record:
        return record  # bad frames are the detect stage's to dead-letter

    async def handle_one(self, item: Record) -> Sequence[VideoEvent]:
        return counted(await self.agent.handle(item.key, item.value, item.headers))

    def key(self, out: VideoEvent) -> bytes:
        return out.site_id.encode()


class AnomalyObjects(OneByOne[tuple[Tracks, Camera], VideoEvent]):
    name = "anomaly_objects"
    inputs = ("tracks",)
    output = "events.video"
    settings_class = AnomalySettings
    settings: AnomalySettings

    def __init__(self, agent: ObjectAnomalyAgent, topology: Topology) -> None:
        self.agent = agent
        self.topology = topology
        self.settings = agent.config

    @classmethod
    def build(cls, ctx: StageContext) -> AnomalyObjects | None:
        config = AnomalySettings()
        if "objects" not in config.methods:
            return None
        return cls(ObjectAnomalyAgent(ctx.settings, config), ctx.topology)

    @classmethod
    def local(cls, settings: Settings, topology: Topology,
              config: AnomalySettings) -> AnomalyObjects:
        """The stage without a worker (tests, tools)."""
        return cls(ObjectAnomalyAgent(settings, config), topology)

    def parse(self, record: Record) -> tuple[Tracks, Camera]:
        message = Tracks.model_validate_json(record.value or b"")
        camera = self.topology.camera(message.camera_id)
        if camera is None:
            raise Rejected("unknown_camera", f"camera {message.camera_id!r} not in topology")
        return message, camera

    async def handle_one(self, item: tuple[Tracks, Camera]) -> Sequence[VideoEvent]:
        message, camera = item
        return counted(self.agent.handle(camera, message))

    def key(self, out: VideoEvent) -> bytes:
        return out.site_id.encode()
