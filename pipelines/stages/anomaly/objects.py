"""The object method of the anomaly stage (``ARGUS_ANOMALY_METHOD=objects``): ``tracks`` →
``events.video`` (kind ``anomaly``), scored in process by the camera's object model.

Each camera's model is ``<dir>/<camera_id>.json`` (``argus train anomaly --method objects``;
``<dir>`` = ``ARGUS_ANOMALY_OBJECTS_DIR``, else ``<models dir>/anomaly``), loaded on first
use and reloaded when the file changes (checked every ``ARGUS_ANOMALY_RELOAD_S``). Every
``tracks`` message of a camera with a model is scored by :class:`argus.anomaly_tracks.
CameraScorer` (the evaluation's code); the same trigger as the flow method (smoothed score
above ``threshold x threshold_scale`` for ``min_frames`` frames, ``cooldown_s`` between
events) makes one event, whose box, class and attributes name the object and the attribute
that made the frame unusual (``reason``: e.g. ``speed 3.5x normal``). Messages not newer
than the camera's last one are skipped; a gap over ``max_gap_s`` restarts the camera's
velocities and smoothing. A model whose tracker thresholds (``info["tracker"]``) differ
from those the camera sets in the topology (``tracking``) is used, with a warning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from argus.anomaly_objects import ObjectModel
from argus.anomaly_tracks import CameraScorer, FrameScore
from argus.log import get_logger
from argus.metrics import STAGE_ERRORS, camera_label
from argus.settings import Settings
from argus.topology import Camera
from pipelines.stages.anomaly.agent import (
    ANOMALY_SCORE,
    STAGE,
    AnomalySettings,
    AnomalyTrigger,
    confidence,
    zone_of,
)
from schemas.events import VideoEvent
from schemas.tracks import Tracks

log = get_logger(__name__)


class ModelFiles:
    """The object models of the cameras: ``<dir>/<camera>.json``, reloaded on change."""

    def __init__(self, folder: Path, reload_s: float) -> None:
        self.folder = folder
        self.reload_s = reload_s
        self.loaded: dict[str, tuple[float, ObjectModel | None]] = {}  # camera -> mtime, model
        self.checked: dict[str, float] = {}  # camera -> capture time of the last look

    def get(self, camera_id: str, now: float) -> ObjectModel | None:
        """The camera's model (None: no file, or an unreadable one, which is logged)."""
        last = self.checked.get(camera_id)
        if last is not None and 0.0 <= now - last < self.reload_s:
            return self.loaded.get(camera_id, (0.0, None))[1]
        self.checked[camera_id] = now
        path = self.folder / f"{camera_id}.json"
        try:
            mtime = path.stat().st_mtime
        except OSError:
            self.loaded.pop(camera_id, None)
            return None
        cached = self.loaded.get(camera_id)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            model: ObjectModel | None = ObjectModel.from_dict(json.loads(path.read_text()))
            log.info("object anomaly model loaded", extra={"camera": camera_id,
                                                           "path": str(path)})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            STAGE_ERRORS.labels(STAGE, "model").inc()
            log.error("object anomaly model unreadable", extra={
                "camera": camera_id, "path": str(path), "error": repr(exc)})
            model = None
        self.loaded[camera_id] = (mtime, model)
        return model


def tracker_differences(camera: Camera, model: ObjectModel) -> dict[str, tuple[Any, float]]:
    """The tracker thresholds the camera sets itself (topology ``tracking``) that differ
    from those the model was trained with (``info["tracker"]``): name -> (trained, camera).
    Thresholds the camera leaves to the worker's ``ARGUS_TRACK_*`` are not known here."""
    trained = model.info.get("tracker")
    if camera.tracking is None or not isinstance(trained, dict):
        return {}
    return {k: (trained.get(k), v) for k, v in camera.tracking.overrides().items()
            if k in trained and trained[k] != v}


