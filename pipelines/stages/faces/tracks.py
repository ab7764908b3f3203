"""Faces on person tracks: when to look at a track, where its face is, which face to match.

The faces stage's default mode consumes ``tracks``. For each confirmed person track it
looks at the head region of the box (:func:`head_region`) at most once every
``interval_s`` of capture time (:meth:`TrackFaces.due`), takes the track's face from what
the ``faces`` model found there (:func:`track_face`) and matches it only when it is usable
and better than every face matched for that track so far (:meth:`TrackFaces.consider`):
the watchlist is asked about the best face of each track, once per improvement, and a
(track, person) pair makes at most one ``events.face``.

Per track the stage keeps, in memory only and while the track lives, the best quality and
that face's embedding (to notice the tracker handing the id to someone else: a new face
that does not resemble the best one restarts the track's search). Nothing about a face
that matches nobody leaves the process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from argus.inference.faces import CROP_KEY, DetectedFace, FaceStageResult, snapshot_ref
from argus.watchlist.index import WatchlistIndex
from schemas.detections import Box
from schemas.faces import FaceEvent
from schemas.tracks import Track, Tracks

PERSON = "person"
HEAD_UPPER = 0.75
"""The head region of a standing person is the upper 75 % of the box (the head is in the top
fifth; bent or partly hidden people: lower)."""
FULL_BODY_ASPECT = 2.0
"""A box less than twice as tall as wide (in pixels) is not a whole standing person (a close
view, head and shoulders, a person cut off by the frame or sitting): search all of it."""
HEAD_MARGIN = 0.1
"""… widened by 10 % of the box width on each side and 10 % of its height above."""
SAME_PERSON = 0.62
"""Below this similarity to the track's best face (FaceNet's FAR 1 % verification point on
the deepface pairs), the face may be someone else's: the tracker may have handed the id over,
so the track's search restarts. A needless restart costs one index lookup; a missed one
could hide a watchlisted person behind a better face of someone else."""


def head_region(box: Box, width: int = 0, height: int = 0, margin: float = HEAD_MARGIN
                ) -> tuple[float, float, float, float]:
    """Where a person box's face is: its upper part (all of it for a box that is not a
    whole standing person, given the frame's ``width`` and ``height``) plus a margin,
    clipped to the image.

    >>> head_region(Box(x1=0.4, y1=0.2, x2=0.6, y2=0.8), 640, 480)  # 128 x 288 px: standing
    (0.38, 0.14, 0.62, 0.65)
    >>> head_region(Box(x1=0.4, y1=0.2, x2=0.8, y2=0.8), 640, 480)  # 256 x 288 px: close
    (0.36, 0.14, 0.84, 0.8)
    """
    w, h = box.x2 - box.x1, box.y2 - box.y1
    standing = width <= 0 or height <= 0 or h * height >= FULL_BODY_ASPECT * w * width
    upper = HEAD_UPPER if standing else 1.0
    return (round(max(0.0, box.x1 - margin * w), 6), round(max(0.0, box.y1 - margin * h), 6),
            round(min(1.0, box.x2 + margin * w), 6), round(min(1.0, box.y1 + upper * h), 6))


def cut_off(face: tuple[float, float, float, float],
            region: tuple[float, float, float, float], tol: float = 0.005) -> bool:
    """Whether a face box reaches an edge of the searched region that is not the image's:
    the region cut through it (its landmarks and embedding are of part of a face).

    >>> cut_off((0.27, 0.3, 0.4, 0.6), (0.27, 0.0, 1.0, 0.6))
    True
    >>> cut_off((0.3, 0.1, 0.4, 0.3), (0.27, 0.0, 1.0, 0.6))
    False
    """
    return ((region[0] > 0 and face[0] <= region[0] + tol)
            or (region[1] > 0 and face[1] <= region[1] + tol)
            or (region[2] < 1 and face[2] >= region[2] - tol)
            or (region[3] < 1 and face[3] >= region[3] - tol))


def track_face(box: Box, faces: Sequence[DetectedFace], width: int = 0, height: int = 0
               ) -> DetectedFace | None:
    """The track's face among those found in its head region: the best-quality face whose
    centre lies in the region and that the region did not cut through (a neighbour's face
    reaching into the region is not theirs, and half a face is nobody's).

    >>> f = DetectedFace((0.45, 0.25, 0.55, 0.35), np.zeros((5, 2), np.float32), 0.9, 0.8,
    ...                  (1.0, 0.8, 0.8), np.zeros(512, np.float32))
    >>> track_face(Box(x1=0.4, y1=0.2, x2=0.6, y2=0.8), [f]) is f
    True
    >>> track_face(Box(x1=0.0, y1=0.2, x2=0.3, y2=0.8), [f]) is None
    True
    """
    region = head_region(box, width, height)
    x1, y1, x2, y2 = region
    inside = [f for f in faces
              if x1 <= (f.box[0] + f.box[2]) / 2 <= x2 and y1 <= (f.box[1] + f.box[3]) / 2 <= y2
              and not cut_off(f.box, region)]
    return max(inside, key=lambda f: f.quality, default=None)


@dataclass
class TrackState:
    """What the stage remembers of one live track."""

    last_try: float
    best_quality: float = 0.0
    best_embedding: npt.NDArray[np.float32] | None = None
    emitted: set[str] = field(default_factory=set)
    """Watchlist entries already reported for this track."""


@dataclass
class TrackFaces:
    """Per-track throttle, best-face gate and once-per-(track, person) events."""

    index: WatchlistIndex
    min_quality: float = 0.5
    interval_s: float = 2.0
    same_person: float = SAME_PERSON
    _tracks: dict[tuple[str, int], TrackState] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._tracks)

    def due(self, frame: Tracks) -> list[Track]:
        """The confirmed person tracks to look at in this frame (each at most once per
        ``interval_s`` of capture time); forgets the camera's tracks that ended."""
        camera = frame.camera_id
        alive = {t.track_id for t in frame.tracks}
        for key in [k for k in self._tracks if k[0] == camera and k[1] not in alive]:
            del self._tracks[key]
        due = []
        for track in frame.confirmed():
            if track.class_name != PERSON:
                continue
            state = self._tracks.get((camera, track.track_id))
            if state is None:
                self._tracks[(camera, track.track_id)] = TrackState(last_try=frame.capture_ts)
            elif (frame.capture_ts >= state.last_try + self.interval_s
                  or frame.capture_ts < state.last_try - 60.0):  # a restarted grabber
                state.last_try = frame.capture_ts
            else:
                continue
            due.append(track)
        return due

    def consider(self, frame: Tracks, site_id: str, track: Track,
                 faces: Sequence[DetectedFace]) -> FaceStageResult:
        """Match the track's face if it is usable and the best so far for the track."""
        result = FaceStageResult()
        face = track_face(track.box, faces, frame.width, frame.height)
        if face is None:
            result.no_face = 1
            return result
        if face.quality < self.min_quality:
            result.low_quality = 1
            return result
        state = self._tracks.setdefault((frame.camera_id, track.track_id),
                                        TrackState(last_try=frame.capture_ts))
        if (state.best_embedding is not None
                and float(face.embedding @ state.best_embedding) < self.same_person):
            state.best_quality, state.best_embedding = 0.0, None  # someone else now
        if face.quality <= state.best_quality:
            result.not_better = 1
            return result
        state.best_quality, state.best_embedding = face.quality, face.embedding
        (match,) = self.index.match([face.embedding])
        if match is None:
            result.unmatched = 1
            return result
        result.matched = 1
        person = match.person
        if person.person_id in state.emitted:
            result.suppressed = 1
            return result
        state.emitted.add(person.person_id)
        event_id = "face-" + hashlib.sha1(
            f"{frame.camera_id}|track:{track.track_id}|{person.person_id}".encode()
        ).hexdigest()[:16]
        x1, y1, x2, y2 = face.box
        result.events.append(FaceEvent(
            event_id=event_id, camera_id=frame.camera_id, site_id=site_id, ts=frame.capture_ts,
            seq=frame.seq, track_id=track.track_id, list_id=person.list_id,
            category=person.category, person_id=person.person_id, person_ref=person.reference,
            similarity=round(min(match.similarity, 1.0), 4), threshold=match.threshold,
            quality=round(face.quality, 4), face_box=Box(x1=x1, y1=y1, x2=x2, y2=y2),
            crop_ref=CROP_KEY.format(event_id=event_id),
            snapshot_ref=snapshot_ref(frame.camera_id, frame.seq)))
        return result

    def prune(self, now: float, max_age_s: float = 300.0) -> int:
        """Forget tracks not looked at for ``max_age_s`` (cameras that went quiet)."""
        old = [k for k, s in self._tracks.items() if now - s.last_try > max_age_s]
        for key in old:
            del self._tracks[key]
        return len(old)
