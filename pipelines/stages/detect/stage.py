"""The detect stage: ``frames.raw`` → ``detections`` via Triton's ``detector`` model.

A frame is checked at the edge (headers schema, known camera, size) before it costs an
inference, and skipped when it is older than ``ARGUS_DETECT_MAX_AGE_S`` (the pipeline is
behind: a late detection is worth less than a current one, so the stage sheds load by
policy and counts it in ``argus_frames_skipped_total{reason="stale"}``). Frames of a
micro-batch go to Triton concurrently, where the dynamic batcher groups them across
cameras; a corrupt JPEG fails its own frame only (a ``corrupt_jpeg`` dead letter).

With ``ARGUS_DETECT_MOTION_GATE`` > 0 (off by default), a frame where nothing moved since
the camera's last detected frame is not detected: it carries that frame's detections
(``carried_from_seq``; :mod:`pipelines.stages.detect.motion`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from tritonclient.grpc import InferenceServerException

from argus.frames import check_frame
from argus.inference.detector import TritonDetector, detect_frames
from argus.inference.reid import ReidSchedule
from argus.log import get_logger
from argus.metrics import FRAME_AGE, FRAMES_CARRIED, FRAMES_SKIPPED, camera_label
from argus.settings import Settings
from argus.stores.frame_cache import FrameCache
from argus.topology import Topology
from pipelines.stage import Record, Rejected, Result, Skipped, Stage, StageContext, StageSettings
from pipelines.stages.detect.motion import GateConfig, MotionGate, Source, carried
from schemas.detections import Detections
from schemas.frames import FrameHeaders

log = get_logger(__name__)


class DetectSettings(StageSettings):
    """``ARGUS_DETECT_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="ARGUS_DETECT_", frozen=True, extra="ignore")

    batch: int = Field(default=16, ge=1, description="frames per micro-batch (sent "
                       "concurrently to Triton, whose batcher makes batches of 4 or 8 of "
                       "them; live, the window closes a batch long before it is full)")
    batch_window_s: float = 0.05
    pipeline_depth: int = Field(default=2, ge=1, description="micro-batches at Triton at "
                                "once (frames in flight: batch x depth)")
    reid: bool = Field(default=True, description="ask the detector for re-identification "
                       "embeddings on person boxes (the tracker's appearance cue)")
    reid_interval_s: float = Field(default=0.5, ge=0.0, description="embeddings for every "
                                   "person on one frame per camera per interval of capture "
                                   "time, in between only for people near another "
                                   "(0: every person on every frame); docs/tracking.md")
    max_age_s: float = Field(default=1.0, ge=0.0, description="skip frames older than this "
                             "when taken from Kafka (0: never; fast file replays)")
    motion_gate: float = Field(default=0.0, ge=0.0, le=1.0, description="share of a frame's "
                               "pixels (1/8-scale greyscale) that must have changed since the "
                               "camera's last detected frame for it to be detected; below it "
                               "the frame carries that frame's detections (0: off, every "
                               "frame is detected); docs/tracking.md")
    motion_refresh_s: float = Field(default=2.0, gt=0.0, description="with the motion gate, "
                                    "detect each camera for real at least this often "
                                    "(capture time), however still the scene")
    motion_pixel_threshold: int = Field(default=25, ge=0, le=255, description="grey levels "
                                        "a pixel must change by to count as changed")


@dataclass(frozen=True)
class Frame:
    meta: FrameHeaders
    jpeg: bytes


class Detect(Stage[Frame, Detections]):
    name = "detect"
    inputs = ("frames.raw",)
    output = "detections"
    settings_class = DetectSettings
    retry_on = (InferenceServerException,)
    settings: DetectSettings

    def __init__(self, settings: Settings, topology: Topology, frame_cache: FrameCache,
                 cached_cameras: frozenset[str], config: DetectSettings) -> None:
        self.app_settings = settings
        self.topology = topology
        self.frame_cache = frame_cache
        self.cached_cameras = cached_cameras
        self.settings = config
        self.detector = TritonDetector(settings.triton_grpc_url)
        self.reid = ReidSchedule(config.reid_interval_s)
        self.gate = MotionGate(GateConfig(config.motion_gate, config.motion_refresh_s,
                                          config.motion_pixel_threshold))

    @classmethod
    def build(cls, ctx: StageContext) -> Detect | None:
        config = DetectSettings()
        return cls(ctx.settings, ctx.topology, ctx.frame_cache, ctx.cached_cameras, config)

    def parse(self, record: Record) -> Frame:
        meta = check_frame(record.key, record.value, record.headers, self.topology,
                           self.app_settings.max_frame_bytes)
        age = time.time() - meta.capture_ts
        label = camera_label(meta.camera_id, self.app_settings.metrics_per_camera)
        FRAME_AGE.labels(label).set(age)
        if self.settings.max_age_s and age > self.settings.max_age_s:
            FRAMES_SKIPPED.labels(label, "stale").inc()
            raise Skipped("stale")
        assert record.value is not None  # check_frame refuses empty frames
        return Frame(meta, record.value)

    async def handle(self, batch: Sequence[Frame]) -> Sequence[Result[Detections]]:
        frames = [(f.meta, f.jpeg) for f in batch]
        # decided before any await: batches in flight at once plan in the order they came
        sources, thumbs = self.gate.plan(frames)
        await self.frame_cache.put_many([(f.meta.camera_id, f.meta.seq, f.jpeg) for f in batch
                                         if f.meta.camera_id in self.cached_cameras])
        results: list[Detections | Rejected | None] = [None] * len(batch)
        await self._detect(frames, [i for i, s in enumerate(sources) if s is None], results)
        again = [i for i, source in enumerate(sources)
                 if source is not None and not self._carry(frames[i][0], source, i, results)]
        # a frame of the batch whose detections it would carry failed on its own: detect it
        await self._detect(frames, again, results)
        self.gate.commit(thumbs, [r if isinstance(r, Detections) and r.carried_from_seq is None
                                  else None for r in results])
        out: list[Result[Detections]] = []
        for result in results:
            assert result is not None  # every frame was detected or carried
            out.append([result] if isinstance(result, Detections) else result)
            if isinstance(result, Detections) and result.carried_from_seq is not None:
                # counted once the whole batch succeeded: a retried batch counts once
                FRAMES_CARRIED.labels(camera_label(
                    result.camera_id, self.app_settings.metrics_per_camera)).inc()
        return out

    async def _detect(self, frames: list[tuple[FrameHeaders, bytes]], indices: list[int],
                      results: list[Detections | Rejected | None]) -> None:
        """Detect ``frames[indices]`` (in one concurrent burst) into ``results``."""
        if not indices:
            return
        reid: list[bool | str] = [
            (True if self.reid.due(frames[i][0].camera_id, frames[i][0].capture_ts)
             else "near") if self.settings.reid else False for i in indices]
        detected = await detect_frames(self.detector, [frames[i] for i in indices], reid)
        for i, result in zip(indices, detected, strict=True):
            results[i] = result

    def _carry(self, meta: FrameHeaders, source: Source, index: int,
               results: list[Detections | Rejected | None]) -> bool:
        """Give a still frame its source's detections; False when the source failed."""
        detections = results[source] if isinstance(source, int) else source
        if not isinstance(detections, Detections):
            return False
        results[index] = carried(detections, meta.seq, meta.capture_ts, meta.width,
                                 meta.height)
        return True

    def key(self, out: Detections) -> bytes:
        return out.camera_id.encode()

    async def started(self) -> None:
        if not await self.detector.ready():
            log.warning("triton detector not ready",
                        extra={"url": self.app_settings.triton_grpc_url})
