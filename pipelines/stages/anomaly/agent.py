"""The anomaly stage: ``frames.raw`` → Triton ``anomaly`` → ``events.video`` (kind ``anomaly``).

For each frame of a camera that has a trained model (``argus train anomaly``; the model
lives next to Triton, see docs/anomaly.md), the stage sends the camera's previous and
current JPEG to Triton, which answers the frame's motion anomaly score, the model's
threshold and smoothing window. The stage smooths the scores causally (a trailing mean,
exactly what the evaluation measured) and emits one ``anomaly`` event when the smoothed
score stays above ``threshold x ARGUS_ANOMALY_THRESHOLD_SCALE`` for
``ARGUS_ANOMALY_MIN_FRAMES`` frames in a row, at most once per ``ARGUS_ANOMALY_COOLDOWN_S``
of capture time per camera. The event's box is the most unusual grid cell; its zone is the
camera zone holding that cell's centre (``*`` if none); the frame is kept as its snapshot
when a frame cache is given.

Cameras without a model: Triton answers ``no_model``; the stage then leaves the camera
alone for ``ARGUS_ANOMALY_RETRY_S`` and asks again (a model trained meanwhile is picked up
without a restart). Frames more than ``ARGUS_ANOMALY_MAX_GAP_S`` apart (or out of order)
restart the camera's pair and smoothing. Bad frames are the detect stage's to dead-letter;
this stage skips them. Per-camera state is in memory: after a restart or rebalance a camera
needs ``window`` frames to warm up again, which only delays an event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from prometheus_client import Gauge
from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict
from tritonclient.grpc import InferenceServerException
from tritonclient.grpc.aio import InferInput

from argus.frames import check_frame
from argus.geometry import point_in_polygon
from argus.inference.triton import Rejected, TritonModel
from argus.log import get_logger
from argus.metrics import STAGE_ERRORS, camera_label
from argus.settings import Settings
from argus.stores.frame_cache import FrameCache
from argus.topology import Camera, Topology
from pipelines.stage import StageSettings
from pipelines.stages.anomaly.features import ScoreSmoother
from schemas.detections import Box
from schemas.events import VideoEvent

log = get_logger(__name__)

STAGE = "anomaly"
WHOLE_VIEW = "*"
ANOMALY_SCORE = Gauge("argus_anomaly_score_ratio",
                      "Smoothed motion anomaly score / threshold, per camera", ["camera"])


METHODS = ("flow", "objects")


class AnomalySettings(StageSettings):
    """Stage settings (``ARGUS_ANOMALY_<NAME>``)."""

    model_config = SettingsConfigDict(env_prefix="ARGUS_ANOMALY_", frozen=True, extra="ignore")

    min_frames: int = Field(default=3, ge=1, description="smoothed score above for N frames")
    cooldown_s: float = Field(default=30.0, ge=0.0, description="per camera, capture time")
    threshold_scale: float = Field(default=1.0, gt=0.0, description="x the model threshold")
    max_gap_s: float = Field(default=2.0, gt=0.0, description="longer gaps restart the pair")
    retry_s: float = Field(default=60.0, ge=0.0, description="re-ask about untrained cameras")
    method: str = Field(
        default="flow", description="flow: frame motion on frames.raw via Triton; objects: "
        "tracked objects' attributes on tracks (pipelines/stages/anomaly/objects.py); "
        "flow,objects: both stages, each scoring the cameras that have a model of its kind")
    objects_dir: Path | None = Field(default=None, description="objects: folder of "
                                     "<camera>.json models (default <models dir>/anomaly)")
    reload_s: float = Field(default=5.0, ge=0.0, description="objects: model file checks")

    @field_validator("method")
    @classmethod
    def _known_methods(cls, value: str) -> str:
        names = [m.strip() for m in value.split(",") if m.strip()]
        unknown = sorted(set(names) - set(METHODS))
        if unknown or not names:
            raise ValueError(f"unknown anomaly method(s) {unknown or value!r}: use flow, "
                             "objects or flow,objects")
        return ",".join(m for m in METHODS if m in names)

    @property
    def methods(self) -> frozenset[str]:
        """The methods the worker runs (``ARGUS_ANOMALY_METHOD``, comma-separated)."""
        return frozenset(self.method.split(","))


class NoModel(Exception):
    """Triton has no anomaly model for the camera (or no ``anomaly`` model at all)."""


@dataclass(frozen=True)
class AnomalyResult:
    """Triton's answer for one pair of frames."""

    score: float
    threshold: float
    window: int
    rows: int
    cols: int
    cells: np.ndarray  # [rows * cols]
    ms: float


