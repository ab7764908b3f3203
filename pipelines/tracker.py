"""A ByteTrack-style multi-object tracker for one camera: pure numpy/scipy, no I/O.

Each frame's detections (normalised ``x1, y1, x2, y2``, score, class id) update a set of
tracks, each with a constant-velocity Kalman filter on ``(cx, cy, aspect, height)``:

1. detections split into *high* (score >= the class's threshold) and *low* (>= ``low``);
2. high boxes are matched to the confirmed and recently lost tracks (Hungarian on
   1 - IoU x score); a matched lost track is re-activated with its old id;
3. low boxes are matched to the confirmed tracks still unmatched (plain IoU), so a
   person whose score dips behind an occluder keeps the track; what stays unmatched is
   *lost* (predicted on, kept ``max_lost`` frames, then removed);
4. the remaining high boxes are matched to tentative tracks (``min_hits`` hits confirm
   one; a miss removes it), and boxes scoring >= threshold + ``new_track_margin``
   start new tentative tracks.

Only boxes of the same class are ever matched. Time is counted in frame *steps*: a gap in
``seq`` (frames dropped upstream) predicts several steps; a frame that is not newer than
the last one (by seq and capture time) is skipped and counted in ``stale_frames``; a
lower seq with a newer capture time is a restarted grabber, stepped by the time gap.
Velocities are reported in normalised units per second using the measured frame period.
The whole state round-trips through a JSON-safe dict (:meth:`Tracker.to_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import linear_sum_assignment

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int_]
STATE_VERSION = 1
_NO_MATCH = 1e6

_F = np.eye(8)
_F[:4, 4:] = np.eye(4)
_H = np.eye(4, 8)
_STD_POS, _STD_VEL = 1.0 / 20, 1.0 / 160


class TrackState(StrEnum):
    TENTATIVE = "tentative"
    CONFIRMED = "confirmed"
    LOST = "lost"


class TrackerConfig(BaseModel):
    """Tracker thresholds. ``thresholds`` maps a class id to its high-score threshold;
    other classes use ``default_threshold`` or, when that is None, are not tracked.

    Defaults are ByteTrack's except two, measured on PETS09-S2L1 (docs/tracking.md): a new
    track needs threshold + 0.2 (not + 0.1), which keeps one-off false boxes out, and the
    first pass accepts IoU x score >= 0.1 (not 0.2), which keeps small, fast people at
    5-10 fps matched from one frame to the next.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    thresholds: dict[int, float] = Field(default_factory=dict)
    default_threshold: float | None = Field(default=0.5, ge=0.0, le=1.0)
    low: float = Field(default=0.1, ge=0.0, le=1.0, description="second-pass score floor")
    new_track_margin: float = Field(default=0.2, ge=0.0)
    match_iou: float = Field(default=0.1, gt=0.0, le=1.0)
    low_match_iou: float = Field(default=0.5, gt=0.0, le=1.0)
    tentative_match_iou: float = Field(default=0.3, gt=0.0, le=1.0)
    min_hits: int = Field(default=2, ge=1, description="hits that confirm a track")
    max_lost: int = Field(default=30, ge=0, description="frames a lost track is kept")
    duplicate_iou: float = Field(default=0.85, gt=0.0, le=1.0)
    max_clock_skew_s: float = Field(default=2.0, ge=0.0)
    fuse_score: bool = True

    @model_validator(mode="after")
    def _can_start_tracks(self) -> TrackerConfig:
        for name, value in [("default_threshold", self.default_threshold),
                            *((f"thresholds[{k}]", v) for k, v in self.thresholds.items())]:
            if value is not None and value + self.new_track_margin > 1.0:
                raise ValueError(f"{name} {value} + new_track_margin {self.new_track_margin} "
                                 "exceeds 1: that class could never start a track")
        return self

    def threshold(self, class_id: int) -> float | None:
        """The high-score threshold of a class (None: not tracked)."""
        return self.thresholds.get(class_id, self.default_threshold)


def xyxy_to_xyah(box: Array) -> Array:
    """``x1, y1, x2, y2`` → centre x, centre y, aspect (w/h), height."""
    w, h = box[2] - box[0], max(box[3] - box[1], 1e-6)
    return np.array([box[0] + w / 2, box[1] + h / 2, w / h, h])


