"""Crowd gathering: ``count`` people or more in a zone, or in one group of people standing
within ``radius`` box heights of a neighbour, for ``hold_s`` seconds.

With ``within_s``, only a *gathering* fires: the count must have risen by ``rise`` people
within the last ``within_s`` seconds (a sliding-window minimum), so a place that is always
busy stays quiet. One event per occurrence; it ends when the count has stayed below
``count`` for ``hold_s``.

>>> group_sizes([(0.1, 0.5), (0.12, 0.5), (0.8, 0.5)], [100.0] * 3, 640, 360, 0.5)
[2, 1]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from argus.behaviours import Crowd as CrowdConfig
from argus.geometry import point_in_polygon
from argus.topology import CameraZone
from pipelines.stages.behaviour.base import FrameView, Point, foot, make_event, union
from schemas.events import VideoEvent
from schemas.tracks import Track


def groups(points: Sequence[Point], heights_px: Sequence[float], width: int, height: int,
           radius: float) -> list[list[int]]:
    """Indices of ``points`` grouped by single linkage: two people are neighbours when
    their foot points are within ``radius`` times their mean box height (pixels). Largest
    group first."""
    parent = list(range(len(points)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(points)):
        for j in range(i + 1, len(points)):
            gap = math.hypot((points[i][0] - points[j][0]) * width,
                             (points[i][1] - points[j][1]) * height)
            if gap <= radius * (heights_px[i] + heights_px[j]) / 2.0:
                parent[root(i)] = root(j)
    out: dict[int, list[int]] = {}
    for i in range(len(points)):
        out.setdefault(root(i), []).append(i)
    return sorted(out.values(), key=len, reverse=True)


def group_sizes(points: Sequence[Point], heights_px: Sequence[float], width: int, height: int,
                radius: float) -> list[int]:
    return [len(g) for g in groups(points, heights_px, width, height, radius)]


@dataclass
class CrowdState:
    """The zone's occurrence and the sliding-window minimum of its count."""

    above_ts: float | None = None
    above_seq: int = 0
    below_ts: float | None = None
    fired: bool = False
    window: list[list[float]] = field(default_factory=list)
    """``[ts, count]`` with increasing counts: ``window[0]`` is the minimum."""


class Crowd:
    kind = "crowd"

    def __init__(self, zone: CameraZone, config: CrowdConfig) -> None:
        self.zone = zone
        self.config = config
        self.state = CrowdState()

    @property
    def key(self) -> str:
        return f"crowd:{self.zone.id}"

    def crowd(self, frame: FrameView) -> list[Track]:
        """The people counted now: all in the zone, or its largest group."""
        people = [t for t in frame.tracks(self.config.classes)
                  if point_in_polygon(foot(t.box), self.zone.polygon)]
        if self.config.radius is None or not people:
            return people
        biggest = groups([foot(t.box) for t in people], [frame.height_px(t.box) for t in people],
                         frame.message.width, frame.message.height, self.config.radius)[0]
        return [people[i] for i in biggest]

    def _rose(self, ts: float, count: int) -> bool:
        """Record ``count`` and say whether it rose enough within ``within_s``."""
        cfg, window = self.config, self.state.window
        if cfg.within_s is None:
            return True
        while window and window[-1][1] >= count:
            window.pop()
        window.append([ts, float(count)])
        while window and window[0][0] < ts - cfg.within_s:
            window.pop(0)
        return count - window[0][1] >= cfg.needed_rise()

    def update(self, frame: FrameView) -> list[VideoEvent]:
        cfg, st = self.config, self.state
        people = self.crowd(frame)
        count = len(people)
        rose = self._rose(frame.ts, count)
        if count < cfg.count:
            if st.below_ts is None:
                st.below_ts = frame.ts
            if st.above_ts is not None and frame.ts - st.below_ts >= cfg.hold_s:
                st.above_ts, st.fired = None, False
            return []
        st.below_ts = None
        if st.above_ts is None:
            st.above_ts, st.above_seq = frame.ts, frame.seq
        if st.fired or frame.ts - st.above_ts < cfg.hold_s or not rose:
            return []
        if not frame.allows(cfg.schedule):
            return []
        st.fired = True
        attributes: dict[str, str | int | float | bool] = {"people": count}
        if cfg.radius is not None:
            attributes["radius"] = cfg.radius
        return [make_event(
            frame, "crowd", self.zone.id, self.zone.site_zone,
            track_ids=sorted(t.track_id for t in people), start_seq=st.above_seq,
            start_ts=st.above_ts, class_name=people[0].class_name,
            score=sum(t.score for t in people) / count, box=union(t.box for t in people),
            count=count, attributes=attributes)]

    def to_dict(self) -> dict[str, Any]:
        st = self.state
        return {"above_ts": st.above_ts, "above_seq": st.above_seq, "below_ts": st.below_ts,
                "fired": st.fired, "window": st.window}

    def load(self, data: dict[str, Any]) -> None:
        self.state = CrowdState(
            above_ts=data.get("above_ts"), above_seq=int(data.get("above_seq", 0)),
            below_ts=data.get("below_ts"), fired=bool(data.get("fired", False)),
            window=[list(item) for item in data.get("window", [])])
