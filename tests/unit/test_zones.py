"""Zone geometry and the zone-intrusion behaviour, as tables."""

from __future__ import annotations

import pytest

from argus.geometry import objects_in_zone, point_in_polygon
from argus.topology import Camera, CameraZone
from pipelines.stages.zones.intrusion import ZoneIntrusion
from schemas.detections import Box, Detection, Detections

SQUARE = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
L_SHAPE = [(0.0, 0.0), (0.6, 0.0), (0.6, 0.4), (1.0, 0.4), (1.0, 1.0), (0.0, 1.0)]
TRIANGLE = [(0.5, 0.1), (0.9, 0.9), (0.1, 0.9)]


@pytest.mark.parametrize(
    ("point", "polygon", "inside"),
    [
        ((0.5, 0.5), SQUARE, True),
        ((1.5, 0.5), SQUARE, False),
        ((0.0, 0.5), SQUARE, True),  # on an edge
        ((1.0, 1.0), SQUARE, True),  # on a corner
        ((0.8, 0.2), L_SHAPE, False),  # in the notch
        ((0.8, 0.6), L_SHAPE, True),
        ((0.3, 0.2), L_SHAPE, True),
        ((0.5, 0.5), TRIANGLE, True),
        ((0.15, 0.2), TRIANGLE, False),
        ((0.5, 0.95), TRIANGLE, False),
    ],
)
def test_point_in_polygon(point: tuple[float, float], polygon: list[tuple[float, float]],
                          inside: bool) -> None:
    assert point_in_polygon(point, polygon) is inside


def det(x1: float, y1: float, x2: float, y2: float, cls: str = "person", score: float = 0.9
        ) -> Detection:
    return Detection(box=Box(x1=x1, y1=y1, x2=x2, y2=y2), class_id=0 if cls == "person" else 2,
                     class_name=cls, score=score)


LOWER_HALF = CameraZone(id="z", polygon=[(0, 0.5), (1, 0.5), (1, 1), (0, 1)], site_zone="lobby")


@pytest.mark.parametrize(
    ("detection", "counted"),
    [
        (det(0.1, 0.3, 0.2, 0.8), True),  # feet in the lower half
        (det(0.1, 0.1, 0.2, 0.4), False),  # feet above the zone
        (det(0.1, 0.3, 0.2, 0.8, cls="car"), False),  # wrong class
        (det(0.1, 0.3, 0.2, 0.8, score=0.2), False),  # below min_score
    ],
)
def test_objects_in_zone(detection: Detection, counted: bool) -> None:
    assert (objects_in_zone([detection], LOWER_HALF) == [detection]) is counted


def frame(seq: int, ts: float, *dets: Detection) -> Detections:
    return Detections(camera_id="cam", seq=seq, capture_ts=ts, width=640, height=480,
                      detections=list(dets), model="detector", model_version="1",
                      inference_ms=1.0)


CAMERA = Camera(id="cam", site="site", source="x.mp4", zones=[LOWER_HALF])


@pytest.mark.parametrize(
    ("frames", "emitted_seqs"),
    [
        # one person for 25 s at 1 fps: an event at 0, 10, 20 s (cool-down 10 s)
        ([(i, 1000.0 + i, True) for i in range(25)], [0, 10, 20]),
        # nobody: nothing
        ([(i, 1000.0 + i, False) for i in range(5)], []),
        # person leaves and comes back within the cool-down: still one event
        ([(0, 1000.0, True), (1, 1001.0, False), (2, 1005.0, True)], [0]),
        # out-of-order frame (older than the last event) does not re-emit
        ([(5, 1005.0, True), (3, 1003.0, True), (20, 1020.0, True)], [5, 20]),
    ],
)
def test_zone_intrusion_cooldown(frames: list[tuple[int, float, bool]], emitted_seqs: list[int]
                                 ) -> None:
    rule = ZoneIntrusion(cooldown_s=10.0)
    person = det(0.4, 0.4, 0.5, 0.9)
    emitted = []
    for seq, ts, present in frames:
        for event in rule(frame(seq, ts, *([person] if present else [])), CAMERA):
            emitted.append(event.seq)
            assert event.site_zone_id == "lobby"
            assert event.event_id == f"cam:z:zone_intrusion:{seq}"
            assert event.count == 1
    assert emitted == emitted_seqs


def test_a_behaviour_only_zone_emits_no_intrusion() -> None:
    quiet = Camera(id="cam", site="site", source="x.mp4",
                   zones=[LOWER_HALF.model_copy(update={"intrusion": False})])
    person = det(0.4, 0.4, 0.5, 0.9)
    assert ZoneIntrusion()(frame(0, 1000.0, person), quiet) == []
    assert len(ZoneIntrusion()(frame(0, 1000.0, person), CAMERA)) == 1
