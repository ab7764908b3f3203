"""Vehicle stopped in a no-parking zone: a car, bus, truck or motorcycle whose foot point
is in the zone and whose box centre stays still (:mod:`pipelines.stages.behaviour.stillness`)
for ``stopped_s`` seconds. One event per stop; moving on and stopping again is a new one.
"""

from __future__ import annotations

from typing import Any

from argus.behaviours import VehicleStopped as VehicleConfig
from argus.geometry import point_in_polygon
from argus.topology import CameraZone
from pipelines.stages.behaviour.base import FrameView, centre, dump, foot, forget, load, make_event
from pipelines.stages.behaviour.stillness import Still
from schemas.events import VideoEvent


class VehicleStopped:
    kind = "vehicle_stopped"

    def __init__(self, zone: CameraZone, config: VehicleConfig) -> None:
        self.zone = zone
        self.config = config
        self.stops: dict[int, Still] = {}

    @property
    def key(self) -> str:
        return f"vehicle_stopped:{self.zone.id}"

    def update(self, frame: FrameView) -> list[VideoEvent]:
        cfg = self.config
        width, height = frame.message.width, frame.message.height
        events = []
        for track in frame.tracks(cfg.classes):
            if not point_in_polygon(foot(track.box), self.zone.polygon):
                continue
            point = centre(track.box)
            stop = self.stops.get(track.track_id)
            if stop is None:
                stop = Still(anchor_x=point[0], anchor_y=point[1], anchor_ts=frame.ts,
                             anchor_seq=frame.seq, last_ts=frame.ts)
                self.stops[track.track_id] = stop
            stop.last_ts = frame.ts
            if stop.moved_to(point, frame.height_px(track.box), width, height, cfg.tolerance):
                stop.settle(point, frame.ts, frame.seq)
            stop.score_sum += track.score
            stop.frames += 1
            stopped = frame.ts - stop.anchor_ts
            if stop.fired or stopped < cfg.stopped_s or not frame.allows(cfg.schedule):
                continue
            stop.fired = True
            events.append(make_event(
                frame, "vehicle_stopped", self.zone.id, self.zone.site_zone,
                track_ids=[track.track_id], start_seq=stop.anchor_seq, start_ts=stop.anchor_ts,
                class_name=track.class_name, score=stop.score_sum / stop.frames, box=track.box,
                attributes={"stopped_s": round(stopped, 1), "track_id": track.track_id}))
        forget(self.stops, frame.ts, cfg.grace_s)
        return events

    def to_dict(self) -> dict[str, Any]:
        return {"stops": dump(self.stops)}

    def load(self, data: dict[str, Any]) -> None:
        self.stops = load(data.get("stops"), Still)
