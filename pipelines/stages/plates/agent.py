"""The plate stage at the edge: vehicle tracks → Triton ``plates`` → the site's format → a
vote per track → hotlists and allow lists → ``events.plate``, with the best frame kept as
the snapshot.

Per ``tracks`` message of a camera with ``plates:`` in the topology, the vehicle tracks that
are due (:class:`~pipelines.stages.plates.tracks.TrackPlates`: confirmed, wide enough, at most
``interval_s`` apart and ``max_reads`` per track; on a ``stills`` camera every vehicle in
every photo) are read on the frame cached by the detect stage, all of a frame's vehicles at
once. A read is put in the site's format (the site's ``plates.formats``, first that fits);
once a track's vote is stable the plate is matched against every list in the store
(hotlists and allow lists, one OCR confusion tolerated) and published once per (track,
plate), and kept as a sighting (:mod:`argus.plates.sightings`, sealed, searchable for
the retention). On a ``stills`` camera reading whole photos (``plates.whole_photo``, on by
default for stills) a photo with no vehicle to read (a close-up of a plate, the rear of one
car the detector does not box) is read whole under the pseudo track 0 and published under
the same stills rule. Outcomes are counted in ``argus_plates_total{outcome}``. Needs
``ARGUS_PLATE_KEY``: the lists are keyed and sealed with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import redis

from argus.inference.faces import snapshot_ref
from argus.inference.plates import TritonPlates
from argus.log import get_logger
from argus.metrics import PLATES
from argus.plates.hotlist import PlateKeys, PlateListStore, load_plate_key
from argus.plates.reader import plate_of
from argus.plates.sightings import SightingStore, topology_locator
from argus.settings import Settings
from argus.stores.frame_cache import FrameCache
from argus.topology import Camera, SitePlateFormat, Topology
from argus.watchlist.crypto import WatchlistKeyError
from pipelines.stages.plates.tracks import (
    KnownPlate,
    PlateTrackConfig,
    TrackPlates,
    heading,
    plate_event_id,
    vehicle_colour,
)
from schemas.detections import Box
from schemas.plates import WHOLE_PHOTO_CLASS, WHOLE_PHOTO_TRACK_ID, PlateEvent, PlateHit
from schemas.tracks import Track, Tracks, Velocity

log = get_logger(__name__)


WHOLE_IMAGE = Box(x1=0.0, y1=0.0, x2=1.0, y2=1.0)
STANDING = Velocity(vx=0.0, vy=0.0)


@dataclass(frozen=True)
class Vehicle:
    """What is read on a frame: a vehicle track, or the whole still (``box`` None)."""

    track_id: int
    box: Box | None
    class_name: str
    velocity: Velocity

    @classmethod
    def of(cls, track: Track) -> Vehicle:
        return cls(track.track_id, track.box, track.class_name, track.velocity)

    @property
    def whole_photo(self) -> bool:
        return self.box is None


WHOLE_PHOTO = Vehicle(WHOLE_PHOTO_TRACK_ID, None, WHOLE_PHOTO_CLASS, STANDING)
"""A still with no vehicle to read, read whole: one pseudo vehicle, the same id on every
photo (deterministic ids on a replay; the event id adds the frame's seq)."""


@dataclass(frozen=True)
class BestRead:
    """What is kept with a track's best read: where, when, and which format it fitted."""

    ts: float
    vehicle_box: Box
    plate_box: Box
    format_id: str
    fixes: int
    vehicle: Vehicle
    aspect: float


def fit(reads: Sequence[dict[str, Any]], formats: Sequence[SitePlateFormat],
        ) -> tuple[dict[str, Any], str, int, SitePlateFormat] | None:
    """The first of the site's formats that one of the reads fits: (read, normalised text,
    fixes, format)."""
    for fmt in formats:
        picked = plate_of(reads, fmt)
        if picked is not None:
            item, normal = picked
            return dict(item), normal.text, normal.fixes, fmt
    return None


class PlateAgent:
    """Per-worker state of the plate stage: the model client, the lists, a book per camera."""

    def __init__(self, settings: Settings, topology: Topology, cache: FrameCache,
                 config: PlateTrackConfig, key: bytes) -> None:
        self.settings, self.topology, self.cache, self.config = settings, topology, cache, config
        self.model = TritonPlates(settings.triton_grpc_url)
        client = redis.Redis.from_url(settings.redis_url)
        keys = PlateKeys.from_master(key)
        self.lists = PlateListStore(client, keys)
        self.sightings = SightingStore(client, keys,
                                       retention_s=settings.plate_sightings_retention_s,
                                       locate=topology_locator(topology))
        self.books: dict[str, TrackPlates] = {}

    @classmethod
    def plate_cameras(cls, topology: Topology) -> dict[str, Camera]:
        return {c.id: c for c in topology.cameras if c.plates is not None}

    def book(self, camera: Camera) -> TrackPlates:
        """The camera's read schedule and votes."""
        book = self.books.get(camera.id)
        if book is None:
            assert camera.plates is not None
            book = self.books[camera.id] = TrackPlates(PlateTrackConfig(
                min_width_px=camera.plates.min_width_px, interval_s=self.config.interval_s,
                max_reads=self.config.max_reads, min_reads=self.config.min_reads,
                min_share=self.config.min_share, stills=camera.plates.mode == "stills",
                whole_photo=camera.plates.reads_whole_photo))
        return book

    async def aclose(self) -> None:
        await self.model.close()

    async def handle(self, frame: Tracks) -> list[PlateEvent]:
        """The plates that became known on one ``tracks`` message."""
        camera = self.topology.camera(frame.camera_id)
        if camera is None or camera.plates is None:
            return []
        book = self.book(camera)
        book.keep_only({t.track_id for t in frame.tracks})  # the whole photo's too: each alone
        due = [Vehicle.of(t) for t in frame.tracks
               if book.due(t, frame.capture_ts, frame.width)]
        if not due and book.whole_photo_due(frame.tracks, frame.capture_ts, frame.width):
            due = [WHOLE_PHOTO]  # nothing boxed to read: the plate may fill the photo
            PLATES.labels("whole_photo").inc()
        if not due:
            return []
        jpeg = await self.cache.get(frame.camera_id, frame.seq)
        if jpeg is None:
            PLATES.labels("no_frame").inc(len(due))
            return []
        results = await asyncio.gather(*(self.model.infer(jpeg, v.box) for v in due))
        formats = self.topology.site(camera.site).plates.formats
        aspect = frame.width / frame.height if frame.height else 1.0
        known: list[KnownPlate] = []
        for vehicle, (reads, _ms) in zip(due, results, strict=True):
            book.attempted(vehicle.track_id, frame.capture_ts)
            fitted = fit(reads, formats)
            if fitted is None:
                PLATES.labels("unread" if reads else "no_plate").inc()
                continue
            item, text, fixes, fmt = fitted
            PLATES.labels("read").inc()
            confidences = [float(c) for c in item["confidences"]]
            if len(confidences) != len(text):  # the format dropped or repaired characters
                confidences = _align(confidences, len(text))
            best = BestRead(frame.capture_ts, vehicle.box or WHOLE_IMAGE, _box(item["box"]),
                            fmt.id, fixes, vehicle, aspect)
            plate = book.add(vehicle.track_id, text, confidences, float(item["score"]),
                             frame.seq, best)
            if plate is not None:
                known.append(plate)
        events = [await self._publish(camera, plate) for plate in known]
        for plate in known:  # only now: a failed publish is retried with the same votes
            book.published(plate.track_id, plate.vote.text)
        return events

    async def _publish(self, camera: Camera, plate: KnownPlate) -> PlateEvent:
        """The event of a plate that became known: list hits, colour, the kept snapshot."""
        best = plate.best
        assert isinstance(best, BestRead)
        text = plate.vote.text
        hits = await asyncio.to_thread(self.match, text)
        whole = best.vehicle.whole_photo
        event_id = plate_event_id(camera.id, plate.track_id, text,
                                  seq=plate.best_seq if whole else None)
        ref = await self.cache.keep(camera.id, plate.best_seq, snapshot_ref(camera.id,
                                                                            plate.best_seq))
        colour = "unknown"  # a whole photo's colour would not be the vehicle's
        jpeg = None if whole else await self.cache.get(camera.id, plate.best_seq)
        if jpeg is not None:
            colour = await asyncio.to_thread(_colour, jpeg, best.vehicle_box)
        direction, speed = heading(best.vehicle.velocity, best.aspect)
        PLATES.labels("published").inc()
        if any(h.list_kind == "hotlist" for h in hits):
            PLATES.labels("hotlist_hit").inc()
        log.info("plate known", extra={"camera": camera.id, "track": plate.track_id,
                                       "event_id": event_id, "reads": plate.vote.reads,
                                       "hits": len(hits)})  # never the plate itself
        event = PlateEvent(
            event_id=event_id, camera_id=camera.id, site_id=camera.site, ts=best.ts,
            seq=plate.best_seq, track_id=plate.track_id, text=text, format_id=best.format_id,
            confidence=round(plate.vote.confidence, 4),
            confidences=[round(c, 4) for c in plate.vote.confidences],
            reads=plate.vote.reads, fixes=best.fixes, vehicle_class=best.vehicle.class_name,
            colour=colour, direction_deg=direction, speed=speed, vehicle_box=best.vehicle_box,
            plate_box=best.plate_box, snapshot_ref=ref, hits=hits)
        await asyncio.to_thread(self.sightings.add, event)  # searchable for the retention
        return event

    def match(self, text: str) -> list[PlateHit]:
        """Every list the plate is on (sync Redis: run in a thread)."""
        hits = []
        for list_id in self.lists.list_ids():
            found = self.lists.match(list_id, text)
            if found is not None:
                hits.append(PlateHit(list_id=list_id, list_kind=found.entry.kind,
                                     entry_id=found.entry.entry_id, distance=found.distance))
        return hits


def plate_key() -> bytes | None:
    """The plate key, or None (logged) when it is not set or not usable."""
    try:
        return load_plate_key()
    except WatchlistKeyError as exc:
        log.warning("plate cameras configured but the plate stage cannot run",
                    extra={"error": str(exc)})
        return None


def _align(confidences: list[float], length: int) -> list[float]:
    """Per-character confidences for a text of ``length`` characters when the format changed
    the count (dropped emblems): the lowest confidence for every character."""
    low = min(confidences) if confidences else 0.0
    return [low] * length


def _box(values: Sequence[float]) -> Box:
    x1, y1, x2, y2 = (min(max(float(v), 0.0), 1.0) for v in values)
    return Box(x1=x1, y1=y1, x2=max(x2, x1), y2=max(y2, y1))


def _colour(jpeg: bytes, box: Box) -> str:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return "unknown"
    height, width = image.shape[:2]
    x1, y1 = int(box.x1 * width), int(box.y1 * height)
    x2, y2 = int(box.x2 * width), int(box.y2 * height)
    return vehicle_colour(np.asarray(image[y1:y2, x1:x2], np.uint8))
