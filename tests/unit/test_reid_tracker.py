"""The tracker with appearance embeddings: synthetic sequences where IoU alone swaps ids."""

from __future__ import annotations

import json

import numpy as np
import pytest

from argus.inference.reid import AppearanceConfig
from pipelines.stages.track.tracker import Tracker, TrackerConfig, TrackState

PERSON = 0
DIM = 8
Box = tuple[float, float, float, float]


def look(index: int) -> np.ndarray:
    """A distinct unit embedding per person (``index`` -1: no embedding)."""
    v = np.zeros(DIM, dtype=np.float32)
    if index >= 0:
        v[index] = 1.0
    return v


def box(cx: float, cy: float = 0.5, w: float = 0.04, h: float = 0.16) -> Box:
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def swap_scene() -> list[list[tuple[float, int]]]:
    """Two people (looks 0 and 1) meet, stand side by side with overlapping boxes, swap
    places in one frame (one steps round the other), then walk apart: [(x, look)] per frame.
    Person 0 starts on the left and ends on the right."""
    frames = [[(0.40 + 0.01 * i, 0), (0.60 - 0.01 * i, 1)] for i in range(9)]  # meet
    frames += [[(0.48, 0), (0.52, 1)] for _ in range(4)]                     # side by side
    frames += [[(0.52, 0), (0.48, 1)] for _ in range(4)]                     # swapped
    frames += [[(0.52 + 0.01 * i, 0), (0.48 - 0.01 * i, 1)] for i in range(1, 9)]  # apart
    return frames


def run_scene(frames: list[list[tuple[float, int]]], config: TrackerConfig | None,
              looks: bool, tracker: Tracker | None = None, start: int = 0,
              ) -> tuple[Tracker, list[dict[int, float]]]:
    """Feed the frames; returns the tracker and, per frame, confirmed id → centre x."""
    tracker = tracker or Tracker(config)
    history = []
    for seq, frame in enumerate(frames, start=start):
        boxes = [box(x) for x, _ in frame]
        emb = np.array([look(k) for _, k in frame]) if looks else None
        out = tracker.update(boxes, [0.9] * len(frame), [PERSON] * len(frame), seq,
                             1000.0 + 0.1 * seq, emb)
        assert out is not None
        history.append({t.track_id: float(t.box[0] + t.box[2]) / 2 for t in out
                        if t.state is TrackState.CONFIRMED})
    return tracker, history


def final_side_of_first_left_id(history: list[dict[int, float]]) -> str:
    left_id = min(history[2], key=lambda tid: history[2][tid])
    return "right" if history[-1][left_id] > 0.5 else "left"


@pytest.mark.parametrize(("config", "looks", "expected"), [
    pytest.param(None, True, "right", id="distinct embeddings: ids follow the people"),
    pytest.param(None, False, "left", id="no embeddings: IoU keeps the places (swap)"),
    pytest.param(TrackerConfig(appearance=AppearanceConfig(enabled=False)), True, "left",
                 id="appearance disabled: IoU keeps the places (swap)"),
    pytest.param(TrackerConfig(appearance=AppearanceConfig(max_distance=0.5)), True, "right",
                 id="tighter appearance gate: still follows"),
])
def test_swapped_positions(config: TrackerConfig | None, looks: bool, expected: str) -> None:
    _, history = run_scene(swap_scene(), config, looks)
    assert len({tid for frame in history for tid in frame}) == 2  # no new ids either way
    assert final_side_of_first_left_id(history) == expected


def test_embedding_survives_a_state_round_trip() -> None:
    """The running embedding is part of the persisted state: a tracker restored just
    before the swap still gets it right."""
    frames = swap_scene()
    tracker, before = run_scene(frames[:13], None, True)
    state = json.loads(json.dumps(tracker.to_dict()))
    assert all(len(t["emb"]) == 12 for t in state["tracks"])  # 8 int8 codes in base64
    restored = Tracker.from_dict(state)
    features = {t.track_id: t.feature for t in restored.tracks}
    for t in tracker.tracks:
        stored = features[t.track_id]
        assert t.feature is not None and stored is not None
        np.testing.assert_allclose(stored, t.feature, atol=0.01)
    _, after = run_scene(frames[13:], None, True, tracker=restored, start=13)
    assert final_side_of_first_left_id(before + after) == "right"


def test_embeddings_average_only_clean_views() -> None:
    """A box overlapping another (its crop shows two people) does not change the track's
    embedding; a clean one moves it by 1 - ema."""
    tracker = Tracker()
    tracker.update([box(0.2)], [0.9], [PERSON], 0, 1000.0, [look(0)])
    tracker.update([box(0.2), box(0.215)], [0.9, 0.9], [PERSON] * 2, 1, 1000.1,
                   [look(1), look(2)])
    first = next(t for t in tracker.tracks if t.track_id == 1)
    assert first.feature is not None and first.feature.tolist() == look(0).tolist()
    tracker.update([box(0.2)], [0.9], [PERSON], 2, 1000.2, [look(1)])
    assert first.feature[1] == pytest.approx(0.1 / np.hypot(0.9, 0.1), abs=1e-6)


def test_a_new_embedding_model_drops_the_old_embeddings() -> None:
    tracker = Tracker()
    tracker.use_embedding_model("osnet")
    tracker.update([box(0.2)], [0.9], [PERSON], 0, 1000.0, [look(0)])
    tracker.use_embedding_model("osnet")
    assert tracker.tracks[0].feature is not None
    tracker.use_embedding_model("another")
    assert tracker.tracks[0].feature is None
    assert Tracker.from_dict(tracker.to_dict()).embedding_model == "another"


def test_boxes_without_embeddings_mix_with_boxes_with_them() -> None:
    """Zero rows (no embedding, e.g. below the detector's re-id floor) match on IoU alone."""
    tracker = Tracker()
    for seq in range(6):
        emb = [look(0) if seq % 2 else look(-1)]
        tracker.update([box(0.2 + 0.005 * seq)], [0.9], [PERSON], seq, 1000.0 + seq / 10, emb)
    assert [(t.track_id, t.state) for t in tracker.tracks] == [(1, TrackState.CONFIRMED)]
