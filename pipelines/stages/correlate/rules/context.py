"""What the engine needs to know about a site: timezone, opening hours, positions.

Derived from the topology (:func:`site_contexts`). Sites may carry ``timezone`` (IANA
name, default UTC) and ``opening_hours`` (a list of ``{days, open, close}``); zones,
cameras and sensors may carry ``lat``/``lon`` (default: the site's position). Fields the
topology does not have yet read as their defaults.

>>> ctx = SiteContext(lat=52.37, lon=4.89, timezone="Europe/Amsterdam")
>>> in_range(TimeRange.model_validate({"from": "22:00", "to": "06:00"}), ctx.local(0.0))
True
>>> round(distance_m((52.0, 4.0), (52.0, 4.001)))
68
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from argus.schedule import allows, in_window
from argus.topology import Topology
from pipelines.stages.correlate.rules.model import Schedule, TimeRange

Position = tuple[float, float]
EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class SiteContext:
    """One site as the engine sees it."""

    lat: float
    lon: float
    name: str | None = None
    timezone: str = "UTC"
    opening_hours: tuple[TimeRange, ...] | None = None
    """``None``: no opening hours known, the site counts as always open."""
    zone_names: Mapping[str, str] = field(default_factory=dict)
    positions: Mapping[str, Position] = field(default_factory=dict)
    """``zone:<id>``, ``camera:<id>``, ``sensor:<id>`` → (lat, lon), where known."""

    def local(self, ts: float) -> datetime:
        return datetime.fromtimestamp(ts, ZoneInfo(self.timezone))

    def is_open(self, ts: float) -> bool:
        if self.opening_hours is None:
            return True
        now = self.local(ts)
        return any(in_range(r, now) for r in self.opening_hours)

    def position(self, ev: Mapping[str, Any]) -> Position:
        """Where an event happened: its sensor or camera, else its zone, else the site."""
        keys = [f"sensor:{ev.get('sensor')}", f"camera:{ev.get('camera')}",
                f"zone:{ev.get('zone')}"]
        return next((self.positions[k] for k in keys if k in self.positions), (self.lat, self.lon))


def in_range(r: TimeRange, local: datetime) -> bool:
    """Is the local time inside the range (across midnight included)? See
    ``argus/schedule.py``, which behaviours and opening hours share."""
    return in_window(r.days, r.start, r.end, local)


def schedule_allows(schedule: Schedule | None, ctx: SiteContext, ts: float) -> bool:
    """Does the schedule allow firing at ``ts`` (event time) at this site?"""
    if schedule is None:
        return True
    return allows(schedule.hours, schedule.site, ctx.local(ts), lambda: ctx.is_open(ts))


def distance_m(a: Position, b: Position) -> float:
    """Great-circle (haversine) distance in metres."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def _hours(raw: Any) -> tuple[TimeRange, ...] | None:
    """Opening hours from the topology: ``TimeRange`` items, or items (objects or mappings)
    with ``days`` and ``open``/``close`` (or ``from``/``to``)."""
    if raw is None:
        return None
    out = []
    for item in raw:
        if isinstance(item, TimeRange):
            out.append(item)
            continue
        fields: dict[str, Any] = dict(item) if isinstance(item, Mapping) else {
            k: getattr(item, k, None) for k in ("days", "open", "close")}
        spec: dict[str, Any] = {"from": fields.get("open", fields.get("from")),
                                "to": fields.get("close", fields.get("to"))}
        if fields.get("days") is not None:
            spec["days"] = list(fields["days"])
        out.append(TimeRange.model_validate(spec))
    return tuple(out)


def _position(obj: Any) -> Position | None:
    lat, lon = getattr(obj, "lat", None), getattr(obj, "lon", None)
    return (float(lat), float(lon)) if lat is not None and lon is not None else None


def site_contexts(topology: Topology) -> dict[str, SiteContext]:
    """The context of every site of the topology."""
    out: dict[str, SiteContext] = {}
    for site in topology.sites:
        positions: dict[str, Position] = {}
        things: list[tuple[str, Any]] = [("zone", z) for z in site.zones]
        things += [("camera", c) for c in topology.cameras if c.site == site.id]
        things += [("sensor", s) for s in topology.sensors if s.site == site.id]
        for kind, thing in things:
            pos = _position(thing)
            if pos is not None:
                positions[f"{kind}:{thing.id}"] = pos
        out[site.id] = SiteContext(
            lat=site.lat, lon=site.lon, name=site.name,
            timezone=getattr(site, "timezone", None) or "UTC",
            opening_hours=_hours(getattr(site, "opening_hours", None)),
            zone_names={z.id: z.name or z.id for z in site.zones},
            positions=positions,
        )
    return out
