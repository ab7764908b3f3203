"""Fall / person-down detection on tracks (``tracks`` → ``events.video`` kind ``fall``).

Per camera, :class:`FallDetector` keeps a short box history per person track and runs a
small state machine on it (:func:`observe`, pure):

``armed``
    A *candidate* fall starts when, within ``window_s``, the box went from standing
    (width / height in pixels below ``standing_aspect``) to lying (above ``lying_aspect``),
    and/or its top dropped by at least ``drop_ratio`` x the standing box height (a fall
    towards the camera keeps a tall box but its top drops fast).
``candidate``
    Frames where the box still looks down, or where the track was not matched (a person on
    the floor is often missed by the detector), count towards ``persistence_frames``; a
    box back to standing cancels the candidate (someone bending briefly). Once persistent,
    the frame's JPEG (``frame_loader``) goes to the pose model on the person box and
    :func:`argus.inference.pose.person_down` decides (``confirm_with_pose``, ``min_confidence``),
    up to ``max_pose_checks`` times, ``pose_interval_s`` apart, within ``confirm_timeout_s``.
``fallen``
    One ``fall`` event was emitted for this fall. The track re-arms after
    ``rearm_frames`` standing frames (the person got up).

Events carry ``attributes``: ``track_id``, ``torso_angle`` (degrees from vertical, when the
pose was measured), ``phase`` (``falling``: confirmed within ``window_s`` of the last
standing box, else ``lying``), ``trigger`` (``aspect``, ``drop`` or ``aspect+drop``),
``confirmed_by`` (``pose`` or ``geometry``), ``standing_seq`` and, when the frame could be
kept, ``snapshot`` (the reference ``snapshot_ref`` returned; never the bytes).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from argus.behaviours import FallConfig
from argus.geometry import point_in_polygon
from argus.inference.pose import Keypoints, person_down, torso_angle
from argus.log import get_logger
from argus.metrics import STAGE_ERRORS
from argus.topology import Camera
from schemas.detections import Box
from schemas.events import VideoEvent
from schemas.tracks import Track, Tracks

log = get_logger(__name__)

FrameLoader = Callable[[str, int], Awaitable[bytes | None]]
"""``(camera_id, seq) -> JPEG | None`` (e.g. ``FrameCache.get``)."""
SnapshotRef = Callable[[str, int, str], Awaitable[str | None]]
"""``(camera_id, seq, event_id) -> reference | None`` (e.g. ``FrameCache.keep``)."""
PoseFn = Callable[[bytes, Box], Awaitable[Keypoints]]
"""``(jpeg, person box) -> 17 x 3 keypoints`` (e.g. ``TritonPose.keypoints``)."""
Phase = Literal["armed", "candidate", "fallen"]
WHOLE_VIEW = "*"
"""``zone_id`` of a fall outside every camera zone that watches people."""
STAGE = "behaviour"


@dataclass(frozen=True)
class Sample:
    """One matched box of a track: capture time, frame seq, box, pixel aspect (w / h)."""

    ts: float
    seq: int
    box: Box
    aspect: float

    @property
    def height(self) -> float:
        return self.box.y2 - self.box.y1


def make_sample(ts: float, seq: int, box: Box, width: int, height: int) -> Sample:
    """A :class:`Sample`, with the aspect ratio measured in pixels."""
    h = (box.y2 - box.y1) * height
    aspect = (box.x2 - box.x1) * width / h if h > 0 else math.inf
    return Sample(ts=ts, seq=seq, box=box, aspect=aspect)


def top_drop(sample: Sample, ref: Sample) -> float:
    """How far the box top fell since ``ref``, as a fraction of ``ref``'s height."""
    return (sample.box.y1 - ref.box.y1) / ref.height if ref.height > 0 else 0.0


@dataclass
class TrackFall:
    """The fall state of one track."""

    history: deque[Sample] = field(default_factory=deque)
    phase: Phase = "armed"
    ref: Sample | None = None
    trigger: str = ""
    since: float = 0.0
    down_frames: int = 0
    pose_checks: int = 0
    checked_ts: float = -math.inf
    standing_frames: int = 0
    last: Sample | None = None
    last_ts: float = 0.0


def _standing(sample: Sample, config: FallConfig) -> bool:
    return sample.aspect < config.standing_aspect and sample.height >= config.min_box_height


def _looks_down(sample: Sample, ref: Sample, config: FallConfig) -> bool:
    return sample.aspect >= config.lying_aspect or top_drop(sample, ref) >= config.drop_ratio


