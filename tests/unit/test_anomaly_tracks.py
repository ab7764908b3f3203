"""Object anomaly scores of ``tracks`` messages (argus/anomaly_tracks.py): which tracks
count, velocities from the message sequence, smoothing, the reason."""

from __future__ import annotations

import numpy as np
import pytest

from argus.anomaly_objects import FEATURES, ObjectModel, ObjectParams, fit_model, object_features
from argus.anomaly_tracks import CameraScorer, seen_now, track_rows
from schemas.detections import Box
from schemas.tracks import Track, Tracks, TrackStateName, Velocity

T0 = 1_700_000_000.0
FPS = 10.0


def track(track_id: int, x: float, ts: float, state: TrackStateName = "confirmed",
          class_id: int = 0,
          last_seen: float | None = None, height: float = 0.2) -> Track:
    w = 0.5 * height * 240 / 360
    return Track(track_id=track_id, class_id=class_id,
                 class_name={0: "person", 1: "bicycle"}.get(class_id, str(class_id)),
                 box=Box(x1=x, y1=0.4, x2=x + w, y2=0.4 + height),
                 velocity=Velocity(vx=0.0, vy=0.0), age=1, state=state,
                 first_seen=T0, last_seen=ts if last_seen is None else last_seen, score=0.9)


def message(seq: int, tracks: list[Track]) -> Tracks:
    return Tracks(camera_id="cam", seq=seq, capture_ts=T0 + seq / FPS, width=360, height=240,
                  tracks=tracks)


@pytest.mark.parametrize(("state", "last_seen_offset", "counted"), [
    ("confirmed", 0.0, True),
    ("tentative", 0.0, True),  # a new object is scored from its first frame
    ("lost", -0.1, False),  # a predicted box is not this frame's
    ("confirmed", -0.1, False),
])
def test_seen_now(state: TrackStateName, last_seen_offset: float, counted: bool) -> None:
    ts = T0 + 1.0
    m = message(10, [track(1, 0.3, ts, state, last_seen=ts + last_seen_offset)])
    assert [t.track_id for t in seen_now(m)] == ([1] if counted else [])


def normal_model() -> ObjectModel:
    rng = np.random.default_rng(1)

    def walker() -> np.ndarray:
        h = rng.normal(0.2, 0.01)
        # heights per second; some stand (and a track's first frame has no speed yet)
        speed = rng.normal(1.0, 0.1) if rng.random() > 0.2 else 0.0
        box = (0.4, 0.4, 0.4 + 0.5 * h * 240 / 360, 0.4 + h)
        return object_features(box, 0, (speed * h * 240 / 360, 0.0), 360, 240)

    clips = [[np.stack([walker() for _ in range(3)]) for _ in range(40)] for _ in range(3)]
    return fit_model(clips, ObjectParams(window=3))


def test_track_rows_measure_speed_over_messages() -> None:
    from argus.anomaly_objects import CentreHistory

    history = CentreHistory(5)
    step = 0.2 * 240 / 360 / FPS  # one box height per second, in normalised x per frame
    for seq in range(4):
        ts = T0 + seq / FPS
        rows, tracks = track_rows(message(seq, [track(7, 0.2 + seq * step, ts),
                                                track(8, 0.6, ts, "lost", last_seen=T0)]),
                                  history)
    assert [t.track_id for t in tracks] == [7]
    assert rows.shape == (1, len(FEATURES))
    assert rows[0, FEATURES.index("speed")] == pytest.approx(1.0)


def test_camera_scorer_flags_a_fast_cyclist_and_says_why() -> None:
    model = normal_model()
    scorer = CameraScorer(model)
    walk = 0.2 * 240 / 360 / FPS  # 1 height/s
    results = []
    for seq in range(12):
        ts = T0 + seq / FPS
        tracks = [track(1, 0.1 + seq * walk, ts)]
        if seq >= 4:  # a bicycle at 4 heights/s from frame 4
            tracks.append(track(2, 0.5 + (seq - 4) * 4 * walk, ts, class_id=1))
        results.append(scorer.score(message(seq, tracks)))
    assert not any(r.above for r in results[:4])
    assert all(r.above for r in results[6:])
    last = results[-1]
    assert last.track is not None and last.track.track_id == 2
    assert last.group in {"class", "motion"}
    assert last.describe().startswith("bicycle #2: ")
    assert last.smoothed == pytest.approx(np.mean([r.raw for r in results[-3:]]))


def test_camera_scorer_without_objects() -> None:
    scorer = CameraScorer(normal_model())
    result = scorer.score(message(0, []))
    assert (result.raw, result.track, result.above) == (0.0, None, False)
    assert result.describe() == "no objects"


def test_camera_scorer_names_the_most_unusual_object_of_its_window() -> None:
    """A bicycle the detector finds in one frame keeps the smoothed score up for the next
    frames (which hold only a walker, or nothing): those frames still name the bicycle,
    until it leaves the smoothing window."""
    model = normal_model()  # window 3
    scorer = CameraScorer(model)
    results = []
    for seq in range(6):
        ts = T0 + seq / FPS
        tracks = [track(1, 0.1, ts)] if seq != 2 else []
        if seq == 1:
            tracks.append(track(2, 0.5, ts, class_id=1))
        results.append(scorer.score(message(seq, tracks)))
    named = [r.track.track_id if r.track is not None else None for r in results]
    assert named == [1, 2, 2, 2, 1, 1]  # frames 1-3 hold the bicycle in their window
    assert results[2].raw == 0.0 and results[2].above  # no object now, the bicycle's mean
    assert results[3].describe().startswith("bicycle #2: ")
