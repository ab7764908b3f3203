"""Loitering: a track stays in a zone longer than ``dwell_s``.

A *visit* starts when a confirmed track's foot point is first seen in the zone and lasts
while it is seen there again within ``grace_s``: a track that is lost for a moment
(occlusion), steps out briefly, or is re-activated by the tracker with the same id keeps
its dwell. When the tracker gives the same person a new id, the new track continues the
visit of a track that vanished (no longer confirmed) less than ``grace_s`` ago within
``handover`` box heights of where it was last seen, unless it was last seen at the image
border (it walked out of the picture). One event per visit, when the dwell
first reaches ``dwell_s`` while the schedule allows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from argus.behaviours import Loitering as LoiteringConfig
from argus.geometry import point_in_polygon
from argus.topology import CameraZone
from pipelines.stages.behaviour.base import FrameView, at_edge, dump, foot, forget, load, make_event
from schemas.events import VideoEvent
from schemas.tracks import Track


@dataclass
class Visit:
    """One stay in the zone; ``ids`` are the track ids that carried it, oldest first."""

    enter_ts: float
    enter_seq: int
    last_ts: float
    x: float
    y: float
    height_px: float
    ids: list[int] = field(default_factory=list)
    at_edge: bool = False
    """Last seen touching the image border: it probably left the view."""
    fired: bool = False
    score_sum: float = 0.0
    frames: int = 0


class Loitering:
    kind = "loitering"

    def __init__(self, zone: CameraZone, config: LoiteringConfig) -> None:
        self.zone = zone
        self.config = config
        self.visits: dict[int, Visit] = {}

    @property
    def key(self) -> str:
        return f"loitering:{self.zone.id}"

    def update(self, frame: FrameView) -> list[VideoEvent]:
        cfg = self.config
        inside = [t for t in frame.tracks(cfg.classes)
                  if point_in_polygon(foot(t.box), self.zone.polygon)]
        seen_now = frame.ids()
        events = []
        for track in inside:
            visit = self.visits.get(track.track_id)
            if visit is None or frame.ts - visit.last_ts > cfg.grace_s:
                visit = self._handover(track, frame, seen_now) or Visit(
                    enter_ts=frame.ts, enter_seq=frame.seq, last_ts=frame.ts, x=0.0, y=0.0,
                    height_px=1.0, ids=[track.track_id])
                self.visits[track.track_id] = visit
            visit.last_ts = frame.ts
            visit.x, visit.y = foot(track.box)
            visit.height_px = frame.height_px(track.box)
            visit.at_edge = at_edge(track.box)
            visit.score_sum += track.score
            visit.frames += 1
            dwell = frame.ts - visit.enter_ts
            if visit.fired or dwell < cfg.dwell_s or not frame.allows(cfg.schedule):
                continue
            visit.fired = True
            events.append(make_event(
                frame, "loitering", self.zone.id, self.zone.site_zone, track_ids=visit.ids,
                start_seq=visit.enter_seq, start_ts=visit.enter_ts,
                class_name=track.class_name, score=visit.score_sum / visit.frames,
                box=track.box, attributes={"dwell_s": round(dwell, 1),
                                           "track_id": track.track_id}))
        forget(self.visits, frame.ts, cfg.grace_s)
        return events

    def _handover(self, track: Track, frame: FrameView, seen_now: set[int]) -> Visit | None:
        """The visit of a vanished track this new track continues, removed from the table
        and extended with the new id; None when there is none."""
        if self.config.handover <= 0:
            return None
        here = foot(track.box)
        best: tuple[float, int] | None = None
        for tid, visit in self.visits.items():
            if tid in seen_now or tid == track.track_id or visit.at_edge:
                continue
            if frame.ts - visit.last_ts > self.config.grace_s:
                continue
            gap = frame.distance_px(here, (visit.x, visit.y)) / visit.height_px
            if gap <= self.config.handover and (best is None or gap < best[0]):
                best = (gap, tid)
        if best is None:
            return None
        visit = self.visits.pop(best[1])
        visit.ids = [*visit.ids, track.track_id]
        return visit

    def to_dict(self) -> dict[str, Any]:
        return {"visits": dump(self.visits)}

    def load(self, data: dict[str, Any]) -> None:
        self.visits = load(data.get("visits"), Visit)
