"""The faces stage's pure logic: output parsing, quality gate, matching, cool-down, privacy."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from argus.inference.faces import (
    CROP_KEY,
    DetectedFace,
    FaceStage,
    FrameSampler,
    assign_track,
    blur_faces_except,
    face_crop_jpeg,
    parse_faces,
    pixel_box,
)
from argus.watchlist.store import Person, WatchlistIndex


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=512).astype(np.float32)
    return v / np.linalg.norm(v)


WANTED = unit(1)


def face(embedding: np.ndarray, quality: float = 0.9,
         box: tuple[float, float, float, float] = (0.4, 0.1, 0.5, 0.25)) -> DetectedFace:
    return DetectedFace(box=box, landmarks=np.zeros((5, 2), np.float32), score=0.95,
                        quality=quality, parts=(1.0, quality, 1.0), embedding=embedding)


@pytest.fixture
def stage() -> FaceStage:
    index = WatchlistIndex(thresholds={"wanted": 0.6})
    index.put(Person(person_id="p1", list_id="wanted", reference="case-42", category="wanted",
                     photos=1, created_at=1.0, updated_at=1.0, created_by="t", key_id="k"),
              WANTED)
    return FaceStage(index=index, min_quality=0.5, cooldown_s=10.0)


def test_parse_faces_drops_padding() -> None:
    outputs = {
        "COUNT": np.array([[2], [0]], np.int32),
        "BOXES": np.array([[[0.1, 0.1, 0.2, 0.3], [0.5, 0.5, 1.2, 0.9], [0, 0, 0, 0]],
                           np.zeros((3, 4))], np.float32),
        "LANDMARKS": np.zeros((2, 3, 10), np.float32),
        "SCORES": np.array([[0.9, 0.8, 0], [0, 0, 0]], np.float32),
        "QUALITY": np.array([[0.7, 0.6, 0], [0, 0, 0]], np.float32),
        "QUALITY_PARTS": np.ones((2, 3, 3), np.float32),
        "EMBEDDINGS": np.ones((2, 3, 512), np.float32),
    }
    first = parse_faces(outputs, 0)
    assert [f.score for f in first] == pytest.approx([0.9, 0.8])
    assert first[1].box == pytest.approx((0.5, 0.5, 1.0, 0.9))  # clipped to the image
    assert first[0].landmarks.shape == (5, 2) and first[0].embedding.shape == (512,)
    assert parse_faces(outputs, 1) == []


def test_only_matches_become_events(stage: FaceStage) -> None:
    faces = [face(WANTED * 0.8 + unit(5) * 0.6), face(unit(2)), face(unit(3)),
             face(WANTED, quality=0.3)]
    result = stage.process("cam-1", "site-1", seq=7, ts=1000.0, faces=faces,
                           tracks=[(4, (0.35, 0.05, 0.6, 0.95))])
    assert (result.matched, result.unmatched, result.low_quality) == (1, 2, 1)
    (event,) = result.events
    assert event.person_id == "p1" and event.person_ref == "case-42"
    assert event.list_id == "wanted" and event.category == "wanted" and event.track_id == 4
    assert event.similarity > 0.6 and event.threshold == 0.6
    assert event.crop_ref == CROP_KEY.format(event_id=event.event_id)
    dumped = event.model_dump_json()
    assert "embedding" not in dumped and "case-42" in dumped
    # deterministic id: the same frame gives the same event id (idempotent sinks)
    again = FaceStage(index=stage.index).process("cam-1", "site-1", 7, 1000.0, faces)
    assert again.events[0].event_id == event.event_id and again.events[0].track_id is None


@pytest.mark.parametrize(
    ("camera", "dt", "emitted"),
    [("cam-1", 3.0, False), ("cam-1", 10.0, True), ("cam-2", 0.5, True)],
)
def test_cooldown_per_camera_and_person(stage: FaceStage, camera: str, dt: float,
                                        emitted: bool) -> None:
    first = stage.process("cam-1", "s", 1, 1000.0, [face(WANTED)])
    assert len(first.events) == 1
    later = stage.process(camera, "s", 2, 1000.0 + dt, [face(WANTED)])
    assert len(later.events) == int(emitted) and later.suppressed == int(not emitted)
    assert later.matched == 1


def test_empty_index_counts_everything_as_unmatched() -> None:
    result = FaceStage(index=WatchlistIndex()).process("c", "s", 1, 1.0, [face(WANTED)] * 3)
    assert (result.events, result.matched, result.unmatched) == ([], 0, 3)


@pytest.mark.parametrize(
    ("face_box", "tracks", "expected"),
    [
        ((0.4, 0.1, 0.5, 0.2), [(1, (0.3, 0.0, 0.6, 1.0))], 1),
        ((0.4, 0.7, 0.5, 0.8), [(1, (0.3, 0.0, 0.6, 1.0))], None),  # centre in the lower half
        ((0.4, 0.1, 0.5, 0.2), [(1, (0.0, 0.0, 1.0, 1.0)), (2, (0.35, 0.05, 0.55, 0.6))], 2),
        ((0.8, 0.1, 0.9, 0.2), [(1, (0.3, 0.0, 0.6, 1.0))], None),
        ((0.4, 0.1, 0.5, 0.2), [], None),
    ],
)
def test_assign_track(face_box: tuple[float, ...], tracks: list[tuple[int, tuple[float, ...]]],
                      expected: int | None) -> None:
    assert assign_track(face_box, tracks) == expected


@pytest.mark.parametrize(
    ("box", "margin", "pixels"),
    [((0.1, 0.2, 0.3, 0.6), 0.0, (10, 20, 30, 60)), ((0.1, 0.2, 0.3, 0.6), 0.5, (0, 0, 40, 80)),
     ((0.9, 0.9, 1.0, 1.0), 1.0, (80, 80, 100, 100))],
)
def test_pixel_box(box: tuple[float, float, float, float], margin: float,
                   pixels: tuple[int, int, int, int]) -> None:
    assert pixel_box(box, 100, 100, margin) == pixels


def test_blur_keeps_only_the_matched_face() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    boxes = [(0.1, 0.1, 0.3, 0.3), (0.6, 0.6, 0.9, 0.9)]
    out = blur_faces_except(image, boxes, keep=1)
    assert np.array_equal(out[130:170, 130:170], image[130:170, 130:170])  # the match, intact
    assert not np.array_equal(out[25:55, 25:55], image[25:55, 25:55])  # the other, hidden
    assert float(np.abs(np.diff(out[25:55, 25:55].astype(int), axis=1)).mean()) < 20
    assert np.array_equal(out[:, 190:], image[:, 190:])  # outside every face: untouched
    assert not np.array_equal(blur_faces_except(image, boxes, keep=None)[130:170, 130:170],
                              image[130:170, 130:170])  # no match: every face hidden


def test_face_crop_jpeg_is_the_face_region() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    jpeg = face_crop_jpeg(image, (0.5, 0.5, 0.6, 0.7), margin=0.0)
    crop = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert crop is not None and crop.shape == (20, 20, 3)  # x 100..120, y 50..70


def test_frame_sampler_takes_one_frame_per_interval_per_camera() -> None:
    sampler = FrameSampler(interval_s=1.0)
    taken = [sampler.take(cam, ts) for cam, ts in [
        ("a", 10.0), ("a", 10.4), ("b", 10.5), ("a", 11.0), ("a", 10.2), ("a", 11.9),
        ("a", 12.05), ("b", 11.4)]]
    assert taken == [True, False, True, True, False, False, True, False]


@pytest.mark.parametrize(("blocks", "box"), [
    (8, (0.3, 0.3, 0.6, 0.7)), (8, (0.0, 0.0, 1.0, 0.2)), (4, (0.3, 0.3, 0.6, 0.7)),
    (8, (0.9, 0.9, 1.0, 1.0)),
])
def test_a_hidden_face_keeps_no_more_than_blocks_squared_colours(
        blocks: int, box: tuple[float, float, float, float]) -> None:
    image = np.random.default_rng(1).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    out = blur_faces_except(image, [box], keep=None, blocks=blocks)
    x1, y1, x2, y2 = pixel_box(box, 400, 300, margin=0.15)
    colours = np.unique(out[y1:y2, x1:x2].reshape(-1, 3), axis=0)
    assert 1 <= len(colours) <= blocks * blocks
    outside = np.ones((300, 400), bool)
    outside[y1:y2, x1:x2] = False
    assert np.array_equal(out[outside], image[outside])
