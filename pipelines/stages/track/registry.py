"""The track stage: ``detections`` → ``tracks``, one ByteTrack-style tracker per camera.

:class:`TrackerRegistry` keeps a :class:`~pipelines.stages.track.tracker.Tracker` per camera and
persists its state to a mapping (the worker's ``tracker-state`` Faust table, changelog
backed, co-partitioned with ``detections``). A camera's tracker is restored from the
mapping when this process has none, or when the stored state was written by someone else
(another worker owned the partition meanwhile): see docs/adr/0004-tracker-state.md.

Thresholds come from :class:`TrackSettings` (environment ``ARGUS_TRACK_*``), with
per-class high-score thresholds by class name, e.g.
``ARGUS_TRACK_CLASS_THRESHOLDS='{"person": 0.5, "car": 0.6}'``.

When the detections carry appearance embeddings (``embedding_model`` set, see
``argus.inference.reid``), they are passed to the tracker, which fuses them into association
(``ARGUS_TRACK_REID=false`` ignores them).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from argus.inference.reid import AppearanceConfig, FloatArray, embeddings_of
from argus.log import get_logger
from argus.metrics import TRACK_FRAMES_SKIPPED
from argus.topology import CameraTracking
from pipelines.stage import StageSettings
from pipelines.stages.track.tracker import Track as TrackerTrack
from pipelines.stages.track.tracker import Tracker, TrackerConfig
from schemas.detections import Box, Detections
from schemas.tracks import Track, Tracks, Velocity

log = get_logger(__name__)


class TrackSettings(StageSettings):
    """Tracker thresholds for every camera (``ARGUS_TRACK_<NAME>``)."""

    model_config = SettingsConfigDict(env_prefix="ARGUS_TRACK_", frozen=True, extra="ignore")

    class_thresholds: dict[str, float] = Field(
        default_factory=dict, description="high-score threshold per class name")
    classes: list[str] | None = Field(
        default=None, description="track only these class names (default: every class)")
    default_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    low: float = Field(default=0.1, ge=0.0, le=1.0)
    new_track_margin: float = Field(default=0.2, ge=0.0)
    match_iou: float = Field(default=0.1, gt=0.0, le=1.0)
    min_hits: int = Field(default=2, ge=1)
    max_lost: int = Field(default=30, ge=0)
    reid: bool = Field(default=True, description="use the detections' appearance embeddings")
    reid_max_distance: float = Field(
        default=0.6, gt=0.0, le=2.0, description="cosine distance beyond which appearance "
        "does not vouch for a match")
    weak_start: float | None = Field(
        default=None, ge=0.0, le=1.0, description="boxes from this score (below threshold + "
        "margin) start tracks that need weak_hits hits; null: off")
    weak_hits: int = Field(default=3, ge=1)
    persist_every_s: float = Field(
        default=1.0, ge=0.0, description="capture-time interval between state writes")

    def tracker_config(self, class_names: Sequence[str],
                       camera: CameraTracking | None = None) -> TrackerConfig:
        """The tracker's config, with class names resolved to ids of ``class_names``, and
        a camera's own thresholds (topology ``tracking``) over these."""
        if camera is not None and camera.overrides():
            return self.model_copy(update=camera.overrides()).tracker_config(class_names)
        unknown = sorted(set(self.class_thresholds) - set(class_names))
        unknown += sorted(set(self.classes or []) - set(class_names))
        if unknown:
            raise ValueError(f"unknown class names in the track settings: {unknown}")
        if self.classes is None:
            thresholds = {class_names.index(n): v for n, v in self.class_thresholds.items()}
            default: float | None = self.default_threshold
        else:
            thresholds = {class_names.index(n): self.class_thresholds.get(
                n, self.default_threshold) for n in self.classes}
            default = None
        return TrackerConfig(thresholds=thresholds, default_threshold=default, low=self.low,
                             new_track_margin=self.new_track_margin, match_iou=self.match_iou,
                             min_hits=self.min_hits, max_lost=self.max_lost,
                             weak_start=self.weak_start, weak_hits=self.weak_hits,
                             appearance=AppearanceConfig(enabled=self.reid,
                                                         max_distance=self.reid_max_distance))


def _clip_box(x1: float, y1: float, x2: float, y2: float) -> Box:
    x1, y1 = min(max(x1, 0.0), 1.0), min(max(y1, 0.0), 1.0)
    return Box(x1=x1, y1=y1, x2=min(max(x2, x1), 1.0), y2=min(max(y2, y1), 1.0))


