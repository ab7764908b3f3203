"""Faces on person tracks (pure logic): when a track is due, where its face is, the best-face
gate, one event per (track, person), tracker id switches, snapshot and crop references."""

from __future__ import annotations

import numpy as np
import pytest

from argus.inference.faces import CROP_KEY, DetectedFace, keep_key, snapshot_ref
from argus.watchlist.store import Person, WatchlistIndex
from pipelines.stages.faces.tracks import TrackFaces, head_region, track_face
from schemas.detections import Box
from schemas.tracks import Track, Tracks, Velocity

PERSON_BOX = (0.4, 0.2, 0.6, 0.9)
FACE_BOX = (0.46, 0.22, 0.54, 0.32)


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=512).astype(np.float32)
    return v / np.linalg.norm(v)


WANTED, STRANGER = unit(1), unit(2)


def track(track_id: int, box: tuple[float, ...] = PERSON_BOX, state: str = "confirmed",
          class_name: str = "person") -> Track:
    x1, y1, x2, y2 = box
    return Track(track_id=track_id, class_id=0 if class_name == "person" else 2,
                 class_name=class_name, box=Box(x1=x1, y1=y1, x2=x2, y2=y2),
                 velocity=Velocity(vx=0, vy=0), age=3, state=state,
                 first_seen=1.0, last_seen=1.0, score=0.9)


def frame(ts: float, *tracks: Track, camera: str = "cam-1", seq: int | None = None) -> Tracks:
    return Tracks(camera_id=camera, seq=int(ts * 5) if seq is None else seq, capture_ts=ts,
                  width=640, height=480, tracks=list(tracks))


def face(embedding: np.ndarray, quality: float = 0.8,
         box: tuple[float, float, float, float] = FACE_BOX) -> DetectedFace:
    return DetectedFace(box=box, landmarks=np.zeros((5, 2), np.float32), score=0.95,
                        quality=quality, parts=(1.0, quality, 1.0), embedding=embedding)


@pytest.fixture
def stage() -> TrackFaces:
    index = WatchlistIndex(thresholds={"wanted": 0.6})
    index.put(Person(person_id="p1", list_id="wanted", reference="case-42", category="wanted",
                     photos=1, created_at=1.0, updated_at=1.0, created_by="t", key_id="k"),
              WANTED)
    return TrackFaces(index=index, min_quality=0.5, interval_s=2.0)


@pytest.mark.parametrize(
    ("box", "size", "region"),
    [
        ((0.4, 0.2, 0.6, 0.8), (640, 480), (0.38, 0.14, 0.62, 0.65)),  # standing: upper part
        ((0.0, 0.0, 0.2, 1.0), (640, 480), (0.0, 0.0, 0.22, 0.75)),  # clipped at the edge
        ((0.9, 0.5, 1.0, 0.6), (0, 0), (0.89, 0.49, 1.0, 0.575)),  # no frame size: upper
        ((0.9, 0.5, 1.0, 0.6), (640, 480), (0.89, 0.49, 1.0, 0.6)),  # 64 x 48 px: all of it
        ((0.05, 0.07, 0.81, 0.95), (640, 480), (0.0, 0.0, 0.886, 0.95)),  # a portrait
    ],
)
def test_head_region(box: tuple[float, float, float, float], size: tuple[int, int],
                     region: tuple[float, float, float, float]) -> None:
    x1, y1, x2, y2 = box
    assert head_region(Box(x1=x1, y1=y1, x2=x2, y2=y2), *size) == pytest.approx(region)


@pytest.mark.parametrize(
    ("faces", "expected"),
    [
        ([], None),
        ([(0.46, 0.22, 0.54, 0.32, 0.7)], 0),
        ([(0.1, 0.22, 0.2, 0.32, 0.9), (0.46, 0.22, 0.54, 0.32, 0.7)], 1),  # other is outside
        ([(0.46, 0.22, 0.54, 0.32, 0.6), (0.5, 0.3, 0.58, 0.4, 0.8)], 1),  # the better one
        ([(0.46, 0.75, 0.54, 0.85, 0.9)], None),  # centre below the head region
        ([(0.36, 0.22, 0.46, 0.32, 0.9)], None),  # cut by the region's left edge (x 0.38)
        ([(0.46, 0.6, 0.54, 0.73, 0.9)], None),  # cut by its lower edge (y 0.725)
        ([(0.0, 0.0, 0.1, 0.1, 0.9)], None),
    ],
)
def test_track_face(faces: list[tuple[float, ...]], expected: int | None) -> None:
    found = [face(unit(i), quality=q, box=(x1, y1, x2, y2))
             for i, (x1, y1, x2, y2, q) in enumerate(faces)]
    x1, y1, x2, y2 = PERSON_BOX
    picked = track_face(Box(x1=x1, y1=y1, x2=x2, y2=y2), found, 640, 480)
    assert picked is (None if expected is None else found[expected])


