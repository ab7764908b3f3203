"""Running: a track in the zone faster than ``speed`` box heights per second for
``frames`` consecutive frames.

The speed is the tracker's (Kalman-filtered) velocity of the box centre, in pixels per
second, divided by the box height in pixels: a walker covers ~0.6-1.0 of their own height
per second near or far from the camera, a runner 2-4. Boxes shorter than ``min_height``
(normalised) are ignored: a few pixels of jitter would be a large speed; so are boxes cut
by the image border (a person walking in grows from the edge: their box centre moves fast
while they do not). One event per run; a new run needs ``frames`` slower frames first.
"""

from __future__ import annotations

from typing import Any

from argus.behaviours import Running as RunningConfig
from argus.geometry import point_in_polygon
from argus.topology import CameraZone
from pipelines.stages.behaviour.base import (
    FORGET_S,
    FrameView,
    Sustained,
    at_edge,
    dump,
    foot,
    forget,
    load,
    make_event,
)
from schemas.events import VideoEvent


class Running:
    kind = "running"

    def __init__(self, zone: CameraZone, config: RunningConfig) -> None:
        self.zone = zone
        self.config = config
        self.runs: dict[int, Sustained] = {}

    @property
    def key(self) -> str:
        return f"running:{self.zone.id}"

    def update(self, frame: FrameView) -> list[VideoEvent]:
        cfg = self.config
        events = []
        for track in frame.tracks(cfg.classes):
            if not point_in_polygon(foot(track.box), self.zone.polygon):
                continue
            if track.box.y2 - track.box.y1 < cfg.min_height or at_edge(track.box):
                continue
            speed = frame.speed_bh(track)
            run = self.runs.setdefault(track.track_id, Sustained(last_ts=frame.ts))
            due = run.update(speed > cfg.speed, cfg.frames, frame.ts, frame.seq, track.score,
                             speed)
            if not due or not frame.allows(cfg.schedule):
                continue
            run.fired = True
            events.append(make_event(
                frame, "running", self.zone.id, self.zone.site_zone,
                track_ids=[track.track_id], start_seq=run.start_seq, start_ts=run.start_ts,
                class_name=track.class_name, score=run.score_sum / run.frames, box=track.box,
                attributes={"speed": round(run.value_sum / run.frames, 2),
                            "track_id": track.track_id}))
        forget(self.runs, frame.ts, FORGET_S)
        return events

    def to_dict(self) -> dict[str, Any]:
        return {"runs": dump(self.runs)}

    def load(self, data: dict[str, Any]) -> None:
        self.runs = load(data.get("runs"), Sustained)