def to_message(frame: Detections, tracker: Tracker, tracks: list[TrackerTrack],
               class_names: Sequence[str]) -> Tracks:
    """The ``tracks`` message of one frame."""
    items = []
    for t in tracks:
        vx, vy = tracker.velocity(t)
        name = class_names[t.class_id] if t.class_id < len(class_names) else str(t.class_id)
        items.append(Track(
            track_id=t.track_id, class_id=t.class_id, class_name=name,
            box=_clip_box(*(float(v) for v in t.box)), velocity=Velocity(vx=vx, vy=vy),
            age=t.age, state=t.state.value, first_seen=t.first_ts, last_seen=t.last_ts,
            score=min(max(t.score, 0.0), 1.0)))
    return Tracks(camera_id=frame.camera_id, seq=frame.seq, capture_ts=frame.capture_ts,
                  width=frame.width, height=frame.height, tracks=items)


class TrackerRegistry:
    """One tracker per camera, persisted to ``store`` (camera id → state record)."""

    def __init__(self, config: TrackerConfig, class_names: Sequence[str],
                 store: MutableMapping[str, Any] | None = None,
                 persist_every_s: float = 1.0,
                 camera_configs: Mapping[str, TrackerConfig] | None = None) -> None:
        self.config = config
        self.camera_configs = dict(camera_configs or {})  # cameras with their own thresholds
        self.class_names = list(class_names)
        self.store: MutableMapping[str, Any] = {} if store is None else store
        self.persist_every_s = persist_every_s
        self._trackers: dict[str, Tracker] = {}
        self._revisions: dict[str, str] = {}
        self._persisted_ts: dict[str, float] = {}
        self.restored = 0
        self.stale = 0

    def tracker(self, camera_id: str) -> Tracker:
        """This camera's tracker: the local one, unless the store holds a newer state."""
        stored = self.store.get(camera_id)
        local = self._trackers.get(camera_id)
        if stored is not None and (local is None
                                   or stored.get("revision") != self._revisions.get(camera_id)):
            try:
                local = Tracker.from_dict(stored["state"], self.config_of(camera_id))
                self.restored += 1
                log.info("tracker state restored", extra={
                    "camera": camera_id, "tracks": len(local.tracks), "last_seq": local.last_seq})
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("stored tracker state unusable; starting afresh",
                            extra={"camera": camera_id, "error": repr(exc)})
                local = None
            self._revisions[camera_id] = str(stored.get("revision"))
        if local is None:
            local = Tracker(self.config_of(camera_id))
        self._trackers[camera_id] = local
        return local

    def config_of(self, camera_id: str) -> TrackerConfig:
        """The camera's tracker config: its own (topology ``tracking``), else the worker's."""
        return self.camera_configs.get(camera_id, self.config)

    def process(self, frame: Detections) -> Tracks | None:
        """Track one frame; None when the frame is stale (older than the last one applied
        for its camera), which is counted in :attr:`stale` and not applied."""
        tracker = self.tracker(frame.camera_id)
        boxes = [(d.box.x1, d.box.y1, d.box.x2, d.box.y2) for d in frame.detections]
        scores = [d.score for d in frame.detections]
        classes = [d.class_id for d in frame.detections]
        for d in frame.detections:
            if d.class_id >= len(self.class_names):
                self.class_names.extend(str(i) for i in range(len(self.class_names),
                                                              d.class_id + 1))
            self.class_names[d.class_id] = d.class_name
        tracks = tracker.update(boxes, scores, classes, frame.seq, frame.capture_ts,
                                self._embeddings(frame, tracker))
        if tracks is None:
            self.stale += 1
            TRACK_FRAMES_SKIPPED.labels("stale").inc()
            log.warning("stale frame not applied to the tracker", extra={
                "camera": frame.camera_id, "seq": frame.seq, "last_seq": tracker.last_seq,
                "stale_frames": tracker.stale_frames})
            return None
        self._persist(frame.camera_id, tracker, frame.capture_ts)
        return to_message(frame, tracker, tracks, self.class_names)

    def _embeddings(self, frame: Detections, tracker: Tracker) -> FloatArray | None:
        """The frame's appearance embeddings for the tracker (None: none or unreadable); a
        change of re-id model drops the tracks' stored embeddings (not comparable)."""
        if frame.embedding_model is None or not self.config.appearance.enabled:
            return None
        tracker.use_embedding_model(frame.embedding_model)
        try:
            return embeddings_of(frame.detections)
        except ValueError as exc:
            log.warning("unreadable embeddings ignored", extra={
                "camera": frame.camera_id, "seq": frame.seq, "error": str(exc)})
            return None

    def _persist(self, camera_id: str, tracker: Tracker, ts: float) -> None:
        """Write the state when ``persist_every_s`` of capture time passed since the last
        write (and on the first frame)."""
        last = self._persisted_ts.get(camera_id)
        if last is not None and 0.0 <= ts - last < self.persist_every_s:
            return
        revision = uuid.uuid4().hex[:16]
        self.store[camera_id] = {"revision": revision, "state": tracker.to_dict()}
        self._revisions[camera_id] = revision
        self._persisted_ts[camera_id] = ts
