"""What the engine needs to know about a site: timezone, opening hours, positions.

Derived from the topology (:func:`site_contexts`). Sites may carry ``timezone`` (IANA
name, default UTC) and ``opening_hours`` (a list of ``{days, open, close}``); zones,
cameras and sensors may carry ``lat``/``lon`` (default: the site's position). Fields the
topology does not have yet read as their defaults.

>>> from argus.schedule import TimeWindow
>>> ctx = SiteContext(lat=52.37, lon=4.89, timezone="Europe/Amsterdam")
>>> in_any([TimeWindow.model_validate({"from": "22:00", "to": "06:00"})], ctx.local(0.0))
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

from argus.schedule import Schedule, Window, allows, in_any
from argus.topology import OpeningHours, Topology

Position = tuple[float, float]
EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class SiteContext:
    """One site as the engine sees it."""

    lat: float
    lon: float
    name: str | None = None
    timezone: str = "UTC"
    opening_hours: tuple[Window, ...] | None = None
    """``None``: no opening hours known, the site counts as always open. The topology's
    ``OpeningHours``, or (tests, evaluations) any window, e.g. a ``TimeWindow``."""
    zone_names: Mapping[str, str] = field(default_factory=dict)
    positions: Mapping[str, Position] = field(default_factory=dict)
    """``zone:<id>``, ``camera:<id>``, ``sensor:<id>`` → (lat, lon), where known."""

    def local(self, ts: float) -> datetime:
        return datetime.fromtimestamp(ts, ZoneInfo(self.timezone))

    def is_open(self, ts: float) -> bool:
        return self.opening_hours is None or in_any(self.opening_hours, self.local(ts))

    def position(self, ev: Mapping[str, Any]) -> Position:
        """Where an event happened: its sensor or camera, else its zone, else the site."""
        keys = [f"sensor:{ev.get('sensor')}", f"camera:{ev.get('camera')}",
                f"zone:{ev.get('zone')}"]
        return next((self.positions[k] for k in keys if k in self.positions), (self.lat, self.lon))


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


def _hours(raw: Any) -> tuple[OpeningHours, ...] | None:
    """A site's opening hours: its ``OpeningHours`` (objects or mappings with ``days``,
    ``open`` and ``close`` are validated as one)."""
    if raw is None:
        return None
    return tuple(OpeningHours.model_validate(item, from_attributes=True) for item in raw)


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
