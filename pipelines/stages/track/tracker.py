"""A ByteTrack-style multi-object tracker for one camera: pure numpy/scipy, no I/O.

Each frame's detections (normalised ``x1, y1, x2, y2``, score, class id) update a set of
tracks, each with a constant-velocity Kalman filter on ``(cx, cy, aspect, height)``:

1. detections split into *high* (score >= the class's threshold) and *low* (>= ``low``);
2. high boxes are matched to the confirmed and recently lost tracks (Hungarian on
   1 - IoU x score, fused with the cosine distance of appearance embeddings when the boxes
   carry them: ``argus.inference.reid``); a matched lost track is re-activated with its old id;
3. low boxes are matched to the confirmed tracks still unmatched (plain IoU), so a
   person whose score dips behind an occluder keeps the track; what stays unmatched is
   *lost* (predicted on, kept ``max_lost`` frames, then removed);
4. the remaining high boxes are matched to tentative tracks (``min_hits`` hits confirm
   one; a miss removes it), and boxes scoring >= threshold + ``new_track_margin``
   start new tentative tracks.

Only boxes of the same class are ever matched. A track keeps a running average of its
confident, unoccluded boxes' embeddings (persisted with the state). Time is counted in
frame *steps*: a gap in ``seq`` (frames dropped upstream) predicts several steps; a frame
that is not newer than the last one (by seq and capture time) is skipped and counted in
``stale_frames``; a lower seq with a newer capture time is a restarted grabber, stepped by
the time gap. Velocities are reported in normalised units per second using the measured
frame period. The whole state round-trips through a JSON-safe dict (:meth:`Tracker.to_dict`); the
per-track Kalman filter is in ``pipelines.stages.track.kalman``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.optimize import linear_sum_assignment

from argus.inference.reid import (
    AppearanceConfig,
    FloatArray,
    cosine_distance,
    ema_update,
    fuse_cost,
    updatable,
)
from pipelines.stages.track.kalman import Track, TrackState, xyah_to_xyxy, xyxy_to_xyah

__all__ = [
    "STATE_VERSION",
    "Boxes",
    "Track",
    "TrackState",
    "Tracker",
    "TrackerConfig",
    "associate",
    "iou_matrix",
    "xyah_to_xyxy",
    "xyxy_to_xyah",
]

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int_]
STATE_VERSION = 1
_NO_MATCH = 1e6


class TrackerConfig(BaseModel):
    """Tracker thresholds. ``thresholds`` maps a class id to its high-score threshold;
    other classes use ``default_threshold`` or, when that is None, are not tracked.

    Defaults are ByteTrack's except two, measured on PETS09-S2L1 (docs/tracking.md): a new
    track needs threshold + 0.2 (not + 0.1), which keeps one-off false boxes out, and the
    first pass accepts IoU x score >= 0.1 (not 0.2), which keeps small, fast people at
    5-10 fps matched from one frame to the next. ``appearance``: how re-id embeddings enter
    the first pass (``argus.inference.reid``). ``weak_start`` (off by default): boxes from that
    score up to threshold + margin may also start a track, which then needs ``weak_hits``
    hits in a row to be confirmed (a medium-score cluster, e.g. a half-hidden person; it
    also makes static person-like objects tracks, see docs/tracking.md).
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
    appearance: AppearanceConfig = Field(default_factory=AppearanceConfig)
    weak_start: float | None = Field(default=None, ge=0.0, le=1.0,
                                     description="boxes >= this may start a track that "
                                     "needs weak_hits to confirm (None: off)")
    weak_hits: int = Field(default=3, ge=1)

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
class Boxes:
    """One frame's detections: boxes, scores, classes and, optionally, unit embeddings
    (zero rows: none) with the mask of those allowed to update a track's embedding."""

    boxes: Array
    scores: Array
    classes: IntArray
    feats: FloatArray | None = None
    fresh: npt.NDArray[np.bool_] | None = None

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, index: npt.ArrayLike) -> Boxes:
        """The subset at ``index`` (a boolean mask or integer indices)."""
        i = np.asarray(index)
        return Boxes(self.boxes[i], self.scores[i], self.classes[i],
                     None if self.feats is None else self.feats[i],
                     None if self.fresh is None else self.fresh[i])