def find_trigger(history: deque[Sample], sample: Sample, config: FallConfig,
                 ) -> tuple[Sample, str] | None:
    """The standing reference and the trigger (``aspect``, ``drop``, ``aspect+drop``) when
    ``sample`` completes a standing → down transition within ``window_s``, else None."""
    refs = [s for s in history if 0 < sample.ts - s.ts <= config.window_s
            and _standing(s, config)]
    if not refs:
        return None
    ref = max(refs, key=lambda r: (top_drop(sample, r), r.ts))  # ties: the latest
    by_aspect = sample.aspect >= config.lying_aspect
    by_drop = top_drop(sample, ref) >= config.drop_ratio
    if not (by_aspect or by_drop):
        return None
    return ref, "+".join(name for name, hit in (("aspect", by_aspect), ("drop", by_drop)) if hit)


def reject(state: TrackFall) -> None:
    """Drop a candidate that was not confirmed. The history goes too, so the same
    transition cannot start another candidate: the next one needs a new standing box."""
    state.phase = "armed"
    state.history.clear()


def observe(state: TrackFall, sample: Sample | None, ts: float, config: FallConfig) -> bool:
    """Advance one track by one frame (``sample`` None: the track was not matched in this
    frame). True when a candidate fall is ready for confirmation."""
    state.last_ts = ts
    if sample is not None:
        state.last = sample
        state.history.append(sample)
        while state.history and sample.ts - state.history[0].ts > config.window_s:
            state.history.popleft()
    if state.phase == "armed":
        found = None if sample is None else find_trigger(state.history, sample, config)
        if found is not None:
            state.ref, state.trigger = found
            state.phase, state.since, state.down_frames, state.pose_checks = (
                "candidate", ts, 1, 0)
            state.checked_ts = -math.inf
    elif state.phase == "candidate":
        assert state.ref is not None
        if ts - state.since > config.confirm_timeout_s:
            reject(state)
            return False
        if sample is None or _looks_down(sample, state.ref, config):
            state.down_frames += 1
        elif _standing(sample, config):
            state.phase = "armed"  # up again: bending, picking something up
    elif sample is not None:  # fallen: re-arm once standing for a while
        assert state.ref is not None
        up = _standing(sample, config) and \
            sample.height >= (1.0 - config.drop_ratio) * state.ref.height
        state.standing_frames = state.standing_frames + 1 if up else 0
        if state.standing_frames >= config.rearm_frames:
            state.phase = "armed"
            state.history = deque([sample])
    ready = state.phase == "candidate" and state.down_frames >= config.persistence_frames \
        and ts - state.checked_ts >= config.pose_interval_s - 1e-6
    if ready:
        state.checked_ts = ts
    return ready


def _ramp(value: float, start: float, full: float) -> float:
    return min(max((value - start) / (full - start), 0.0), 1.0)


def geometry_confidence(sample: Sample, ref: Sample, config: FallConfig) -> float:
    """0..1 from the box alone: the aspect ratio past standing, or the top drop."""
    span = config.lying_aspect - config.standing_aspect
    return round(max(_ramp(sample.aspect, config.standing_aspect, config.lying_aspect + span),
                     _ramp(top_drop(sample, ref), 0.0, 2.0 * config.drop_ratio)), 4)


