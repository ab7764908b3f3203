"""Plates on vehicle tracks: which tracks to read, when, and when a track's plate is known.

Pure logic for the plate stage (no Kafka, no Redis, no Triton, no clock; state in memory per
camera while the track lives). For each confirmed vehicle track (car, motorcycle, bus, truck)
whose box is wide enough, :meth:`TrackPlates.due` says whether to read it on this frame: at
most once every ``interval_s`` of capture time and at most ``max_reads`` times per track.
Each frame's read, already in the site's format, goes to :meth:`TrackPlates.add`; once the
per-character vote over the track's reads (:func:`argus.plates.text.vote`) is stable, it
returns the plate to publish, until :meth:`TrackPlates.published` records it: once per
(track, plate). A track that has left the frame is
forgotten with :meth:`TrackPlates.keep_only`. On a stills camera reading whole photos,
:meth:`TrackPlates.whole_photo_due` says when a photo has no vehicle to read and is read
whole instead, under the pseudo track :data:`~schemas.plates.WHOLE_PHOTO_TRACK_ID`.

Also here: the vehicle's colour named from a small palette (:func:`vehicle_colour`) and its
heading and speed from the track's velocity (:func:`heading`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from argus.classes import VEHICLE_CLASSES
from argus.plates.text import Vote, vote
from schemas.tracks import Track, Velocity


@dataclass(frozen=True)
class PlateTrackConfig:
    """When to read a track's plate and when its vote counts."""

    classes: tuple[str, ...] = VEHICLE_CLASSES
    min_width_px: int = 60
    """Narrower vehicle boxes (in frame pixels) are not read: the plate would be a few pixels."""
    interval_s: float = 0.5
    """At most one read per track every this many seconds of capture time."""
    max_reads: int = 6
    """Reads per track at most (a parked car is not read forever)."""
    min_reads: int = 2
    min_share: float = 0.6
    """A vote is stable with at least ``min_reads`` reads and every character won by this
    share of its confidence mass."""
    stills: bool = False
    """Every frame is a different photo (an ANPR camera sending stills): each vehicle seen
    in a frame is read on that frame alone, whether or not its track is confirmed, and a
    read stands on its own when its every character has ``min_share`` confidence."""
    whole_photo: bool = False
    """On stills: a photo in which no vehicle is due (none of ``classes`` seen in it at least
    ``min_width_px`` wide) is read whole, as one region."""


@dataclass
class _TrackState:
    last_read_ts: float = -math.inf
    attempts: int = 0
    reads: list[tuple[str, list[float]]] = field(default_factory=list)
    best_score: float = -1.0
    best_seq: int = 0
    best: Any = None
    published: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class KnownPlate:
    """A track's plate, stable across frames: what the stage publishes."""

    track_id: int
    vote: Vote
    best_seq: int
    """The frame whose read scored best (the snapshot)."""
    best: Any = None
    """What the caller passed with that read (its boxes, time, format...)."""


class TrackPlates:
    """Per-camera read scheduling and voting (one instance per camera)."""

    def __init__(self, config: PlateTrackConfig | None = None) -> None:
        self.config = config or PlateTrackConfig()
        self.tracks: dict[int, _TrackState] = {}

    def due(self, track: Track, ts: float, frame_width: int) -> bool:
        """Whether to read ``track``'s plate on the frame captured at ``ts``."""
        cfg = self.config
        if track.class_name not in cfg.classes:
            return False
        if (track.box.x2 - track.box.x1) * frame_width < cfg.min_width_px:
            return False
        if cfg.stills:  # seen in this photo (a tentative track too: one photo, one look)
            return track.state in ("confirmed", "tentative") and track.last_seen == ts
        if track.state != "confirmed":
            return False
        state = self.tracks.get(track.track_id)
        if state is None:
            return True
        return state.attempts < cfg.max_reads and ts - state.last_read_ts >= cfg.interval_s

    def whole_photo_due(self, tracks: Iterable[Track], ts: float, frame_width: int) -> bool:
        """Whether to read the photo captured at ``ts`` whole: a stills camera reading whole
        photos, and no vehicle of the photo to read (:meth:`due`). A vehicle that is read but
        yields no plate does not make the photo whole; one too narrow to read does not stop
        it."""
        cfg = self.config
        return cfg.stills and cfg.whole_photo and not any(
            self.due(t, ts, frame_width) for t in tracks)

    def attempted(self, track_id: int, ts: float) -> None:
        """A read was made on this frame (whatever came of it)."""
        state = self.tracks.setdefault(track_id, _TrackState())
        state.attempts += 1
        state.last_read_ts = ts

    def add(self, track_id: int, text: str, confidences: list[float], score: float,
            seq: int, best: Any = None) -> KnownPlate | None:
        """Add one frame's formatted read; the plate to publish when the vote is stable and
        this (track, plate) has not been published yet. ``best`` is kept with the
        best-scoring read and handed back in :attr:`KnownPlate.best`."""
        state = self.tracks.setdefault(track_id, _TrackState())
        if self.config.stills:  # this photo's read alone
            state.reads, state.best_score = [], -1.0
        state.reads.append((text, list(confidences)))
        if score > state.best_score:
            state.best_score, state.best_seq, state.best = score, seq, best
        if self.config.stills:  # one read: its own confidences, not a vote's shares
            confident = bool(text) and min(confidences) >= self.config.min_share
            result: Vote | None = Vote(text, tuple(confidences), 1, 1) if confident else None
        else:
            result = vote(state.reads)
        if result is None or not result.stable(1 if self.config.stills else
                                               self.config.min_reads, self.config.min_share):
            return None
        if result.text in state.published:
            return None
        return KnownPlate(track_id, result, state.best_seq, state.best)

    def published(self, track_id: int, text: str) -> None:
        """``text`` was published for the track: :meth:`add` will not return it again. Called
        once the event is out, so a publish that failed (and is retried) is not lost."""
        self.tracks.setdefault(track_id, _TrackState()).published.add(text)

    def keep_only(self, track_ids: set[int]) -> None:
        """Forget the tracks not in ``track_ids`` (they ended)."""
        for track_id in list(self.tracks):
            if track_id not in track_ids:
                del self.tracks[track_id]


