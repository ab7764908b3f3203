"""What every behaviour shares: the frame it looks at, geometry in box heights, events.

A behaviour sees one ``tracks`` message at a time through a :class:`FrameView` and keeps
its own per-track state in plain dataclasses (:func:`dump` / :func:`load` turn them into
JSON-safe dicts for the worker's ``behaviour-state`` table).

Distances and speeds are measured in pixels (so the image's aspect ratio does not skew
them) and divided by a box height in pixels: "1.0" is one body length, near or far.

>>> from schemas.detections import Box
>>> box = Box(x1=0.4, y1=0.2, x2=0.5, y2=0.6)
>>> foot(box), round(centre(box)[1], 3)
((0.45, 0.6), 0.4)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

from argus.schedule import Schedule
from argus.topology import Camera, Site
from pipelines.stages.behaviour.schedule import schedule_allows
from schemas.detections import Box
from schemas.events import AttributeValue, VideoEvent, VideoKind
from schemas.tracks import Track, Tracks

Point = tuple[float, float]
FORGET_S = 10.0
"""Per-track state of a track not seen for this long is dropped (behaviours with their
own ``grace_s`` use that instead)."""
EDGE = 0.02
"""A box this close to the image border is cut by it: its centre and size are not the
object's (running and wrong way skip it), and a track last seen there left the view
(loitering does not hand its visit over)."""


def foot(box: Box) -> Point:
    """Where an object stands: the bottom centre of its box."""
    return ((box.x1 + box.x2) / 2.0, box.y2)


def centre(box: Box) -> Point:
    return ((box.x1 + box.x2) / 2.0, (box.y1 + box.y2) / 2.0)


def at_edge(box: Box, margin: float = EDGE) -> bool:
    """Whether a box touches the image border (within ``margin``, normalised).

    >>> at_edge(Box(x1=0.5, y1=0.2, x2=0.985, y2=0.6)), at_edge(Box(x1=0.5, y1=0.2, x2=0.9, y2=0.6))
    (True, False)
    """
    return box.x1 <= margin or box.y1 <= margin or box.x2 >= 1 - margin or box.y2 >= 1 - margin


def union(boxes: Iterable[Box]) -> Box:
    """The smallest box around ``boxes`` (at least one).

    >>> union([Box(x1=0.1, y1=0.2, x2=0.3, y2=0.4), Box(x1=0.2, y1=0.1, x2=0.5, y2=0.3)])
    Box(x1=0.1, y1=0.1, x2=0.5, y2=0.4)
    """
    items = list(boxes)
    return Box(x1=min(b.x1 for b in items), y1=min(b.y1 for b in items),
               x2=max(b.x2 for b in items), y2=max(b.y2 for b in items))


@dataclass(frozen=True)
class FrameView:
    """One ``tracks`` message with the camera and site it belongs to."""

    message: Tracks
    camera: Camera
    site: Site

    @property
    def ts(self) -> float:
        return self.message.capture_ts

    @property
    def seq(self) -> int:
        return self.message.seq

    def tracks(self, classes: Iterable[str], states: tuple[str, ...] = ("confirmed",)
               ) -> list[Track]:
        """The tracks of ``classes`` in ``states`` (default: seen in this frame)."""
        wanted = set(classes)
        return [t for t in self.message.tracks if t.class_name in wanted and t.state in states]

    def ids(self, states: tuple[str, ...] = ("confirmed",)) -> set[int]:
        """The ids of every track in ``states``, whatever its class."""
        return {t.track_id for t in self.message.tracks if t.state in states}

    def allows(self, schedule: Schedule | None) -> bool:
        """Whether a behaviour with ``schedule`` may emit an event now."""
        return schedule_allows(schedule, self.site, self.ts)

    def height_px(self, box: Box) -> float:
        """A box's height in pixels (never below one pixel)."""
        return max((box.y2 - box.y1) * self.message.height, 1.0)

    def distance_px(self, p: Point, q: Point) -> float:
        """Distance between two normalised points, in pixels."""
        return math.hypot((p[0] - q[0]) * self.message.width, (p[1] - q[1]) * self.message.height)

    def velocity_px(self, track: Track) -> Point:
        """A track's velocity in pixels per second."""
        return (track.velocity.vx * self.message.width, track.velocity.vy * self.message.height)

    def speed_bh(self, track: Track) -> float:
        """A track's speed in its own box heights per second."""
        return math.hypot(*self.velocity_px(track)) / self.height_px(track.box)