def xyah_to_xyxy(xyah: Array) -> Array:
    """Centre x, centre y, aspect, height → ``x1, y1, x2, y2``."""
    h = max(float(xyah[3]), 1e-6)
    w = float(xyah[2]) * h
    return np.array([xyah[0] - w / 2, xyah[1] - h / 2, xyah[0] + w / 2, xyah[1] + h / 2])


def iou_matrix(a: Array, b: Array) -> Array:
    """Pairwise IoU of (N, 4) and (M, 4) ``x1, y1, x2, y2`` boxes."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


@dataclass
class Track:
    """One tracked object: Kalman mean (8) and covariance (8x8) plus bookkeeping."""

    track_id: int
    class_id: int
    mean: Array
    cov: Array
    score: float
    state: TrackState
    hits: int
    age: int
    misses: int
    first_ts: float
    last_ts: float

    @classmethod
    def start(cls, track_id: int, box: Array, class_id: int, score: float, ts: float) -> Track:
        xyah = xyxy_to_xyah(box)
        h = xyah[3]
        std = [2 * _STD_POS * h, 2 * _STD_POS * h, 1e-2, 2 * _STD_POS * h,
               10 * _STD_VEL * h, 10 * _STD_VEL * h, 1e-5, 10 * _STD_VEL * h]
        return cls(track_id, class_id, np.r_[xyah, np.zeros(4)], np.diag(np.square(std)),
                   score, TrackState.TENTATIVE, 1, 0, 0, ts, ts)

    @property
    def box(self) -> Array:
        return xyah_to_xyxy(self.mean[:4])

    def predict(self) -> None:
        """One constant-velocity step (a lost track's height stops changing)."""
        if self.state is TrackState.LOST:
            self.mean[7] = 0.0
        h = self.mean[3]
        std = [_STD_POS * h, _STD_POS * h, 1e-2, _STD_POS * h,
               _STD_VEL * h, _STD_VEL * h, 1e-5, _STD_VEL * h]
        self.mean = _F @ self.mean
        self.cov = _F @ self.cov @ _F.T + np.diag(np.square(std))

    def update(self, box: Array, score: float, ts: float, min_hits: int) -> None:
        """Kalman correction with a matched box; confirms or re-activates the track."""
        h = self.mean[3]
        r = np.diag(np.square([_STD_POS * h, _STD_POS * h, 1e-1, _STD_POS * h]))
        s = _H @ self.cov @ _H.T + r
        gain = cho_solve(cho_factor(s, lower=True), (self.cov @ _H.T).T).T
        self.mean = self.mean + gain @ (xyxy_to_xyah(box) - _H @ self.mean)
        self.cov = self.cov - gain @ s @ gain.T
        self.score, self.last_ts, self.misses = score, ts, 0
        self.hits += 1
        if self.state is TrackState.LOST or self.hits >= min_hits:
            self.state = TrackState.CONFIRMED

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.track_id, "cls": self.class_id, "mean": _floats(self.mean),
                "cov": _floats(self.cov[np.triu_indices(8)]), "score": round(self.score, 4),
                "state": self.state.value, "hits": self.hits, "age": self.age,
                "misses": self.misses, "first_ts": self.first_ts, "last_ts": self.last_ts}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Track:
        cov = np.zeros((8, 8))
        cov[np.triu_indices(8)] = d["cov"]
        cov = cov + np.triu(cov, 1).T
        return cls(int(d["id"]), int(d["cls"]), np.array(d["mean"], dtype=float), cov,
                   float(d["score"]), TrackState(d["state"]), int(d["hits"]), int(d["age"]),
                   int(d["misses"]), float(d["first_ts"]), float(d["last_ts"]))


def _floats(values: Array) -> list[float]:
    return [float(f"{v:.7g}") for v in np.asarray(values).ravel()]


