"""Line crossing with direction: a track's foot point goes from one side of a tripwire to
the other, through the segment (not around its ends).

Side A is left of a walker going from the line's first point to its second as seen on
screen, side B right (for a line drawn left to right, A is above). A point closer to the
line than ``margin`` is on neither side, so jitter on the line never counts; a crossing
is decided when the track is first seen at least ``margin`` beyond it, and one track
crossing back and forth makes one event per crossing. The geometry (``side_of``,
``crosses_segment``) lives in :mod:`argus.geometry`, shared with the counting stage.

>>> side_of((0.5, 0.4), ((0.0, 0.5), (1.0, 0.5)), 0.01), side_of((0.5, 0.6), ((0.0, 0.5),
...     (1.0, 0.5)), 0.01), side_of((0.5, 0.505), ((0.0, 0.5), (1.0, 0.5)), 0.01)
('a', 'b', None)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from argus.behaviours import Line
from argus.geometry import Segment, crosses_segment, side_of, signed_distance
from pipelines.stages.behaviour.base import (
    FORGET_S,
    FrameView,
    dump,
    foot,
    forget,
    load,
    make_event,
)
from schemas.events import VideoEvent

__all__ = ["LineCrossing", "LineSide", "Segment", "crosses_segment", "side_of",
           "signed_distance"]


@dataclass
class LineSide:
    """Where a track was last seen clearly on one side of the line."""

    side: str
    x: float
    y: float
    last_ts: float
    seq: int


class LineCrossing:
    """One tripwire of a camera. ``update`` returns the events of this frame and records
    every crossing (``direction``) in :attr:`crossings`, schedule or not, for counting."""

    kind = "line_crossing"

    def __init__(self, line: Line) -> None:
        self.line = line
        self.sides: dict[int, LineSide] = {}
        self.crossings: list[str] = []

    @property
    def key(self) -> str:
        return f"line:{self.line.id}"

    def update(self, frame: FrameView) -> list[VideoEvent]:
        self.crossings = []
        events = []
        cfg = self.line
        for track in frame.tracks(cfg.classes):
            point = foot(track.box)
            side = side_of(point, cfg.points, cfg.margin)
            if side is None:
                continue
            before = self.sides.get(track.track_id)
            self.sides[track.track_id] = LineSide(side, point[0], point[1], frame.ts, frame.seq)
            if before is None or before.side == side:
                continue
            if not crosses_segment((before.x, before.y), point, cfg.points, cfg.margin):
                continue
            direction = f"{before.side}_to_{side}"
            self.crossings.append(direction)
            if not frame.allows(cfg.schedule):
                continue
            events.append(make_event(
                frame, "line_crossing", cfg.id, cfg.site_zone, track_ids=[track.track_id],
                start_seq=frame.seq, start_ts=before.last_ts, class_name=track.class_name,
                score=track.score, box=track.box,
                attributes={"line": cfg.id, "direction": direction,
                            "track_id": track.track_id}))
        forget(self.sides, frame.ts, FORGET_S)
        return events

    def to_dict(self) -> dict[str, Any]:
        return {"sides": dump(self.sides)}

    def load(self, data: dict[str, Any]) -> None:
        self.sides = load(data.get("sides"), LineSide)