def plate_event_id(camera_id: str, track_id: int, text: str, seq: int | None = None) -> str:
    """Deterministic event id: a replay publishes the same id. ``seq`` (the frame) for a
    still read whole: its pseudo track is the same on every photo, and each photo is its own
    vehicle.

    >>> plate_event_id("cam-1", 7, "AB12CDE")
    'plate-cam-1-7-ddc92652fa'
    >>> plate_event_id("cam-1", 0, "AB12CDE", seq=42)
    'plate-cam-1-0-42-0e6d91116c'
    """
    parts = [camera_id, str(track_id), *([] if seq is None else [str(seq)])]
    digest = hashlib.sha256("/".join([*parts, text]).encode()).hexdigest()[:10]
    return "-".join(["plate", *parts, digest])


def heading(velocity: Velocity, aspect: float, still: float = 0.01,
            ) -> tuple[float | None, float]:
    """(heading in degrees clockwise from image up, or None when standing; speed) from a
    track's velocity (normalised units per second); ``aspect`` is width / height, so that
    the angle is measured in pixels.

    >>> heading(Velocity(vx=0.1, vy=0.0), 16 / 9)
    (90.0, 0.1)
    >>> heading(Velocity(vx=0.0, vy=-0.2), 1.0)
    (0.0, 0.2)
    >>> heading(Velocity(vx=0.001, vy=0.0), 1.0)
    (None, 0.001)
    """
    speed = math.hypot(velocity.vx, velocity.vy)
    if speed < still:
        return None, round(speed, 4)
    angle = math.degrees(math.atan2(velocity.vx * aspect, -velocity.vy)) % 360.0
    return round(angle, 1), round(speed, 4)


def vehicle_colour(crop_bgr: npt.NDArray[np.uint8]) -> str:
    """The vehicle's colour named from a small palette: the median hue, saturation and
    value of the central part of the crop (the body, less road and windows at the edges);
    low saturation is white / silver / grey / black by value."""
    height, width = crop_bgr.shape[:2]
    if height < 4 or width < 4:
        return "unknown"
    centre = crop_bgr[height // 4: height * 3 // 4, width // 6: width * 5 // 6]
    hsv = cv2.cvtColor(np.ascontiguousarray(centre), cv2.COLOR_BGR2HSV).reshape(-1, 3)
    saturated = hsv[hsv[:, 1] >= 80]
    if len(saturated) >= 0.3 * len(hsv):
        hue = float(np.median(saturated[:, 0])) * 2.0  # OpenCV hue is 0..180
        value = float(np.median(saturated[:, 2]))
        return _hue_name(hue, value)
    value = float(np.median(hsv[:, 2]))
    if value >= 200:
        return "white"
    if value >= 140:
        return "silver"
    if value >= 70:
        return "grey"
    return "black"


def _hue_name(hue: float, value: float) -> str:
    if hue < 15 or hue >= 340:
        return "red" if value >= 60 else "brown"
    if hue < 40:
        return "orange" if value >= 150 else "brown"
    if hue < 70:
        return "yellow"
    if hue < 170:
        return "green"
    if hue < 260:
        return "blue"
    return "red"
