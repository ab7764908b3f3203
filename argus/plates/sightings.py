"""Plate sightings for cross-camera search: sealed records, keyed indexes, retention, audit.

Every ``events.plate`` the plate stage publishes is kept as one *sighting* (:meth:`add`,
one pipelined transaction), so an operator can trace a vehicle across cameras
(:meth:`SightingStore.search`). Plates are personal data, so sightings are kept the way the
hotlists keep plates (``argus/plates/hotlist.py``):

* the record (plate, camera, site, position, time, vehicle, snapshot ref, list hits, the
  event id) is sealed with AES-GCM under the plate key's sealing sub-key, the sighting id as
  associated data; the sighting id is a keyed hash of the event id (the event id hashes the
  plate without a key, so it is never stored in clear);
* indexes hold sighting ids scored by capture time: every sighting, per site, per plate
  (the plate's keyed hash :meth:`PlateKeys.tag`: an exact search reads only that plate's
  records) and per OCR-confusion class (:meth:`PlateKeys.fuzzy_tag`);
* a record expires ``retention_s`` after its capture time (Redis TTL); each add trims the
  index entries it touches that are older than that, and the indexes themselves expire when
  nothing is added for that long;
* every search is appended to ``<prefix>audit:plates`` (who, when, the pattern's keyed hash
  and its shape such as ``AA99*``, the window, the site, the result count; never the plate).

Searching: a pattern without wildcards is looked up through the keyed hashes (fuzzy: the
plate's confusion class and its ~500 one-edit neighbours), so only matching records are
decrypted. A wildcard pattern cannot use a keyed hash: the records of the window (the site's
index when a site is given, newest first) are decrypted and matched, at most ``scan_cap`` of
them per search (:attr:`SightingSearch.truncated` says when the cap stopped it).

Redis layout (``prefix`` = ``argus:``): ``plates:sighting:<id>`` sealed record (string, TTL),
``plates:sightings:all`` / ``plates:sightings:site:<site>`` / ``plates:sightings:tag:<tag>`` /
``plates:sightings:fuzzy:<fuzzy tag>`` sorted sets of ids scored by capture time.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis
from pydantic import BaseModel, ConfigDict, Field

from argus.plates.hotlist import PlateKeys
from argus.plates.patterns import PlatePattern, neighbours
from argus.topology import Topology
from argus.watchlist.crypto import WatchlistKeyError, seal, unseal
from schemas.plates import PlateColour, PlateEvent, PlateHit

DEFAULT_RETENTION_S = 30 * 86400.0
SCAN_CAP = 20_000
"""At most this many records are decrypted by one search."""
BATCH = 500
AUDIT_RETENTION_S = 365 * 86400
Locate = Callable[[str], tuple[float, float] | None]
"""Camera id → (lat, lon) of where it is, or None when unknown."""


class Sighting(BaseModel):
    """One plate seen by one camera (a stored ``events.plate``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sighting_id: str = Field(description="Keyed hash of the event id")
    event_id: str
    ts: float = Field(description="Capture time (Unix s)")
    camera_id: str
    site_id: str
    lat: float | None = Field(default=None, description="The camera's site, when known")
    lon: float | None = None
    plate: str = Field(description="The normalised plate as read")
    format_id: str
    confidence: float
    vehicle_class: str
    colour: PlateColour
    direction_deg: float | None = None
    speed: float = 0.0
    snapshot_ref: str | None = None
    hits: list[PlateHit] = Field(default_factory=list,
                                 description="Hotlists and allow lists the plate was on")
    distance: int = Field(default=0, description="Edits from the search pattern (0: exact)")


@dataclass(frozen=True)
class SightingSearch:
    """What a search found, newest first."""

    sightings: list[Sighting]
    scanned: int
    """Records decrypted."""
    truncated: bool
    """The scan cap was reached before the window's end: narrow the window or the site."""
    unreadable: int = 0
    """Records that did not decrypt (sealed under another key) and were skipped."""


def topology_locator(topology: Topology) -> Locate:
    """A :data:`Locate` giving each camera its site's position."""
    sites = {site.id: (site.lat, site.lon) for site in topology.sites}
    cameras = {camera.id: sites[camera.site] for camera in topology.cameras}
    return cameras.get


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class SightingStore:
    """Plate sightings in Redis (sync client; the stage calls :meth:`add` in a thread)."""

    def __init__(self, client: redis.Redis, keys: PlateKeys, prefix: str = "argus:",
                 retention_s: float = DEFAULT_RETENTION_S, locate: Locate | None = None,
                 scan_cap: int = SCAN_CAP) -> None:
        if retention_s <= 0:
            raise ValueError("retention_s must be positive")
        self.redis, self.keys, self.prefix = client, keys, prefix
        self.retention_s, self.locate, self.scan_cap = retention_s, locate, scan_cap
        self.audit_stream = f"{prefix}audit:plates"

    def _k(self, *parts: str) -> str:
        return self.prefix + "plates:" + ":".join(parts)

    def _hash(self, label: bytes, text: str) -> str:
        return hmac.new(self.keys.lookup, label + text.encode(), hashlib.sha256).hexdigest()[:32]

    def sighting_id(self, event_id: str) -> str:
        """The id a plate event is stored under (a keyed hash: redelivery overwrites)."""
        return self._hash(b"sighting:", event_id)

    def _indexes(self, site_id: str, plate: str) -> list[str]:
        return [self._k("sightings", "all"), self._k("sightings", "site", site_id),
                self._k("sightings", "tag", self.keys.tag(plate)),
                self._k("sightings", "fuzzy", self.keys.fuzzy_tag(plate))]

    def add(self, event: PlateEvent) -> str:
        """Keep one plate event (one Redis round trip); returns its sighting id. An event
        already older than the retention is not kept."""
        sid = self.sighting_id(event.event_id)
        now = time.time()
        expires = event.ts + self.retention_s
        if expires <= now:
            return sid
        where = self.locate(event.camera_id) if self.locate is not None else None
        record = Sighting(
            sighting_id=sid, event_id=event.event_id, ts=event.ts, camera_id=event.camera_id,
            site_id=event.site_id, lat=where[0] if where else None,
            lon=where[1] if where else None, plate=event.text, format_id=event.format_id,
            confidence=event.confidence, vehicle_class=event.vehicle_class,
            colour=event.colour, direction_deg=event.direction_deg, speed=event.speed,
            snapshot_ref=event.snapshot_ref, hits=list(event.hits))
        blob = seal(self.keys.sealing, f"sighting:{sid}",
                    record.model_dump_json(exclude={"distance"}).encode())
        cutoff = f"({now - self.retention_s:.3f}"
        keep = int(self.retention_s) + 1
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self._k("sighting", sid), blob, exat=int(expires) + 1)
        for index in self._indexes(event.site_id, event.text):
            pipe.zadd(index, {sid: event.ts})
            pipe.zremrangebyscore(index, "-inf", cutoff)
            pipe.expire(index, keep)
        pipe.execute()
        return sid

    def _open(self, sid: str, blob: bytes) -> Sighting:
        return Sighting.model_validate_json(unseal(self.keys.sealing, f"sighting:{sid}", blob))

    def get(self, sighting_id: str) -> Sighting | None:
        """One sighting by id (None: never kept, or expired)."""
        blob: Any = self.redis.get(self._k("sighting", sighting_id))
        return None if blob is None else self._open(sighting_id, bytes(blob))

    def search(self, pattern: str, since: float | None = None, until: float | None = None,
               site: str | None = None, fuzzy: bool = False, limit: int = 100,
               actor: str = "unattributed") -> list[Sighting]:
        """Sightings whose plate matches ``pattern`` (:mod:`argus.plates.patterns`), newest
        first; see :meth:`query` (audited)."""
        return self.query(pattern, since, until, site, fuzzy, limit, actor).sightings

    def query(self, pattern: str, since: float | None = None, until: float | None = None,
              site: str | None = None, fuzzy: bool = False, limit: int = 100,
              actor: str = "unattributed") -> SightingSearch:
        """Search and say how much was decrypted; appended to the audit stream.
        :class:`~argus.plates.patterns.PatternError` for a pattern that cannot be used."""
        parsed = PlatePattern.parse(pattern)
        if limit < 1:
            raise ValueError("limit must be at least 1")
        now = time.time()
        low = max(since if since is not None else 0.0, now - self.retention_s)
        high = until if until is not None else float("inf")
        if parsed.literal:
            result = self._collect(self._candidates(parsed, low, high, fuzzy), parsed, site,
                                   fuzzy, limit)
        else:
            result = self._collect(self._window(low, high, site), parsed, site, fuzzy, limit)
        self._audit(actor, parsed, low, until, site, fuzzy, result)
        return result

    def _candidates(self, pattern: PlatePattern, low: float, high: float,
                    fuzzy: bool) -> Iterable[str]:
        """Ids under the plate's keyed hashes within the window, newest first."""
        tags = {pattern.text} | (neighbours(pattern.text) if fuzzy else set())
        keys = [self._k("sightings", "tag", self.keys.tag(t)) for t in sorted(tags)]
        if fuzzy:
            keys.append(self._k("sightings", "fuzzy", self.keys.fuzzy_tag(pattern.text)))
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.zrangebyscore(key, low, high, withscores=True)
        found: dict[str, float] = {}
        for rows in pipe.execute():
            for member, score in rows:
                found[_text(member)] = float(score)
        return sorted(found, key=lambda sid: (-found[sid], sid))

    def _window(self, low: float, high: float, site: str | None) -> Iterable[str]:
        """Ids of the window (the site's when given), newest first, paged."""
        index = self._k("sightings", "site", site) if site else self._k("sightings", "all")
        offset = 0
        while True:
            page: list[Any] = list(self.redis.zrevrangebyscore(
                index, high, low, start=offset, num=BATCH))
            yield from (_text(member) for member in page)
            if len(page) < BATCH:
                return
            offset += BATCH

    def _collect(self, ids: Iterable[str], pattern: PlatePattern, site: str | None,
                 fuzzy: bool, limit: int) -> SightingSearch:
        found: list[Sighting] = []
        scanned = unreadable = 0
        iterator = iter(ids)
        while True:
            batch = [sid for _, sid in zip(range(min(BATCH, self.scan_cap - scanned)),
                                           iterator, strict=False)]
            if not batch:
                break
            blobs: list[Any] = list(self.redis.mget(
                [self._k("sighting", sid) for sid in batch]))
            for sid, blob in zip(batch, blobs, strict=True):
                if blob is None:
                    continue  # expired, its index entry not yet trimmed
                scanned += 1
                try:
                    sighting = self._open(sid, bytes(blob))
                except WatchlistKeyError:
                    unreadable += 1
                    continue
                if site is not None and sighting.site_id != site:
                    continue
                distance = pattern.match(sighting.plate, fuzzy)
                if distance is not None:
                    found.append(sighting.model_copy(update={"distance": distance}))
                    if len(found) >= limit:
                        return SightingSearch(found, scanned, False, unreadable)
            if scanned >= self.scan_cap:
                more = next(iterator, None) is not None
                return SightingSearch(found, scanned, more, unreadable)
        return SightingSearch(found, scanned, False, unreadable)

    def pattern_tag(self, pattern: PlatePattern) -> str:
        """What the audit says a search looked for: an exact plate's keyed hash (the same as
        its hotlist entry id), else a keyed hash of the pattern."""
        return self.keys.tag(pattern.text) if pattern.literal else \
            self._hash(b"pattern:", pattern.text)

    def _audit(self, actor: str, pattern: PlatePattern, low: float, until: float | None,
               site: str | None, fuzzy: bool, result: SightingSearch) -> None:
        now = time.time()
        self.redis.xadd(self.audit_stream, {
            "ts": f"{now:.3f}", "actor": actor, "action": "sightings.search",
            "pattern_tag": self.pattern_tag(pattern), "pattern_shape": pattern.shape,
            "fuzzy": "1" if fuzzy else "0", "since": f"{low:.0f}",
            "until": "" if until is None else f"{until:.0f}", "site": site or "",
            "results": str(len(result.sightings)), "scanned": str(result.scanned)},
            minid=f"{int((now - AUDIT_RETENTION_S) * 1000)}-0", approximate=True)

    def audit(self, count: int = 100) -> list[dict[str, str]]:
        """The newest plate audit entries (list changes and searches), newest first."""
        rows: list[Any] = list(self.redis.xrevrange(
            self.audit_stream, count=count) or [])
        return [{"id": _text(entry_id), **{_text(k): _text(v) for k, v in fields.items()}}
                for entry_id, fields in rows]