def test_due_throttles_per_track_and_skips_unconfirmed_and_non_persons(
        stage: TrackFaces) -> None:
    sequence = [
        (10.0, [track(1), track(2, state="tentative"), track(3, class_name="car")], [1]),
        (10.2, [track(1), track(2)], [2]),  # 1 was looked at 0.2 s ago; 2 is new
        (11.9, [track(1), track(2)], []),
        (12.0, [track(1), track(2)], [1]),
        (12.3, [track(2), track(4)], [2, 4]),  # 1 ended and is forgotten
        (12.4, [track(1)], [1]),  # a track id seen again starts afresh
    ]
    for ts, tracks, due in sequence:
        assert [t.track_id for t in stage.due(frame(ts, *tracks))] == due, ts
    assert len(stage) == 1
    assert [t.track_id for t in stage.due(frame(10.0, track(7), camera="cam-2"))] == [7]
    assert stage.prune(now=400.0) == 2 and len(stage) == 0


@pytest.mark.parametrize(
    ("faces", "outcome"),
    [
        ([], "no_face"),
        ([face(WANTED, quality=0.3)], "low_quality"),
        ([face(STRANGER)], "unmatched"),
        ([face(WANTED)], "matched"),
    ],
)
def test_consider_outcomes(stage: TrackFaces, faces: list[DetectedFace], outcome: str) -> None:
    f = frame(10.0, track(5))
    stage.due(f)
    result = stage.consider(f, "site-1", f.tracks[0], faces)
    counts = {k: getattr(result, k) for k in ("no_face", "low_quality", "unmatched", "matched")}
    assert counts == {k: int(k == outcome) for k in counts}
    assert len(result.events) == int(outcome == "matched")


def test_one_event_per_track_and_person_from_the_best_face(stage: TrackFaces) -> None:
    steps = [  # (ts, quality, embedding) → (event, outcome)
        (10.0, 0.6, WANTED * 0.8 + unit(5) * 0.6, True, "matched"),
        (12.0, 0.55, WANTED, False, "not_better"),  # worse than the best so far: not matched
        (14.0, 0.9, WANTED, False, "suppressed"),  # better, matches again: already reported
    ]
    events = []
    for ts, quality, embedding, emitted, outcome in steps:
        f = frame(ts, track(5))
        assert stage.due(f)
        result = stage.consider(f, "site-1", f.tracks[0], [face(embedding, quality)])
        assert len(result.events) == int(emitted) and getattr(result, outcome) == 1, ts
        events += result.events
    (event,) = events
    assert (event.track_id, event.seq, event.person_ref, event.site_id) == (5, 50, "case-42",
                                                                           "site-1")
    assert event.crop_ref == CROP_KEY.format(event_id=event.event_id)
    assert event.snapshot_ref == snapshot_ref("cam-1", 50) == "frames.raw/cam-1/50"
    assert keep_key(event.snapshot_ref) == "argus:snapshot-keep:frames.raw/cam-1/50"
    assert event.face_box.x1 == pytest.approx(FACE_BOX[0]) and event.similarity > 0.6
    # another track of the same person is reported on its own; the id is deterministic
    again = TrackFaces(index=stage.index)
    f = frame(20.0, track(6))
    other = again.consider(f, "site-1", f.tracks[0], [face(WANTED)]).events[0]
    assert other.track_id == 6 and other.event_id != event.event_id
    replay = TrackFaces(index=stage.index).consider(f, "site-1", f.tracks[0], [face(WANTED)])
    assert replay.events[0].event_id == other.event_id


def test_a_track_that_changes_hands_is_searched_again(stage: TrackFaces) -> None:
    """The tracker gives the id to someone else: their face is matched even though it is
    of lower quality than the first person's."""
    f = frame(10.0, track(5))
    assert stage.consider(f, "s", f.tracks[0], [face(STRANGER, quality=0.95)]).unmatched == 1
    f = frame(12.0, track(5))
    result = stage.consider(f, "s", f.tracks[0], [face(WANTED, quality=0.7)])
    assert result.matched == 1 and len(result.events) == 1