def event_id(camera_id: str, place: str, kind: str, track_ids: Iterable[int], start_seq: int
             ) -> str:
    """Deterministic, so a replay produces the same id.

    >>> event_id("cam-1", "door", "line_crossing", [7], 120)
    'cam-1:door:line_crossing:7:120'
    >>> event_id("cam-1", "hall", "crowd", [], 5)
    'cam-1:hall:crowd:-:5'
    """
    ids = "+".join(str(i) for i in track_ids) or "-"
    return f"{camera_id}:{place}:{kind}:{ids}:{start_seq}"


def make_event(frame: FrameView, kind: VideoKind, place: str, site_zone: str | None, *,
               track_ids: list[int], start_seq: int, start_ts: float, class_name: str,
               score: float, box: Box, count: int = 1,
               attributes: dict[str, AttributeValue] | None = None) -> VideoEvent:
    """A behaviour event decided at this frame (``ts``/``seq``/``end_ts`` are the frame's)."""
    return VideoEvent(
        event_id=event_id(frame.camera.id, place, kind, track_ids, start_seq),
        kind=kind, camera_id=frame.camera.id, site_id=frame.camera.site, zone_id=place,
        site_zone_id=site_zone, ts=frame.ts, seq=frame.seq, class_name=class_name,
        score=min(max(score, 0.0), 1.0), box=box, count=max(count, 1),
        attributes=dict(attributes or {}), track_ids=list(track_ids),
        start_ts=min(start_ts, frame.ts), end_ts=frame.ts)


S = TypeVar("S")


def dump(states: dict[int, Any]) -> dict[str, dict[str, Any]]:
    """Per-track dataclass states → a JSON-safe dict (track ids become string keys)."""
    return {str(tid): asdict(state) for tid, state in states.items()}


def load(data: Any, make: Callable[..., S]) -> dict[int, S]:
    """The inverse of :func:`dump`; fields the dataclass does not know are ignored."""
    if not isinstance(data, dict):
        return {}
    known = {f.name for f in fields(make)} if isinstance(make, type) else None
    out: dict[int, S] = {}
    for key, value in data.items():
        args = {k: v for k, v in value.items() if known is None or k in known}
        out[int(key)] = make(**args)
    return out


def forget(states: dict[int, Any], now: float, after_s: float) -> None:
    """Drop the states whose ``last_ts`` is more than ``after_s`` before ``now``."""
    for tid in [tid for tid, s in states.items() if now - s.last_ts > after_s]:
        del states[tid]


@dataclass
class Sustained:
    """A per-track condition held for consecutive frames (running, wrong way).

    ``frames`` counts the consecutive frames the condition held; the occurrence starts at
    ``start_ts``/``start_seq``. Once ``fired``, it stays fired until the condition has been
    false for as many frames as it needs to fire (so a brief dip does not fire twice).
    """

    last_ts: float
    frames: int = 0
    calm: int = 0
    fired: bool = False
    start_ts: float = 0.0
    start_seq: int = 0
    score_sum: float = 0.0
    value_sum: float = 0.0

    def update(self, holds: bool, needed: int, ts: float, seq: int, score: float,
               value: float) -> bool:
        """Apply one frame; True when the occurrence is due (held ``needed`` frames and not
        fired yet). The caller sets ``fired`` once it has emitted the event."""
        self.last_ts = ts
        if holds:
            if self.frames == 0:
                self.start_ts, self.start_seq = ts, seq
                self.score_sum = self.value_sum = 0.0
            self.frames += 1
            self.calm = 0
            self.score_sum += score
            self.value_sum += value
            return not self.fired and self.frames >= needed
        self.calm += 1
        if not self.fired or self.calm >= needed:
            self.frames, self.fired = 0, False
        return False