class TritonAnomaly(TritonModel):
    """Client of the Triton ``anomaly`` model."""

    model = "anomaly"

    async def infer(self, prev: bytes, jpeg: bytes, camera_id: str) -> AnomalyResult:
        """Score the motion from ``prev`` to ``jpeg``; raises ``NoModel``, ``Rejected``
        (corrupt JPEG) or ``InferenceServerException``."""
        inputs = []
        for name, data in (("PREV", prev), ("IMAGE", jpeg), ("CAMERA", camera_id.encode())):
            item = InferInput(name, [1, 1], "BYTES")
            item.set_data_from_numpy(np.array([[data]], dtype=np.object_))
            inputs.append(item)
        try:
            result, ms = await self.call(
                inputs, ("SCORE", "THRESHOLD", "WINDOW", "GRID", "CELL_SCORES"))
        except InferenceServerException as exc:
            text = str(exc)
            if "no_model" in text or "unknown model" in text or "not found" in text:
                raise NoModel(text) from None
            raise
        rows, cols = (int(v) for v in result.as_numpy("GRID")[0])
        return AnomalyResult(
            score=float(result.as_numpy("SCORE")[0][0]),
            threshold=float(result.as_numpy("THRESHOLD")[0][0]),
            window=int(result.as_numpy("WINDOW")[0][0]), rows=rows, cols=cols,
            cells=np.asarray(result.as_numpy("CELL_SCORES")[0][: rows * cols], np.float32),
            ms=ms)


class AnomalyTrigger:
    """Decides when a camera's smoothed score makes an event (pure).

    >>> t = AnomalyTrigger(min_frames=2, cooldown_s=10.0)
    >>> [t.update(s, 1.0, ts) for s, ts in [(2, 0), (2, 1), (2, 2), (0, 3), (2, 12), (2, 13)]]
    [False, True, False, False, False, True]
    """

    def __init__(self, min_frames: int, cooldown_s: float) -> None:
        self.min_frames = min_frames
        self.cooldown_s = cooldown_s
        self.above = 0
        self.since_ts: float | None = None
        self.last_fired_ts: float | None = None

    def update(self, smoothed: float, threshold: float, ts: float) -> bool:
        """Add one frame; True when this frame fires an event."""
        if smoothed <= threshold:
            self.above, self.since_ts = 0, None
            return False
        self.above += 1
        if self.since_ts is None:
            self.since_ts = ts
        if self.above < self.min_frames:
            return False
        if self.last_fired_ts is not None and ts - self.last_fired_ts < self.cooldown_s:
            return False
        self.last_fired_ts = ts
        return True

    def reset(self) -> None:
        """Forget the run above threshold (not the cool-down)."""
        self.above, self.since_ts = 0, None


def confidence(smoothed: float, threshold: float) -> float:
    """An event score in 0..1: 0.5 at the threshold, towards 1 far above it.

    >>> confidence(2.0, 2.0), round(confidence(6.0, 2.0), 2), confidence(1.0, 0.0)
    (0.5, 0.75, 1.0)
    """
    if threshold <= 0:
        return 1.0
    return float(smoothed / (smoothed + threshold))


def cell_box(index: int, rows: int, cols: int) -> Box:
    """The normalised box of grid cell ``index`` (row-major).

    >>> cell_box(13, 8, 12)
    Box(x1=0.08333333333333333, y1=0.125, x2=0.16666666666666666, y2=0.25)
    """
    row, col = divmod(index, cols)
    return Box(x1=col / cols, y1=row / rows, x2=(col + 1) / cols, y2=(row + 1) / rows)