def check_tracker(camera: Camera, model: ObjectModel) -> None:
    """Warn when the camera's tracker thresholds are not the model's (its objects, hence
    its scores, would not be those it was calibrated on)."""
    differ = tracker_differences(camera, model)
    if differ:
        log.warning("object anomaly model trained with other tracker thresholds than the "
                    "camera's", extra={"camera": camera.id, "trained_vs_camera": differ})


@dataclass
class CameraObjects:
    """What the stage remembers about one camera."""

    model: ObjectModel
    scorer: CameraScorer
    trigger: AnomalyTrigger
    last_seq: int = -1
    last_ts: float = 0.0
    stats: dict[str, int] = field(default_factory=lambda: {"scored": 0, "events": 0})


class ObjectAnomalyAgent:
    """Per-worker state of the object method."""

    def __init__(self, settings: Settings, config: AnomalySettings | None = None) -> None:
        self.settings = settings
        self.config = config or AnomalySettings()
        folder = self.config.objects_dir or settings.models_dir / "anomaly"
        self.models = ModelFiles(Path(folder), self.config.reload_s)
        self.cameras: dict[str, CameraObjects] = {}

    def handle(self, camera: Camera, message: Tracks) -> list[VideoEvent]:
        """The ``anomaly`` event (if any) of one ``tracks`` message."""
        model = self.models.get(camera.id, message.capture_ts)
        if model is None:
            self.cameras.pop(camera.id, None)
            return []
        state = self.cameras.get(camera.id)
        if state is not None and (message.seq == state.last_seq or (
                message.seq < state.last_seq and message.capture_ts <= state.last_ts)):
            return []  # a repeat after redelivery, or an older message
        if state is None or state.model is not model:
            check_tracker(camera, model)
        if (state is None or state.model is not model
                or not 0.0 <= message.capture_ts - state.last_ts <= self.config.max_gap_s):
            state = CameraObjects(model, CameraScorer(model),
                                  AnomalyTrigger(self.config.min_frames,
                                                 self.config.cooldown_s))
            self.cameras[camera.id] = state
        state.last_seq, state.last_ts = message.seq, message.capture_ts
        result = state.scorer.score(message)
        state.stats["scored"] += 1
        threshold = result.threshold * self.config.threshold_scale
        label = camera_label(camera.id, self.settings.metrics_per_camera)
        ANOMALY_SCORE.labels(label).set(result.smoothed / threshold if threshold > 0 else 0.0)
        since = state.trigger.since_ts
        if not state.trigger.update(result.smoothed, threshold, message.capture_ts):
            return []
        if result.track is None:
            return []  # smoothed above, but no object in this frame to show
        state.stats["events"] += 1
        return [self._event(camera, message, result, threshold, state.trigger.above,
                            since)]

    def _event(self, camera: Camera, message: Tracks, result: FrameScore, threshold: float,
               frames_above: int, since: float | None) -> VideoEvent:
        track = result.track
        assert track is not None
        zone_id, site_zone = zone_of(camera, track.box)
        event_id = f"{camera.id}:{zone_id}:anomaly:{message.seq}"
        attributes: dict[str, str | int | float | bool] = {
            "method": "objects", "score": round(result.smoothed, 4),
            "threshold": round(threshold, 4), "frame_score": round(result.raw, 4),
            "frames_above": frames_above, "track_id": track.track_id,
            "attribute_group": result.group, "reason": result.reason,
            "why": result.describe()}
        log.info("anomaly", extra={"event": event_id, **attributes})
        return VideoEvent(
            event_id=event_id, kind="anomaly", camera_id=camera.id, site_id=camera.site,
            zone_id=zone_id, site_zone_id=site_zone, ts=message.capture_ts, seq=message.seq,
            class_name=track.class_name, score=confidence(result.smoothed, threshold),
            box=track.box, count=1, attributes=attributes,
            start_ts=since if since is not None else message.capture_ts,
            end_ts=message.capture_ts, track_ids=[track.track_id])
