"""People and vehicle counting, the pure logic: one :class:`CameraCounter` per camera.

Every zone and every line (tripwire) of the camera is an *area*. Confirmed tracks of a
class group (``people``: person; ``vehicles``: car, truck, bus, motorcycle, bicycle) are
counted at their foot point (box bottom centre, as everywhere in Argus):

* **zone**: an *entry* is a track going from outside the polygon to inside, an *exit*
  from inside to outside. A foot point closer than ``zone_margin`` to the polygon's edge
  changes nothing (jitter on the edge is not a crossing). With ``appearances`` (default),
  a track first seen inside also counts as an entry and a track last seen inside that is
  then not seen for ``forget_s`` counts as an exit (zones that reach the image border:
  people walk in from outside the view). *Occupancy* is the confirmed tracks inside in the
  latest frame, *max occupancy* the most at once in the window;
* **line**: a crossing ``a_to_b`` is an entry, ``b_to_a`` an exit (the geometry of
  :func:`argus.geometry.side_of` / :func:`argus.geometry.crosses_segment`, as the
  ``line_crossing`` behaviour; a foot point within the line's ``margin`` is on no side).

Windows follow capture time: ``floor(capture_ts / window_s) * window_s``. The first
frame of a later window closes the current one: :meth:`CameraCounter.update` returns one
:class:`~schemas.counts.Counts` per area for it, then counts the frame in the new window.
A frame not newer than the last one (a replay) changes nothing. The state is JSON-safe
(:meth:`CameraCounter.to_dict`) for the stage's ``counting-state`` table, which
:func:`save_due` says when to write.

>>> from argus.topology import parse_topology
>>> topo = parse_topology('''
... sites: [{id: s, lat: 0, lon: 0}]
... cameras:
...   - {id: cam, site: s, source: x,
...      zones: [{id: floor, polygon: [[0, .5], [1, .5], [1, 1], [0, 1]]}]}
... ''', "t.yaml")
>>> counter = CameraCounter(topo.cameras[0], "s", DEFAULT_GROUPS, window_s=60)
>>> from schemas.tracks import Tracks
>>> frame = Tracks(camera_id="cam", seq=1, capture_ts=120.0, width=4, height=3, tracks=[])
>>> counter.update(frame).occupancy
{'floor': {'people': 0, 'vehicles': 0}}
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from argus.behaviours import Line
from argus.geometry import (
    Point,
    crosses_segment,
    distance_to_boundary,
    point_in_polygon,
    side_of,
)
from argus.topology import Camera, CameraZone
from schemas.counts import AreaType, Counts, GroupCounts
from schemas.tracks import Tracks

DEFAULT_GROUPS: dict[str, list[str]] = {
    "people": ["person"],
    "vehicles": ["car", "truck", "bus", "motorcycle", "bicycle"],
}
Direction = Literal["in", "out"]
Tallies = tuple[tuple[int, int, int], ...]
"""(entries, exits, max occupancy) of every area and group in the current window."""


@dataclass(frozen=True)
class Crossing:
    """A track counted into (``in``) or out of (``out``) an area in this frame."""

    area: str
    area_type: AreaType
    group: str
    direction: Direction
    track_id: int


@dataclass
class Tally:
    """An area's counts of one group in the current window."""

    entries: int = 0
    exits: int = 0
    max_occupancy: int = 0


@dataclass
class Seen:
    """Where a track was last decided to be: ``in``/``out`` of a zone, side ``a``/``b`` of
    a line (with the foot point of that decision), and when it was last seen."""

    where: str
    x: float
    y: float
    ts: float
    group: str