def zone_of(camera: Camera, box: Box) -> tuple[str, str | None]:
    """(camera zone id, site zone) holding the box centre, else the whole view."""
    centre = ((box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2)
    for zone in camera.zones:
        if point_in_polygon(centre, zone.polygon):
            return zone.id, zone.site_zone
    return WHOLE_VIEW, None


def pair_step(has_prev: bool, prev_seq: int, prev_ts: float, seq: int, ts: float,
              max_gap_s: float) -> bool | None:
    """How a camera's new frame relates to its previous one: True: it follows it (score the
    pair); False: it starts a new pair (first frame, a gap, a restarted grabber); None: skip
    it (a repeat after redelivery, or an older frame).

    >>> pair_step(True, 4, 10.0, 5, 10.2, 2.0), pair_step(True, 4, 10.0, 5, 13.0, 2.0)
    (True, False)
    >>> pair_step(True, 4, 10.0, 4, 10.0, 2.0) is None, pair_step(False, -1, 0.0, 0, 1.0, 2.0)
    (True, False)
    """
    if not has_prev:
        return False
    if seq == prev_seq or (seq < prev_seq and ts <= prev_ts):
        return None
    return prev_ts <= ts <= prev_ts + max_gap_s


@dataclass
class CameraState:
    """What the stage remembers about one camera."""

    prev_jpeg: bytes | None = None
    prev_seq: int = -1
    prev_ts: float = 0.0
    smoother: ScoreSmoother | None = None
    trigger: AnomalyTrigger | None = None
    no_model_until: float = 0.0  # capture time before which the camera is not asked about
    stats: dict[str, int] = field(default_factory=lambda: {"scored": 0, "events": 0})


class AnomalyAgent:
    """Per-worker state of the anomaly stage (like ``FaceAgent``)."""

    def __init__(self, settings: Settings, topology: Topology,
                 frame_cache: FrameCache | None = None,
                 config: AnomalySettings | None = None) -> None:
        self.settings = settings
        self.topology = topology
        self.config = config or AnomalySettings()
        self.model = TritonAnomaly(settings.triton_grpc_url)
        self.cache = frame_cache
        self.cameras: dict[str, CameraState] = {}

    async def handle(self, key: bytes | None, value: bytes | None, headers: object
                     ) -> list[VideoEvent]:
        """The ``anomaly`` event (if any) of one ``frames.raw`` record."""
        try:
            meta = check_frame(key, value, headers, self.topology, self.settings.max_frame_bytes)
        except Rejected:
            return []  # the detect stage dead-letters bad frames
        camera = self.topology.camera(meta.camera_id)
        if camera is None or value is None:
            return []
        state = self.cameras.setdefault(camera.id, CameraState())
        if meta.capture_ts < state.no_model_until:
            return []
        prev = state.prev_jpeg
        fresh = pair_step(prev is not None, state.prev_seq, state.prev_ts, meta.seq,
                          meta.capture_ts, self.config.max_gap_s)
        if fresh is None:
            return []  # a repeat (at-least-once redelivery) or an older frame
        state.prev_jpeg, state.prev_seq, state.prev_ts = value, meta.seq, meta.capture_ts
        if prev is None or not fresh:
            if state.smoother is not None:
                state.smoother.reset()
            if state.trigger is not None:
                state.trigger.reset()
            return []
        try:
            result = await self.model.infer(prev, value, camera.id)
        except NoModel as exc:
            state.no_model_until = meta.capture_ts + self.config.retry_s
            state.prev_jpeg = None
            log.info("no anomaly model for camera", extra={"camera": camera.id,
                                                           "detail": str(exc)[:200]})
            return []
        except Rejected:
            return []
        except InferenceServerException as exc:
            STAGE_ERRORS.labels(STAGE, "triton").inc()
            log.error("anomaly model call failed; frame skipped", extra={
                "camera": camera.id, "error": str(exc)})
            return []
        event = await self._decide(camera, state, meta.seq, meta.capture_ts, result, value)
        return [event] if event is not None else []

    async def _decide(self, camera: Camera, state: CameraState, seq: int, ts: float,
                      result: AnomalyResult, jpeg: bytes) -> VideoEvent | None:
        """Smooth, compare with the threshold, build the event when the trigger fires."""
        if state.smoother is None or state.smoother.window != max(1, result.window):
            state.smoother = ScoreSmoother(result.window)
        if state.trigger is None:
            state.trigger = AnomalyTrigger(self.config.min_frames, self.config.cooldown_s)
        smoothed = state.smoother.push(result.score)
        threshold = result.threshold * self.config.threshold_scale
        state.stats["scored"] += 1
        label = camera_label(camera.id, self.settings.metrics_per_camera)
        ANOMALY_SCORE.labels(label).set(smoothed / threshold if threshold > 0 else 0.0)
        since = state.trigger.since_ts
        if not state.trigger.update(smoothed, threshold, ts):
            return None
        cell = int(np.argmax(result.cells)) if result.cells.size else 0
        box = cell_box(cell, result.rows, result.cols)
        zone_id, site_zone = zone_of(camera, box)
        event_id = f"{camera.id}:{zone_id}:anomaly:{seq}"
        attributes: dict[str, str | int | float | bool] = {
            "score": round(smoothed, 4), "threshold": round(threshold, 4),
            "frame_score": round(result.score, 4), "frames_above": state.trigger.above,
            "cell": cell, "why": f"motion {smoothed / threshold if threshold > 0 else 0:.1f}x "
            f"its threshold (grid cell {cell})"}
        snapshot = await self._snapshot(event_id, jpeg)
        state.stats["events"] += 1
        log.info("anomaly", extra={"event": event_id, **attributes})
        return VideoEvent(
            event_id=event_id, kind="anomaly", camera_id=camera.id, site_id=camera.site,
            zone_id=zone_id, site_zone_id=site_zone, ts=ts, seq=seq, class_name="motion",
            score=confidence(smoothed, threshold), box=box, count=1, attributes=attributes,
            start_ts=since if since is not None else ts, end_ts=ts, snapshot_ref=snapshot)

    async def _snapshot(self, event_id: str, jpeg: bytes) -> str | None:
        """Keep the decisive frame as evidence (best effort)."""
        if self.cache is None:
            return None
        try:
            return await self.cache.store(event_id, jpeg)
        except Exception as exc:
            STAGE_ERRORS.labels(STAGE, "snapshot").inc()
            log.warning("anomaly snapshot failed", extra={"event": event_id, "error": repr(exc)})
            return None

    async def close(self) -> None:
        await self.model.close()
