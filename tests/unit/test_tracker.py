"""The ByteTrack-style tracker on synthetic sequences: the hard cases, table style."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable

import numpy as np
import pytest

from pipelines.stages.track.tracker import Tracker, TrackerConfig, TrackState, iou_matrix

PERSON, CAR = 0, 2
Det = tuple[tuple[float, float, float, float], float, int]
Frame = list[Det]


def person(cx: float, cy: float = 0.5, score: float = 0.9, w: float = 0.04, h: float = 0.16,
           cls: int = PERSON) -> Det:
    """A box centred on (cx, cy)."""
    return ((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), score, cls)


def feed(tracker: Tracker, frame: Frame, seq: int, ts: float | None = None,
         ) -> dict[int, np.ndarray]:
    """One frame in; the confirmed tracks out (id → box)."""
    boxes = [d[0] for d in frame]
    out = tracker.update(boxes, [d[1] for d in frame], [d[2] for d in frame], seq,
                         1000.0 + seq * 0.1 if ts is None else ts)
    assert out is not None
    return {t.track_id: t.box for t in out if t.state is TrackState.CONFIRMED}


def run(frames: list[Frame], config: TrackerConfig | None = None,
        seqs: list[int] | None = None) -> list[dict[int, np.ndarray]]:
    tracker = Tracker(config)
    return [feed(tracker, f, s) for f, s in zip(frames, seqs or range(len(frames)), strict=True)]


def ids_of(history: list[dict[int, np.ndarray]], near: Callable[[np.ndarray], bool]) -> set[int]:
    """Every track id whose box satisfies ``near`` at some frame."""
    return {tid for frame in history for tid, box in frame.items() if near(box)}


# --- scenarios: (name, frames, seqs, expected number of distinct confirmed ids) ---------
def _crossing() -> list[Frame]:
    # two people walk towards each other on nearly the same line and cross
    return [[person(0.2 + 0.015 * i, 0.50), person(0.8 - 0.015 * i, 0.52)] for i in range(40)]


def _occluded() -> list[Frame]:
    # walks right; hidden for 8 frames (behind a pillar), then seen again where expected
    return [[] if 10 <= i < 18 else [person(0.1 + 0.01 * i)] for i in range(30)]


def _side_by_side() -> list[Frame]:
    # two people walking together, boxes touching but not overlapping much
    return [[person(0.30 + 0.01 * i), person(0.34 + 0.01 * i)] for i in range(30)]


def _low_score_dip() -> list[Frame]:
    # the detector's score drops to 0.3 for 6 frames (partial occlusion)
    return [[person(0.1 + 0.01 * i, score=0.3 if 10 <= i < 16 else 0.9)] for i in range(30)]


SCENARIOS = [
    pytest.param(_crossing(), None, 2, id="crossing paths"),
    pytest.param(_occluded(), None, 1, id="occluded 8 frames then back"),
    pytest.param(_side_by_side(), None, 2, id="two people close together"),
    pytest.param(_low_score_dip(), None, 1, id="low-score second pass"),
    pytest.param([[person(0.1 + 0.01 * s)] for s in (0, 1, 2, 3, 8, 9, 10, 20, 21)],
                 [0, 1, 2, 3, 8, 9, 10, 20, 21], 1, id="missed frames (seq gaps)"),
]


@pytest.mark.parametrize(("frames", "seqs", "expected_ids"), SCENARIOS)
def test_ids_are_stable(frames: list[Frame], seqs: list[int] | None, expected_ids: int) -> None:
    history = run(frames, seqs=seqs)
    all_ids = {tid for frame in history for tid in frame}
    assert len(all_ids) == expected_ids
    # after confirmation every frame with a detection reports every object
    for frame, tracks in zip(frames[2:], history[2:], strict=True):
        assert len(tracks) == len(frame)


def test_crossing_keeps_each_identity_on_its_own_path() -> None:
    history = run(_crossing())
    left_to_right = ids_of(history[:5], lambda b: b[0] < 0.4)
    assert len(left_to_right) == 1
    tid = left_to_right.pop()
    xs = [frame[tid][0] for frame in history if tid in frame]
    assert len(xs) == 39 and all(b > a for a, b in itertools.pairwise(xs))


def test_occluded_track_is_lost_then_reactivated() -> None:
    tracker = Tracker()
    states = []
    for i, frame in enumerate(_occluded()):
        feed(tracker, frame, i)
        states.append([t.state for t in tracker.tracks])
    assert states[12] == [TrackState.LOST]
    assert states[20] == [TrackState.CONFIRMED]
    assert [t.track_id for t in tracker.tracks] == [1]


def test_without_second_pass_the_dip_loses_the_track() -> None:
    history = run(_low_score_dip(), TrackerConfig(low=0.5))
    assert all(not frame for frame in history[10:16])


@pytest.mark.parametrize(("gap", "same_id"), [(5, True), (30, True), (40, False)])
def test_long_gaps_remove_tracks(gap: int, same_id: bool) -> None:
    frames = [[person(0.1 + 0.001 * s)] for s in (0, 1, 2, 2 + gap, 3 + gap)]
    history = run(frames, seqs=[0, 1, 2, 2 + gap, 3 + gap])
    assert (set(history[1]) == set(history[4])) is same_id


def test_classes_never_share_a_track() -> None:
    # a person is lost; a car appears on the same spot: it gets its own (tentative) track
    frames = [[person(0.5)] for _ in range(5)] + [[person(0.5, cls=CAR)] for _ in range(5)]
    tracker = Tracker()
    for i, frame in enumerate(frames):
        feed(tracker, frame, i)
    by_class = {t.class_id: t for t in tracker.tracks}
    assert by_class[PERSON].state is TrackState.LOST
    assert by_class[CAR].state is TrackState.CONFIRMED
    assert by_class[PERSON].track_id != by_class[CAR].track_id


@pytest.mark.parametrize(("scores", "confirmed"), [
    ([0.9], False),                 # a one-off box never becomes a track
    ([0.9, 0.9], True),             # min_hits = 2
    ([0.65, 0.65, 0.65], False),    # below threshold + margin: never starts a track
    ([0.75, 0.55, 0.55], True),     # started high, then the high threshold is enough
])
def test_track_confirmation(scores: list[float], confirmed: bool) -> None:
    history = run([[person(0.5, score=s)] for s in scores])
    assert bool(history[-1]) is confirmed


@pytest.mark.parametrize(("scores", "confirmed"), [
    ([0.65, 0.65], False),              # a medium-score box starts a track needing 3 hits
    ([0.65, 0.65, 0.65], True),         # ... a cluster of three confirms it
    ([0.65, 0.3, 0.65, 0.65], False),   # a miss (0.3 is below weak_start) removes it
    ([0.45, 0.45, 0.45, 0.45], False),  # below weak_start: never
    ([0.75, 0.55], True),               # a confident start keeps min_hits = 2
])
def test_weak_start_from_medium_scores(scores: list[float], confirmed: bool) -> None:
    history = run([[person(0.5, score=s)] for s in scores],
                  TrackerConfig(weak_start=0.5, weak_hits=3))
    assert bool(history[-1]) is confirmed


def test_per_class_thresholds_and_untracked_classes() -> None:
    config = TrackerConfig(thresholds={CAR: 0.6}, default_threshold=None)
    frames = [[person(0.2), person(0.6, cls=CAR, score=0.85)] for _ in range(3)]
    tracker = Tracker(config)
    for i, frame in enumerate(frames):
        feed(tracker, frame, i)
    assert [t.class_id for t in tracker.tracks] == [CAR]  # persons are not tracked at all


@pytest.mark.parametrize(("seq", "ts", "applied", "track_id"), [
    (11, 1001.1, True, 1),    # the next frame
    (7, 1000.7, False, 1),    # an older frame arriving late: skipped, counted
    (10, 1001.0, False, 1),   # a duplicate (at-least-once redelivery)
    (0, 1001.2, True, 1),     # the grabber restarted its seq count: newer capture time
    (0, 1009.0, True, 2),     # ... 8 s later: 80 frame periods, the old track is gone
    (12, 990.0, False, 1),    # a newer seq but far older capture time (a stale replay)
])
def test_out_of_order_frames(seq: int, ts: float, applied: bool, track_id: int) -> None:
    tracker = Tracker()
    for s in range(11):
        feed(tracker, [person(0.1 + 0.01 * s)], s)
    before = json.dumps(tracker.to_dict())
    result = tracker.update([person(0.2)[0]], [0.9], [PERSON], seq, ts)
    assert (result is not None) is applied
    assert tracker.stale_frames == (0 if applied else 1)
    if not applied:
        assert json.dumps({**tracker.to_dict(), "stale_frames": 0}) == before
    else:
        assert [t.track_id for t in tracker.tracks] == [track_id]


def test_state_round_trip_gives_the_same_ids() -> None:
    frames = _crossing()
    original = Tracker()
    for i, frame in enumerate(frames[:20]):
        feed(original, frame, i)
    state = json.loads(json.dumps(original.to_dict()))  # JSON-safe
    restored = Tracker.from_dict(state)
    for i, frame in enumerate(frames[20:], start=20):
        a, b = feed(original, frame, i), feed(restored, frame, i)
        assert a.keys() == b.keys()
        for tid in a:
            np.testing.assert_allclose(a[tid], b[tid], atol=1e-5)
    assert restored.next_id == original.next_id


def test_thresholds_that_cannot_start_tracks_are_refused() -> None:
    with pytest.raises(ValueError, match="never start a track"):
        TrackerConfig(thresholds={CAR: 0.9}, new_track_margin=0.2)


def test_unsupported_state_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        Tracker.from_dict({"version": 99})


def test_velocity_is_in_units_per_second() -> None:
    tracker = Tracker()
    for s in range(20):  # 0.01 per frame at 10 frames/s = 0.1 units/s
        feed(tracker, [person(0.1 + 0.01 * s)], s, ts=50.0 + s * 0.1)
    vx, vy = tracker.velocity(tracker.tracks[0])
    assert vx == pytest.approx(0.1, rel=0.05) and abs(vy) < 0.005
    assert tracker.frame_period == pytest.approx(0.1)


@pytest.mark.parametrize(("a", "b", "iou"), [
    ((0, 0, 1, 1), (0, 0, 1, 1), 1.0),
    ((0, 0, 1, 1), (0.5, 0, 1.5, 1), 1 / 3),
    ((0, 0, 1, 1), (2, 2, 3, 3), 0.0),
])
def test_iou(a: tuple[float, ...], b: tuple[float, ...], iou: float) -> None:
    assert iou_matrix(np.array([a]), np.array([b]))[0, 0] == pytest.approx(iou)