def associate(tracks: list[Track], boxes: Array, scores: Array, classes: IntArray,
              min_iou: float, fuse_score: bool) -> tuple[list[tuple[int, int]], list[int],
                                                         list[int]]:
    """Hungarian matching on 1 - IoU (x score when ``fuse_score``), same class only.

    Returns (track index, box index) pairs with IoU >= ``min_iou`` (fused similarity >=
    ``min_iou`` when fusing), and the unmatched track and box indices.
    """
    if not tracks or len(boxes) == 0:
        return [], list(range(len(tracks))), list(range(len(boxes)))
    sim = iou_matrix(np.array([t.box for t in tracks]), boxes)
    if fuse_score:
        sim = sim * scores[None, :]
    cost = 1.0 - sim
    same = np.array([t.class_id for t in tracks])[:, None] == classes[None, :]
    cost[~same | (sim < min_iou)] = _NO_MATCH
    rows, cols = linear_sum_assignment(cost)
    pairs = [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] < _NO_MATCH]
    matched_t, matched_d = {p[0] for p in pairs}, {p[1] for p in pairs}
    return (pairs, [i for i in range(len(tracks)) if i not in matched_t],
            [j for j in range(len(boxes)) if j not in matched_d])


class Tracker:
    """The tracks of one camera; feed it every frame with :meth:`update`."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self.tracks: list[Track] = []
        self.next_id = 1
        self.last_seq: int | None = None
        self.last_ts: float | None = None
        self.frame_period: float | None = None
        self.frames = 0
        self.stale_frames = 0

    def steps_to(self, seq: int, ts: float) -> int:
        """Frame steps from the last processed frame to this one; 0 = stale (skip it)."""
        if self.last_seq is None or self.last_ts is None:
            return 1
        if ts < self.last_ts - self.config.max_clock_skew_s:
            return 0
        if seq > self.last_seq:
            return seq - self.last_seq
        if ts <= self.last_ts:
            return 0
        # a lower seq with a newer capture time: the grabber restarted its count
        period = self.frame_period or ts - self.last_ts
        return max(1, round((ts - self.last_ts) / period))

    def update(self, boxes: npt.ArrayLike, scores: npt.ArrayLike, classes: npt.ArrayLike,
               seq: int, ts: float) -> list[Track] | None:
        """Process one frame; returns the live tracks after it, or None for a stale frame
        (older than the last processed one: not applied, counted in ``stale_frames``)."""
        steps = self.steps_to(seq, ts)
        if steps == 0:
            self.stale_frames += 1
            return None
        self._advance_clock(seq, ts, steps)
        b = np.asarray(boxes, dtype=float).reshape(-1, 4)
        s = np.asarray(scores, dtype=float).reshape(-1)
        c = np.asarray(classes, dtype=int).reshape(-1)
        thresholds = [self.config.threshold(int(k)) for k in c]
        high_of = np.array([np.inf if t is None else t for t in thresholds]).reshape(-1)
        high = s >= high_of
        low = ~high & (s >= self.config.low) & np.isfinite(high_of)
        for track in self.tracks:
            for _ in range(min(steps, self.config.max_lost + 1)):
                track.predict()
            track.age += steps
            track.misses += steps - 1
        self.tracks = [t for t in self.tracks if t.misses <= self.config.max_lost]
        left = self._match_active(b[high], s[high], c[high], b[low], s[low], c[low], ts)
        self._match_tentative_and_start(b[high][left], s[high][left], c[high][left], ts)
        self._remove_duplicates()
        return list(self.tracks)

    def _advance_clock(self, seq: int, ts: float, steps: int) -> None:
        """Record the frame and refine the frame period (EMA of capture-time gaps)."""
        if (self.last_ts is not None and self.last_seq is not None and ts > self.last_ts
                and seq > self.last_seq):
            sample = (ts - self.last_ts) / steps
            self.frame_period = sample if self.frame_period is None else (
                0.8 * self.frame_period + 0.2 * sample)
        self.last_seq, self.last_ts = seq, ts
        self.frames += 1

    def _match_active(self, hb: Array, hs: Array, hc: IntArray, lb: Array, ls: Array,
                      lc: IntArray, ts: float) -> list[int]:
        """Passes 1 and 2 over confirmed and lost tracks; returns the unused high boxes."""
        cfg = self.config
        active = [t for t in self.tracks if t.state is not TrackState.TENTATIVE]
        matched: set[int] = set()
        left_d = self._assign(active, hb, hs, hc, list(range(len(hb))), cfg.match_iou,
                              cfg.fuse_score, ts, matched)
        remaining = [t for t in active if id(t) not in matched
                     and t.state is TrackState.CONFIRMED]
        self._assign(remaining, lb, ls, lc, list(range(len(lb))), cfg.low_match_iou, False,
                     ts, matched)
        for track in active:
            if id(track) not in matched:
                track.state = TrackState.LOST
                track.misses += 1
        return left_d

    def _assign(self, tracks: list[Track], boxes: Array, scores: Array, classes: IntArray,
                candidates: list[int], min_iou: float, fuse: bool, ts: float,
                matched: set[int]) -> list[int]:
        """Match ``tracks`` to ``boxes[candidates]``, update the matched tracks; returns the
        candidates left over."""
        idx = np.array(candidates, dtype=int)
        pairs, _, left = associate(tracks, boxes[idx], scores[idx], classes[idx], min_iou, fuse)
        for ti, di in pairs:
            tracks[ti].update(boxes[idx[di]], float(scores[idx[di]]), ts, self.config.min_hits)
            matched.add(id(tracks[ti]))
        return [int(idx[j]) for j in left]

    def _match_tentative_and_start(self, hb: Array, hs: Array, hc: IntArray,
                                   ts: float) -> None:
        """Pass 3: tentative tracks take the remaining high boxes (a miss removes them);
        confident leftovers start new tracks; long-lost tracks are removed."""
        cfg = self.config
        tentative = [t for t in self.tracks if t.state is TrackState.TENTATIVE]
        pairs, left_t, left_d = associate(tentative, hb, hs, hc, cfg.tentative_match_iou,
                                          fuse_score=True)
        for ti, di in pairs:
            tentative[ti].update(hb[di], float(hs[di]), ts, cfg.min_hits)
        dead = {id(tentative[i]) for i in left_t}
        self.tracks = [t for t in self.tracks if id(t) not in dead and t.misses <= cfg.max_lost]
        for di in left_d:
            threshold = cfg.threshold(int(hc[di]))
            if threshold is not None and hs[di] >= threshold + cfg.new_track_margin:
                self.tracks.append(Track.start(self.next_id, hb[di], int(hc[di]),
                                               float(hs[di]), ts))
                self.next_id += 1

    def _remove_duplicates(self) -> None:
        """A lost track that overlaps a confirmed one almost entirely is the same object:
        keep whichever has been tracked longer (ByteTrack's duplicate removal)."""
        confirmed = [t for t in self.tracks if t.state is TrackState.CONFIRMED]
        lost = [t for t in self.tracks if t.state is TrackState.LOST]
        if not confirmed or not lost:
            return
        iou = iou_matrix(np.array([t.box for t in confirmed]), np.array([t.box for t in lost]))
        drop: set[int] = set()
        for i, j in zip(*np.nonzero(iou > self.config.duplicate_iou), strict=True):
            a, b = confirmed[int(i)], lost[int(j)]
            if a.class_id == b.class_id:
                drop.add(id(b) if a.age >= b.age else id(a))
        self.tracks = [t for t in self.tracks if id(t) not in drop]

    def velocity(self, track: Track) -> tuple[float, float]:
        """Centre velocity in normalised units per second (0 until a period is known)."""
        if not self.frame_period:
            return (0.0, 0.0)
        return (float(track.mean[4] / self.frame_period), float(track.mean[5] / self.frame_period))

    def to_dict(self) -> dict[str, Any]:
        """The whole state, JSON-safe (numbers, strings, lists, dicts)."""
        return {"version": STATE_VERSION, "next_id": self.next_id, "last_seq": self.last_seq,
                "last_ts": self.last_ts, "frame_period": self.frame_period,
                "frames": self.frames, "stale_frames": self.stale_frames,
                "tracks": [t.to_dict() for t in self.tracks]}

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: TrackerConfig | None = None) -> Tracker:
        """Rebuild a tracker from :meth:`to_dict` (the config is not part of the state)."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported tracker state version {data.get('version')!r}")
        tracker = cls(config)
        tracker.next_id = int(data["next_id"])
        tracker.last_seq = data["last_seq"]
        tracker.last_ts = data["last_ts"]
        tracker.frame_period = data["frame_period"]
        tracker.frames = int(data["frames"])
        tracker.stale_frames = int(data["stale_frames"])
        tracker.tracks = [Track.from_dict(t) for t in data["tracks"]]
        return tracker
