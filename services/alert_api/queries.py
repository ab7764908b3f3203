"""Reading alerts from Redis with filters: site, severity, state, bounding box, time.

The smallest index answers first (the site's set, one severity's set, or the global
active set, bounded by ``since``/``until`` on last seen; the resolved set for resolved
alerts), the geo index narrows a bounding box, and ``AlertQuery.matches`` checks every
filter exactly on the alerts themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import redis.asyncio as aioredis

from argus.stores import alerts as alert_sink
from schemas.alerts import ACTIVE_STATES, Alert, AlertState, Severity

MAX_SCAN = 10_000
"""Candidate ids read per query at most (the live picture of a city is far smaller)."""
EARTH_RADIUS_KM = 6372.797560856  # the radius Redis uses for geo distances
_GEO_MARGIN = 1.01


def parse_time(text: str) -> float:
    """Unix seconds, or an ISO 8601 time (UTC unless it says otherwise).

    >>> parse_time("1700000000.5"), parse_time("2023-11-14T22:13:20Z")
    (1700000000.5, 1700000000.0)
    """
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a Unix time or ISO 8601 time: {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.now().astimezone().tzinfo).astimezone()
    return when.timestamp()


@dataclass(frozen=True)
class BBox:
    """A lon/lat box (no antimeridian crossing)."""

    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float

    @classmethod
    def parse(cls, text: str) -> BBox:
        """``minLon,minLat,maxLon,maxLat``.

        >>> BBox.parse("2.2,48.8,2.4,48.9")
        BBox(min_lon=2.2, min_lat=48.8, max_lon=2.4, max_lat=48.9)
        """
        parts = text.split(",")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 4 or not all(math.isfinite(v) for v in values):
            raise ValueError(f"bbox must be minLon,minLat,maxLon,maxLat; got {text!r}")
        box = cls(*values)
        if not (-180 <= box.min_lon <= box.max_lon <= 180):
            raise ValueError("bbox longitudes must satisfy -180 <= minLon <= maxLon <= 180")
        if not (-90 <= box.min_lat <= box.max_lat <= 90):
            raise ValueError("bbox latitudes must satisfy -90 <= minLat <= maxLat <= 90")
        return box

    def contains(self, lat: float, lon: float) -> bool:
        return self.min_lon <= lon <= self.max_lon and self.min_lat <= lat <= self.max_lat

    def search_box(self) -> tuple[float, float, float, float] | None:
        """(center lon, center lat, width km, height km) of a ``GEOSEARCH BYBOX`` that covers
        this box, or None if the box is too large for one (then no geo pre-filter).

        Redis measures a point's east-west offset along the point's own parallel, so the
        width is taken where the box is widest: the latitude nearest the equator.
        """
        if self.max_lon - self.min_lon > 90 or self.max_lat - self.min_lat > 60:
            return None
        widest_lat = 0.0 if self.min_lat <= 0 <= self.max_lat else min(
            abs(self.min_lat), abs(self.max_lat))
        half_dlon = math.radians(self.max_lon - self.min_lon) / 2
        half_width = EARTH_RADIUS_KM * 2 * math.asin(
            min(1.0, math.cos(math.radians(widest_lat)) * math.sin(half_dlon / 2)))
        half_height = EARTH_RADIUS_KM * math.radians(self.max_lat - self.min_lat) / 2
        center_lon = (self.min_lon + self.max_lon) / 2
        center_lat = (self.min_lat + self.max_lat) / 2
        return (center_lon, center_lat, max(2 * half_width * _GEO_MARGIN, 0.001),
                max(2 * half_height * _GEO_MARGIN, 0.001))


@dataclass(frozen=True)
class AlertQuery:
    """Filters of ``GET /v1/alerts`` (all optional; the default is every active alert)."""

    site: str | None = None
    zone: str | None = None
    rule: str | None = None
    severities: frozenset[Severity] = frozenset()
    states: frozenset[AlertState] = field(default_factory=lambda: ACTIVE_STATES)
    bbox: BBox | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 100
    order: Literal["time", "severity"] = "time"

    def matches(self, alert: Alert) -> bool:
        """Whether ``alert`` passes every filter (``since``/``until`` bound last seen)."""
        return (alert.state in self.states
                and self.site in (None, alert.site_id)
                and self.zone in (None, alert.zone_id)
                and self.rule in (None, alert.rule)
                and (not self.severities or alert.severity in self.severities)
                and (self.bbox is None or self.bbox.contains(alert.lat, alert.lon))
                and (self.since is None or alert.last_seen >= self.since)
                and (self.until is None or alert.last_seen <= self.until))

    def sort_key(self, alert: Alert) -> tuple[float, ...]:
        """Newest first, or most severe first (then newest)."""
        if self.order == "severity":
            return (-alert.severity.rank, -alert.last_seen)
        return (-alert.last_seen,)


def _text(value: object) -> str:
    """A member as text (Redis answers bytes unless the client decodes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


async def _candidates(client: aioredis.Redis, query: AlertQuery) -> list[str]:
    ids: list[str] = []
    if query.states & ACTIVE_STATES:
        if query.site:
            index = alert_sink.site_active_key(query.site)
        elif len(query.severities) == 1:
            index = alert_sink.severity_active_key(next(iter(query.severities)))
        else:
            index = alert_sink.ACTIVE
        top = "+inf" if query.until is None else query.until
        bottom = "-inf" if query.since is None else query.since
        active = [_text(i) for i in await client.zrevrangebyscore(
            index, top, bottom, start=0, num=MAX_SCAN)]
        box = query.bbox.search_box() if query.bbox else None
        if box is not None:
            lon, lat, width, height = box
            near = {_text(i) for i in await client.geosearch(
                alert_sink.GEO, longitude=lon, latitude=lat, width=width, height=height,
                unit="km")}
            active = [i for i in active if i in near]
        ids += active
    if AlertState.RESOLVED in query.states:
        ids += [_text(i) for i in await client.zrevrange(alert_sink.RESOLVED, 0, MAX_SCAN - 1)]
    return list(dict.fromkeys(ids))


async def fetch(client: aioredis.Redis, alert_ids: list[str], site_id: str | None = None
                ) -> list[Alert]:
    """The stored alerts of ``alert_ids`` (in order); ids whose alert expired are pruned
    from the indexes."""
    async with client.pipeline(transaction=False) as pipe:
        for alert_id in alert_ids:
            pipe.hget(alert_sink.alert_key(alert_id), "json")
        texts = await pipe.execute()
    alerts = [Alert.model_validate_json(t) for t in texts if t]
    missing = [i for i, t in zip(alert_ids, texts, strict=True) if not t]
    await alert_sink.prune(client, missing, site_id)
    return alerts


async def list_alerts(client: aioredis.Redis, query: AlertQuery) -> list[Alert]:
    """The alerts that match ``query``, sorted and limited."""
    ids = await _candidates(client, query)
    alerts = [a for a in await fetch(client, ids, query.site) if query.matches(a)]
    return sorted(alerts, key=query.sort_key)[:query.limit]
