"""Object anomaly scores of a camera's ``tracks`` messages: the one path from the track
stage's output to :class:`argus.anomaly_objects.ObjectModel` scores, shared by
``argus eval anomaly --method objects`` (which builds the messages with the track stage's
registry) and the anomaly stage.

Pure: no Kafka, no clock. Per camera it keeps the tracks' recent centres (the median
velocity of :class:`~argus.anomaly_objects.CentreHistory`) and the last ``window`` raw frame
scores (the causal smoothing the evaluation measures).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from argus.anomaly_objects import (
    FEATURES,
    CentreHistory,
    FloatArray,
    ObjectModel,
    object_features,
)
from schemas.tracks import Track, Tracks

SPEED_FRAMES = 5


def seen_now(message: Tracks) -> list[Track]:
    """The tracks matched to a detection in this frame (tentative or confirmed), whose box is
    the frame's, not a prediction."""
    return [t for t in message.tracks
            if t.state != "lost" and t.last_seen == message.capture_ts]


def track_rows(message: Tracks, history: CentreHistory) -> tuple[FloatArray, list[Track]]:
    """The attribute rows [n, FEATURES] of the frame's matched tracks (and those tracks);
    records their centres in ``history``."""
    tracks = seen_now(message)
    rows = []
    for track in tracks:
        box = (track.box.x1, track.box.y1, track.box.x2, track.box.y2)
        velocity = history.velocity(track.track_id, box, message.capture_ts)
        rows.append(object_features(box, track.class_id, velocity, message.width,
                                    message.height))
    return np.array(rows, dtype=np.float64).reshape(-1, len(FEATURES)), tracks


@dataclass(frozen=True)
class FrameScore:
    """One frame's object anomaly score and why."""

    raw: float
    smoothed: float
    threshold: float
    track: Track | None  # the object that made the score (the most unusual of the window)
    group: str
    reason: str

    @property
    def above(self) -> bool:
        return self.smoothed > self.threshold

    def describe(self) -> str:
        """E.g. ``"bicycle #18: speed 3.5x normal"``."""
        if self.track is None:
            return "no objects"
        return f"{self.track.class_name} #{self.track.track_id}: {self.reason}"


class CameraScorer:
    """One camera's scorer: feed it the camera's ``tracks`` messages in order.

    The smoothed score is the mean of the last ``window`` raw frame scores, so the object
    it names is the most unusual one of those frames (the latest of equals), not only of
    the current frame: an object seen in one frame (a small cyclist the detector finds
    once) keeps the mean above the threshold for the next frames, which may hold no
    object at all."""

    def __init__(self, model: ObjectModel, speed_frames: int = SPEED_FRAMES) -> None:
        self.model = model
        self.history = CentreHistory(speed_frames)
        window = max(1, model.window)
        self.recent: deque[float] = deque(maxlen=window)
        self.culprits: deque[tuple[float, Track, str, str] | None] = deque(maxlen=window)

    def score(self, message: Tracks) -> FrameScore:
        """Score the frame, update the smoothing and say which object and attribute."""
        rows, tracks = track_rows(message, self.history)
        raw, why = self.model.score_frame(rows)
        self.recent.append(raw)
        self.culprits.append(None if why is None else
                             (why.score, tracks[why.index], why.group, why.reason))
        smoothed = float(np.mean(self.recent))
        worst = None
        for culprit in self.culprits:
            if culprit is not None and (worst is None or culprit[0] >= worst[0]):
                worst = culprit
        if worst is None:
            return FrameScore(raw, smoothed, self.model.threshold, None, "", "")
        return FrameScore(raw, smoothed, self.model.threshold, *worst[1:])