class FallDetector:
    """Fall events of one camera's person tracks (state for every track of the camera).

    ``pose``, ``frame_loader`` and ``snapshot_ref`` are async callables (see the type
    aliases above); with ``config.confirm_with_pose`` the first two are needed.
    """

    def __init__(self, camera: Camera, config: FallConfig | None = None,
                 pose: PoseFn | None = None, frame_loader: FrameLoader | None = None,
                 snapshot_ref: SnapshotRef | None = None) -> None:
        self.camera = camera
        self.config = config or FallConfig()
        if self.config.confirm_with_pose and (pose is None or frame_loader is None):
            raise ValueError("confirm_with_pose needs a pose callable and a frame_loader")
        self.pose = pose
        self.frame_loader = frame_loader
        self.snapshot_ref = snapshot_ref
        self.tracks: dict[int, TrackFall] = {}
        self.stats = {"candidates": 0, "pose_checks": 0, "rejected": 0, "events": 0}
        self._last: tuple[int, float] | None = None

    async def process(self, frame: Tracks) -> list[VideoEvent]:
        """One ``tracks`` message in (frames in order), the ``fall`` events it completes out.
        A repeated frame (not newer than the last one) is ignored."""
        if self._last is not None and frame.seq <= self._last[0] \
                and frame.capture_ts <= self._last[1]:
            return []
        self._last = (frame.seq, frame.capture_ts)
        ready: list[tuple[Track, TrackFall]] = []
        for track in frame.tracks:
            if track.class_name not in self.config.classes or track.state == "tentative":
                continue
            state = self.tracks.setdefault(track.track_id, TrackFall())
            sample = None if track.state != "confirmed" else make_sample(
                frame.capture_ts, frame.seq, track.box, frame.width, frame.height)
            was = state.phase
            if observe(state, sample, frame.capture_ts, self.config):
                ready.append((track, state))
            if was == "armed" and state.phase == "candidate":
                self.stats["candidates"] += 1
        for track_id in [t for t, s in self.tracks.items()
                         if frame.capture_ts - s.last_ts > self.config.forget_s]:
            del self.tracks[track_id]
        events = await asyncio.gather(*(self._confirm(frame, t, s) for t, s in ready))
        return [e for e in events if e is not None]

    async def _confirm(self, frame: Tracks, track: Track, state: TrackFall,
                       ) -> VideoEvent | None:
        """Confirm a persistent candidate (pose on the latest matched box) and emit."""
        assert state.last is not None and state.ref is not None
        track_id = track.track_id
        if not self.config.confirm_with_pose:
            return await self._emit(frame, track, state,
                                    geometry_confidence(state.last, state.ref, self.config),
                                    None, "geometry")
        assert self.pose is not None and self.frame_loader is not None
        try:
            jpeg = await self.frame_loader(self.camera.id, frame.seq)
            keypoints = None if jpeg is None else await self.pose(jpeg, state.last.box)
        except Exception as exc:  # infrastructure: retry on the next frame, never stall
            STAGE_ERRORS.labels(STAGE, "pose").inc()
            log.warning("fall confirmation failed", extra={
                "camera": self.camera.id, "seq": frame.seq, "track": track_id,
                "error": repr(exc)})
            return None
        state.pose_checks += 1
        self.stats["pose_checks"] += 1
        if keypoints is None:
            if self.config.emit_without_frame:
                return await self._emit(
                    frame, track, state,
                    geometry_confidence(state.last, state.ref, self.config), None, "geometry")
        else:
            aspect = frame.width / frame.height
            down, confidence = person_down(keypoints, aspect, self.config.pose_min_score)
            if down and confidence >= self.config.min_confidence:
                angle = torso_angle(keypoints, aspect, self.config.pose_min_score)
                return await self._emit(frame, track, state, confidence, angle, "pose")
        if state.pose_checks >= self.config.max_pose_checks:
            reject(state)
            self.stats["rejected"] += 1
            log.info("fall candidate rejected", extra={
                "camera": self.camera.id, "seq": frame.seq, "track": track_id,
                "pose_checks": state.pose_checks})
        return None

    def _zone(self, box: Box) -> tuple[str, str | None]:
        """The first camera zone watching the class that holds the box's bottom centre."""
        for zone in self.camera.zones:
            if any(c in zone.classes for c in self.config.classes) and \
                    point_in_polygon(box.bottom_centre, zone.polygon):
                return zone.id, zone.site_zone
        return WHOLE_VIEW, None

    async def _emit(self, frame: Tracks, track: Track, state: TrackFall, confidence: float,
                    angle: float | None, confirmed_by: str) -> VideoEvent:
        """The ``fall`` event of a confirmed candidate; the track moves to ``fallen``."""
        assert state.last is not None and state.ref is not None
        track_id = track.track_id
        box = state.last.box
        zone_id, site_zone = self._zone(box)
        event_id = f"{self.camera.id}:{zone_id}:fall:{track_id}:{frame.seq}"
        attributes: dict[str, str | int | float | bool] = {
            "track_id": track_id,
            "phase": "falling" if frame.capture_ts - state.ref.ts <= self.config.window_s
            else "lying",
            "trigger": state.trigger, "confirmed_by": confirmed_by,
            "standing_seq": state.ref.seq,
        }
        if angle is not None:
            attributes["torso_angle"] = round(angle, 1)
        snapshot = None
        if self.snapshot_ref is not None:
            try:
                snapshot = await self.snapshot_ref(self.camera.id, frame.seq, event_id)
            except Exception as exc:  # evidence is best-effort; the event still goes out
                STAGE_ERRORS.labels(STAGE, "snapshot").inc()
                log.warning("fall snapshot failed", extra={"event": event_id,
                                                            "error": repr(exc)})
        state.phase, state.standing_frames = "fallen", 0
        self.stats["events"] += 1
        log.info("fall", extra={"event": event_id, "confidence": confidence, **attributes})
        return VideoEvent(
            event_id=event_id, kind="fall", camera_id=self.camera.id, site_id=self.camera.site,
            zone_id=zone_id, site_zone_id=site_zone, ts=frame.capture_ts, seq=frame.seq,
            class_name=track.class_name, score=min(max(confidence, 0.0), 1.0), box=box, count=1,
            attributes=attributes, track_ids=[track_id], start_ts=state.ref.ts,
            end_ts=frame.capture_ts, snapshot_ref=snapshot)