def associate(tracks: list[Track], dets: Boxes, min_iou: float, fuse_score: bool,
              appearance: AppearanceConfig | None = None,
              ) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Hungarian matching on 1 - IoU (x score when ``fuse_score``), same class only, fused
    with the appearance distance (``argus.inference.reid.fuse_cost``) when ``appearance`` is
    given and both sides have embeddings.

    Returns (track index, box index) pairs with IoU >= ``min_iou`` (fused similarity >=
    ``min_iou`` when fusing), and the unmatched track and box indices.
    """
    if not tracks or len(dets) == 0:
        return [], list(range(len(tracks))), list(range(len(dets)))
    sim = iou_matrix(np.array([t.box for t in tracks]), dets.boxes)
    if fuse_score:
        sim = sim * dets.scores[None, :]
    cost = 1.0 - sim
    if appearance is not None and appearance.enabled and dets.feats is not None:
        known = [t.feature is not None and len(t.feature) == dets.feats.shape[1]
                 for t in tracks]
        if any(known):
            feats = np.array([t.feature if k else np.zeros(dets.feats.shape[1])
                              for t, k in zip(tracks, known, strict=True)])
            cost = fuse_cost(cost, cosine_distance(feats, dets.feats), appearance)
    same = np.array([t.class_id for t in tracks])[:, None] == dets.classes[None, :]
    cost[~same | (sim < min_iou) | ~np.isfinite(cost)] = _NO_MATCH
    rows, cols = linear_sum_assignment(cost)
    pairs = [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] < _NO_MATCH]
    matched_t, matched_d = {p[0] for p in pairs}, {p[1] for p in pairs}
    return (pairs, [i for i in range(len(tracks)) if i not in matched_t],
            [j for j in range(len(dets)) if j not in matched_d])


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
        self.embedding_model: str | None = None

    def use_embedding_model(self, name: str) -> None:
        """Embeddings from now on come from ``name``; the tracks' stored embeddings are
        dropped if they came from another model."""
        if name != self.embedding_model:
            for track in self.tracks:
                track.feature = None
            self.embedding_model = name

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
               seq: int, ts: float, embeddings: npt.ArrayLike | None = None,
               ) -> list[Track] | None:
        """Process one frame; returns the live tracks after it, or None for a stale frame
        (older than the last processed one: not applied, counted in ``stale_frames``).
        ``embeddings``: optional (N, D) unit appearance vectors, zero rows for none."""
        steps = self.steps_to(seq, ts)
        if steps == 0:
            self.stale_frames += 1
            return None
        self._advance_clock(seq, ts, steps)
        dets = self._boxes(boxes, scores, classes, embeddings)
        thresholds = [self.config.threshold(int(k)) for k in dets.classes]
        high_of = np.array([np.inf if t is None else t for t in thresholds]).reshape(-1)
        high = dets.scores >= high_of
        low = ~high & (dets.scores >= self.config.low) & np.isfinite(high_of)
        for track in self.tracks:
            for _ in range(min(steps, self.config.max_lost + 1)):
                track.predict()
            track.age += steps
            track.misses += steps - 1
        self.tracks = [t for t in self.tracks if t.misses <= self.config.max_lost]
        left, left_low = self._match_active(dets.take(high), dets.take(low), ts)
        rest = np.concatenate([np.nonzero(high)[0][left], np.nonzero(low)[0][left_low]])
        self._match_tentative_and_start(dets.take(rest.astype(int)), ts)
        self._remove_duplicates()
        return list(self.tracks)

    def _boxes(self, boxes: npt.ArrayLike, scores: npt.ArrayLike, classes: npt.ArrayLike,
               embeddings: npt.ArrayLike | None) -> Boxes:
        b = np.asarray(boxes, dtype=float).reshape(-1, 4)
        s = np.asarray(scores, dtype=float).reshape(-1)
        c = np.asarray(classes, dtype=int).reshape(-1)
        app = self.config.appearance
        if embeddings is None or not app.enabled:
            return Boxes(b, s, c)
        e = np.asarray(embeddings, dtype=np.float32).reshape(len(s), -1)
        return Boxes(b, s, c, e, updatable(iou_matrix(b, b), s, app) & e.any(axis=1))

    def _advance_clock(self, seq: int, ts: float, steps: int) -> None:
        """Record the frame and refine the frame period (EMA of capture-time gaps)."""
        if (self.last_ts is not None and self.last_seq is not None and ts > self.last_ts
                and seq > self.last_seq):
            sample = (ts - self.last_ts) / steps
            self.frame_period = sample if self.frame_period is None else (
                0.8 * self.frame_period + 0.2 * sample)
        self.last_seq, self.last_ts = seq, ts
        self.frames += 1

    def _match_active(self, high: Boxes, low: Boxes, ts: float) -> tuple[list[int], list[int]]:
        """Passes 1 and 2 over confirmed and lost tracks; returns the unused high and low
        boxes."""
        cfg = self.config
        active = [t for t in self.tracks if t.state is not TrackState.TENTATIVE]
        matched: set[int] = set()
        left_d = self._assign(active, high, cfg.match_iou, cfg.fuse_score, ts, matched,
                              cfg.appearance)
        remaining = [t for t in active if id(t) not in matched
                     and t.state is TrackState.CONFIRMED]
        left_low = self._assign(remaining, low, cfg.low_match_iou, False, ts, matched, None)
        for track in active:
            if id(track) not in matched:
                track.state = TrackState.LOST
                track.misses += 1
        return left_d, left_low

    def _assign(self, tracks: list[Track], dets: Boxes, min_iou: float, fuse: bool, ts: float,
                matched: set[int], appearance: AppearanceConfig | None) -> list[int]:
        """Match ``tracks`` to ``dets``, update the matched tracks; returns the indices of
        the boxes left over."""
        pairs, _, left = associate(tracks, dets, min_iou, fuse, appearance)
        for ti, di in pairs:
            self._update_track(tracks[ti], dets, di, ts)
            matched.add(id(tracks[ti]))
        return left

    def _update_track(self, track: Track, dets: Boxes, index: int, ts: float) -> None:
        """Kalman update with box ``index``; its embedding joins the track's average when it
        is a clean view (see ``Boxes.fresh``)."""
        track.update(dets.boxes[index], float(dets.scores[index]), ts, self.config.min_hits)
        if dets.feats is not None and dets.fresh is not None and dets.fresh[index]:
            track.feature = ema_update(track.feature, dets.feats[index],
                                       self.config.appearance.ema)

    def _match_tentative_and_start(self, rest: Boxes, ts: float) -> None:
        """Pass 3: tentative tracks take the remaining high boxes (a miss removes them);
        confident leftovers start new tracks; long-lost tracks are removed."""
        cfg = self.config
        floor = np.array([cfg.threshold(int(k)) or 0.0 for k in rest.classes]).reshape(-1)
        if cfg.weak_start is not None:
            floor = np.minimum(floor, cfg.weak_start)
        high = rest.take(rest.scores >= floor)
        tentative = [t for t in self.tracks if t.state is TrackState.TENTATIVE]
        pairs, left_t, left_d = associate(tentative, high, cfg.tentative_match_iou,
                                          fuse_score=True)
        for ti, di in pairs:
            self._update_track(tentative[ti], high, di, ts)
        dead = {id(tentative[i]) for i in left_t}
        self.tracks = [t for t in self.tracks if id(t) not in dead and t.misses <= cfg.max_lost]
        for di in left_d:
            threshold = cfg.threshold(int(high.classes[di]))
            if threshold is None:
                continue
            strong = high.scores[di] >= threshold + cfg.new_track_margin
            if strong or cfg.weak_start is not None:
                track = Track.start(self.next_id, high.boxes[di], int(high.classes[di]),
                                    float(high.scores[di]), ts)
                track.needed = 0 if strong else cfg.weak_hits
                if high.feats is not None and high.feats[di].any():
                    track.feature = high.feats[di].copy()
                self.tracks.append(track)
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
                "embedding_model": self.embedding_model,
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
        tracker.embedding_model = data.get("embedding_model")
        return tracker