class AreaCounter:
    """What zones and lines share: per-group tallies and per-track positions."""

    area_type: AreaType

    def __init__(self, area_id: str, site_zone: str | None, groups: Sequence[str]) -> None:
        self.id = area_id
        self.site_zone = site_zone
        self.groups = list(groups)
        self.tallies = {g: Tally() for g in self.groups}
        self.tracks: dict[int, Seen] = {}

    def observe(self, track_id: int, group: str, point: Point, ts: float) -> Direction | None:
        """Record the track's foot point; the direction if it was counted in or out."""
        raise NotImplementedError

    def count(self, group: str, direction: Direction) -> None:
        tally = self.tallies[group]
        if direction == "in":
            tally.entries += 1
        else:
            tally.exits += 1

    def forget(self, now: float, forget_s: float) -> Iterator[tuple[int, str, Direction]]:
        """Drop the tracks not seen for ``forget_s``; those that count as leaving."""
        for track_id, seen in list(self.tracks.items()):
            if now - seen.ts > forget_s:
                del self.tracks[track_id]
                if self.leaves_when_forgotten(seen):
                    yield track_id, seen.group, "out"

    def leaves_when_forgotten(self, seen: Seen) -> bool:
        return False

    def occupancy(self) -> dict[str, int] | None:
        return None

    def group_counts(self) -> dict[str, GroupCounts]:
        occupancy = self.occupancy()
        return {g: GroupCounts(
            entries=t.entries, exits=t.exits,
            occupancy=None if occupancy is None else occupancy[g],
            max_occupancy=None if occupancy is None else t.max_occupancy)
            for g, t in self.tallies.items()}

    def new_window(self) -> None:
        self.tallies = {g: Tally() for g in self.groups}

    def to_dict(self) -> dict[str, Any]:
        return {"tallies": {g: [t.entries, t.exits, t.max_occupancy]
                            for g, t in self.tallies.items()},
                "tracks": {str(tid): [s.where, s.x, s.y, s.ts, s.group]
                           for tid, s in self.tracks.items()}}

    def load(self, data: Mapping[str, Any]) -> None:
        for group, (entries, exits, most) in (data.get("tallies") or {}).items():
            if group in self.tallies:
                self.tallies[group] = Tally(entries, exits, most)
        self.tracks = {int(tid): Seen(where, x, y, ts, group)
                       for tid, (where, x, y, ts, group) in (data.get("tracks") or {}).items()
                       if group in self.tallies}


class ZoneCounter(AreaCounter):
    area_type: AreaType = "zone"

    def __init__(self, zone: CameraZone, groups: Sequence[str], margin: float,
                 appearances: bool) -> None:
        super().__init__(zone.id, zone.site_zone, groups)
        self.polygon = list(zone.polygon)
        self.margin = margin
        self.appearances = appearances
        self.inside_now = {g: 0 for g in self.groups}

    def observe(self, track_id: int, group: str, point: Point, ts: float) -> Direction | None:
        before = self.tracks.get(track_id)
        if before is not None and distance_to_boundary(point, self.polygon) < self.margin:
            before.ts, before.group = ts, group  # on the edge: no decision, still here
            direction: Direction | None = None
        else:
            where = "in" if point_in_polygon(point, self.polygon) else "out"
            self.tracks[track_id] = Seen(where, point[0], point[1], ts, group)
            if before is None:
                direction = "in" if where == "in" and self.appearances else None
            elif before.where == where:
                direction = None
            else:
                direction = "in" if where == "in" else "out"
        if direction is not None:
            self.count(group, direction)
        if self.tracks[track_id].where == "in":
            self.inside_now[group] += 1
        return direction

    def leaves_when_forgotten(self, seen: Seen) -> bool:
        return self.appearances and seen.where == "in"

    def start_frame(self) -> None:
        self.inside_now = {g: 0 for g in self.groups}

    def end_frame(self) -> None:
        for group, n in self.inside_now.items():
            tally = self.tallies[group]
            tally.max_occupancy = max(tally.max_occupancy, n)

    def occupancy(self) -> dict[str, int]:
        return dict(self.inside_now)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "inside": dict(self.inside_now)}

    def load(self, data: Mapping[str, Any]) -> None:
        super().load(data)
        inside = data.get("inside") or {}
        self.inside_now = {g: int(inside.get(g, 0)) for g in self.groups}


class LineCounter(AreaCounter):
    area_type: AreaType = "line"

    def __init__(self, line: Line, groups: Sequence[str]) -> None:
        super().__init__(line.id, line.site_zone, groups)
        self.points = line.points
        self.margin = line.margin

    def observe(self, track_id: int, group: str, point: Point, ts: float) -> Direction | None:
        before = self.tracks.get(track_id)
        side = side_of(point, self.points, self.margin)
        if side is None:  # on the line: no side, still here
            if before is not None:
                before.ts = ts
            return None
        self.tracks[track_id] = Seen(side, point[0], point[1], ts, group)
        if before is None or before.where == side:
            return None
        if not crosses_segment((before.x, before.y), point, self.points, self.margin):
            return None  # went around the end of the line
        direction: Direction = "in" if side == "b" else "out"  # a_to_b = in
        self.count(group, direction)
        return direction


@dataclass(frozen=True)
class FrameResult:
    """What one frame changed: the windows it closed, the tracks counted in or out, and
    the occupancy of each zone per group now."""

    closed: list[Counts]
    crossings: list[Crossing]
    occupancy: dict[str, dict[str, int]]


