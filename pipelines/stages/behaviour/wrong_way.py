"""Wrong way: sustained movement against a zone's allowed direction.

The allowed ``direction`` is a vector in normalised image coordinates (``[1, 0]``: left
to right, ``[0, 1]``: downwards on screen); it is scaled to pixels by the frame size and
compared with the track's velocity in pixels. A track moving more than ``max_angle_deg``
away from it, faster than ``min_speed`` box heights per second, for ``frames``
consecutive frames, makes one event. Boxes cut by the image border are skipped (see
:data:`~pipelines.stages.behaviour.base.EDGE`).

>>> round(angle_deg((1.0, 0.0), (-1.0, 0.1)))
174
"""

from __future__ import annotations

import math
from typing import Any

from argus.behaviours import WrongWay as WrongWayConfig
from argus.geometry import point_in_polygon
from argus.topology import CameraZone
from pipelines.stages.behaviour.base import (
    FORGET_S,
    FrameView,
    Point,
    Sustained,
    at_edge,
    dump,
    foot,
    forget,
    load,
    make_event,
)
from schemas.events import VideoEvent


def angle_deg(a: Point, b: Point) -> float:
    """The angle between two non-zero vectors, 0..180 degrees."""
    cos = (a[0] * b[0] + a[1] * b[1]) / (math.hypot(*a) * math.hypot(*b))
    return math.degrees(math.acos(min(max(cos, -1.0), 1.0)))


class WrongWay:
    kind = "wrong_way"

    def __init__(self, zone: CameraZone, config: WrongWayConfig) -> None:
        self.zone = zone
        self.config = config
        self.moves: dict[int, Sustained] = {}

    @property
    def key(self) -> str:
        return f"wrong_way:{self.zone.id}"

    def update(self, frame: FrameView) -> list[VideoEvent]:
        cfg = self.config
        allowed = (cfg.direction[0] * frame.message.width, cfg.direction[1] * frame.message.height)
        events = []
        for track in frame.tracks(cfg.classes):
            if not point_in_polygon(foot(track.box), self.zone.polygon) or at_edge(track.box):
                continue
            speed = frame.speed_bh(track)
            angle = angle_deg(allowed, frame.velocity_px(track)) if speed > 0 else 0.0
            move = self.moves.setdefault(track.track_id, Sustained(last_ts=frame.ts))
            against = speed >= cfg.min_speed and angle > cfg.max_angle_deg
            if not move.update(against, cfg.frames, frame.ts, frame.seq, track.score, angle):
                continue
            if not frame.allows(cfg.schedule):
                continue
            move.fired = True
            events.append(make_event(
                frame, "wrong_way", self.zone.id, self.zone.site_zone,
                track_ids=[track.track_id], start_seq=move.start_seq, start_ts=move.start_ts,
                class_name=track.class_name, score=move.score_sum / move.frames, box=track.box,
                attributes={"angle_deg": round(move.value_sum / move.frames, 1),
                            "speed": round(speed, 2), "track_id": track.track_id}))
        forget(self.moves, frame.ts, FORGET_S)
        return events

    def to_dict(self) -> dict[str, Any]:
        return {"moves": dump(self.moves)}

    def load(self, data: dict[str, Any]) -> None:
        self.moves = load(data.get("moves"), Sustained)
