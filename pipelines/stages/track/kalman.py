"""A tracked object's Kalman filter and bookkeeping (the tracker's per-track state).

Constant-velocity Kalman filter on ``(cx, cy, aspect, height)`` in normalised image units,
ByteTrack's noise model (position and velocity noise proportional to the box height), plus
lifecycle (``state``, hits, misses), the running appearance embedding (``feature``, see
``argus.inference.reid``) and a JSON-safe round trip (:meth:`Track.to_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.linalg import cho_factor, cho_solve

from argus.inference.reid import FloatArray, encode_embedding, feature_from_state

Array = npt.NDArray[np.float64]

_F = np.eye(8)
_F[:4, 4:] = np.eye(4)
_H = np.eye(4, 8)
_STD_POS, _STD_VEL = 1.0 / 20, 1.0 / 160


class TrackState(StrEnum):
    TENTATIVE = "tentative"
    CONFIRMED = "confirmed"
    LOST = "lost"


def xyxy_to_xyah(box: Array) -> Array:
    """``x1, y1, x2, y2`` → centre x, centre y, aspect (w/h), height."""
    w, h = box[2] - box[0], max(box[3] - box[1], 1e-6)
    return np.array([box[0] + w / 2, box[1] + h / 2, w / h, h])


def xyah_to_xyxy(xyah: Array) -> Array:
    """Centre x, centre y, aspect, height → ``x1, y1, x2, y2``."""
    h = max(float(xyah[3]), 1e-6)
    w = float(xyah[2]) * h
    return np.array([xyah[0] - w / 2, xyah[1] - h / 2, xyah[0] + w / 2, xyah[1] + h / 2])


@dataclass
class Track:
    """One tracked object: Kalman mean (8) and covariance (8x8) plus bookkeeping;
    ``feature`` is its running unit appearance embedding (None: none yet), ``needed`` the
    hits it needs to be confirmed when more than the tracker's ``min_hits`` (weak start)."""

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
    feature: FloatArray | None = None
    needed: int = 0

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
        if self.state is TrackState.LOST or self.hits >= max(min_hits, self.needed):
            self.state = TrackState.CONFIRMED

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.track_id, "cls": self.class_id, "mean": _floats(self.mean),
                "cov": _floats(self.cov[np.triu_indices(8)]), "score": round(self.score, 4),
                "state": self.state.value, "hits": self.hits, "age": self.age,
                "misses": self.misses, "first_ts": self.first_ts, "last_ts": self.last_ts,
                **({} if self.feature is None else {"emb": encode_embedding(self.feature)}),
                **({"needed": self.needed} if self.needed else {})}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Track:
        cov = np.zeros((8, 8))
        cov[np.triu_indices(8)] = d["cov"]
        cov = cov + np.triu(cov, 1).T
        return cls(int(d["id"]), int(d["cls"]), np.array(d["mean"], dtype=float), cov,
                   float(d["score"]), TrackState(d["state"]), int(d["hits"]), int(d["age"]),
                   int(d["misses"]), float(d["first_ts"]), float(d["last_ts"]),
                   feature_from_state(d.get("emb")), int(d.get("needed", 0)))


def _floats(values: Array) -> list[float]:
    return [float(f"{v:.7g}") for v in np.asarray(values).ravel()]