class CameraCounter:
    """The counts of every area of one camera (see the module docstring)."""

    def __init__(self, camera: Camera, site_id: str, groups: Mapping[str, Sequence[str]],
                 window_s: float = 60.0, forget_s: float = 10.0, zone_margin: float = 0.01,
                 appearances: bool = True) -> None:
        self.camera_id = camera.id
        self.site_id = site_id
        self.window_s = window_s
        self.forget_s = forget_s
        names = list(groups)
        self.group_of: dict[str, str] = {}
        for group, classes in groups.items():
            for cls in classes:
                self.group_of.setdefault(cls, group)
        self.zones = [ZoneCounter(z, names, zone_margin, appearances) for z in camera.zones]
        self.lines = [LineCounter(line, names) for line in camera.lines]
        self.window_start: float | None = None
        self.frames = 0
        self.last_seq = 0
        self.last_ts: float | None = None

    @property
    def areas(self) -> list[AreaCounter]:
        return [*self.zones, *self.lines]

    def window_of(self, ts: float) -> float:
        """The start of the window holding capture time ``ts`` (windows are aligned on
        multiples of ``window_s``: minutes of the clock for 60 s)."""
        return math.floor(ts / self.window_s) * self.window_s

    def update(self, frame: Tracks) -> FrameResult | None:
        """Count one frame; None for a frame not newer than the last (nothing changes)."""
        ts = frame.capture_ts
        if self.last_ts is not None and ts <= self.last_ts:
            return None
        start = self.window_of(ts)
        closed: list[Counts] = []
        if self.window_start is not None and start > self.window_start:
            closed = self.close()
        if self.window_start is None or start > self.window_start:
            self.window_start, self.frames = start, 0
            for area in self.areas:
                area.new_window()
        crossings: list[Crossing] = []
        for area in self.areas:
            for track_id, group, direction in area.forget(ts, self.forget_s):
                area.count(group, direction)
                crossings.append(Crossing(area.id, area.area_type, group, direction, track_id))
        for zone in self.zones:
            zone.start_frame()
        for track in frame.confirmed():
            kind = self.group_of.get(track.class_name)
            if kind is None:
                continue
            point = track.box.bottom_centre
            for area in self.areas:
                moved = area.observe(track.track_id, kind, point, ts)
                if moved is not None:
                    crossings.append(Crossing(area.id, area.area_type, kind, moved,
                                              track.track_id))
        for zone in self.zones:
            zone.end_frame()
        self.frames += 1
        self.last_seq, self.last_ts = frame.seq, ts
        return FrameResult(closed, crossings, {z.id: z.occupancy() for z in self.zones})

    def close(self) -> list[Counts]:
        """The counts of the current window, one message per area."""
        assert self.window_start is not None and self.last_ts is not None
        return [Counts(camera_id=self.camera_id, site_id=self.site_id,
                       area_type=area.area_type, area_id=area.id, site_zone_id=area.site_zone,
                       window_start=self.window_start,
                       window_end=self.window_start + self.window_s, frames=self.frames,
                       last_seq=self.last_seq, last_ts=self.last_ts,
                       groups=area.group_counts())
                for area in self.areas]

    def tallies(self) -> Tallies:
        """The current window's counts, to compare (see :func:`save_due`)."""
        return tuple((t.entries, t.exits, t.max_occupancy)
                     for area in self.areas for t in area.tallies.values())

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe state (for the ``counting-state`` table)."""
        return {"window_start": self.window_start, "frames": self.frames,
                "last_seq": self.last_seq, "last_ts": self.last_ts,
                "areas": {area.id: area.to_dict() for area in self.areas}}

    def load(self, data: Mapping[str, Any]) -> None:
        """Restore :meth:`to_dict`'s state (areas no longer in the topology are dropped,
        new ones start empty)."""
        self.window_start = data.get("window_start")
        self.frames = int(data.get("frames") or 0)
        self.last_seq = int(data.get("last_seq") or 0)
        self.last_ts = data.get("last_ts")
        areas = data.get("areas") or {}
        for area in self.areas:
            if area.id in areas:
                area.load(areas[area.id])


@dataclass(frozen=True)
class Saved:
    """A camera's state as the stage last wrote it to (or read it from) its table: the
    ``last_ts`` and the tallies."""

    last_ts: float | None
    tallies: Tallies

    @classmethod
    def of(cls, counter: CameraCounter) -> Saved:
        return cls(counter.last_ts, counter.tallies())


def save_due(saved: Saved | None, now: Saved, closed: bool, every_s: float) -> bool:
    """Whether the stage writes the camera's state now (``now``, after a frame): when it
    wrote none yet, the frame closed a window, the counts changed, or ``every_s`` of
    capture time passed since the last write (``saved``). In between, only track
    positions change.

    >>> saved = Saved(100.0, ((1, 0, 1),))
    >>> save_due(saved, Saved(104.0, ((1, 0, 1),)), closed=False, every_s=5.0)
    False
    >>> save_due(saved, Saved(104.0, ((1, 1, 1),)), closed=False, every_s=5.0)
    True
    """
    if saved is None or closed or now.tallies != saved.tallies:
        return True
    if saved.last_ts is None or now.last_ts is None:
        return True
    return now.last_ts - saved.last_ts >= every_s
