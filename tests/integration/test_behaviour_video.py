"""Behaviours on a real video: PETS09-S2L1 frames 1-300 (480x360, 10 fps), ``cam-pets`` in
tests/topology.yaml: the tripwire ``pets-mid`` (x = 0.7 from y = 0.25 to 0.8, drawn
downwards, so side A is right of it) and the ``lamp-post`` zone where people stand.

The tracks come from the real detector and tracker code (``argus eval mot --offline``'s
path: YOLOX-nano with the Triton config's parameters, then ``TrackerRegistry``); the
truth comes from the same behaviours run on the ground-truth boxes, and the ground truth
line crossings were also counted by hand from ``gt_frames_001_300.txt`` (foot points of
each person before and after x = 0.7):

* a_to_b (right to left): persons 19 (frame ~14), 11 (~51), 12 (~60), 16 (~142),
  17 (~160), 13 (~196), 9 (~231), 1 (~256), 14 (~264) — 9;
* b_to_a (left to right): 12 (~105), 11 (~114), 19 (~123), 15 (~173), 9 (~186) — 5.

Loitering (10 s): persons 9 and 15 stand by the lamp post from the first frames and are
10 s in the zone at frames ~110 and ~112; everybody else passes within 10 s.
Measured on 2026-11-22 (docs/behaviours.md): 9 and 5 crossings, each within one frame
(0.1 s) of the truth; loitering at frames 110 and 112, as the truth; no running; one crowd
(the truth has two).
"""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from argus.settings import Settings, get_settings
from argus.topology import Camera, Site, load_topology
from pipelines.stages.behaviour import CameraBehaviours
from schemas.detections import Box
from schemas.events import VideoEvent
from schemas.tracks import Track, Tracks, Velocity
from tests.conftest import TEST_TOPOLOGY
from tools.eval_mot import detector_parameters, load_gt, run_offline, sampled_frames

pytestmark = pytest.mark.integration

FRAMES, FPS, T0 = 300, 10.0, 1_700_000_000.0
HAND_COUNTED = {"a_to_b": 9, "b_to_a": 5}
W, H, GT_SCALE = 480, 360, 0.625


@pytest.fixture(scope="module")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="module")
def cam_pets(settings: Settings) -> tuple[Camera, Site]:
    topology = load_topology(TEST_TOPOLOGY, settings.shared)
    camera = topology.camera("cam-pets")
    assert camera is not None
    return camera, topology.site(camera.site)


@pytest.fixture(scope="module")
def detected(settings: Settings) -> list[Tracks]:
    """The real detector + tracker on frames 1-300 (seq 0 = frame 1), ~8 s on 2 cores."""
    video = settings.shared / "data" / "pets09_s2l1" / "vtest.avi"
    frame_of_seq, fps = sampled_frames(video, FPS, FRAMES)
    assert fps == FPS and len(frame_of_seq) == FRAMES
    tracks = run_offline(settings, video, frame_of_seq, fps, detector_parameters())
    return [tracks[seq] for seq in sorted(tracks)]


@pytest.fixture(scope="module")
def truth(settings: Settings) -> list[Tracks]:
    """The ground-truth boxes as confirmed tracks (the person id as track id)."""
    gt = load_gt(settings.shared / "data" / "pets09_s2l1" / "gt_frames_001_300.txt", GT_SCALE)
    out = []
    for frame in range(1, FRAMES + 1):
        ts = T0 + (frame - 1) / FPS
        tracks = [Track(track_id=pid, class_id=0, class_name="person",
                        box=Box(x1=max(x1 / W, 0), y1=max(y1 / H, 0), x2=min(x2 / W, 1),
                                y2=min(y2 / H, 1)),
                        velocity=Velocity(vx=0.0, vy=0.0), age=1, state="confirmed",
                        first_seen=ts, last_seen=ts, score=1.0)
                  for pid, (x1, y1, x2, y2) in gt.get(frame, [])]
        out.append(Tracks(camera_id="cam-pets", seq=frame - 1, capture_ts=ts, width=W,
                          height=H, tracks=tracks))
    return out


def replay(camera: Camera, site: Site, messages: list[Tracks]
           ) -> tuple[dict[str, list[VideoEvent]], Counter[str]]:
    """Events by kind, and crossings by direction."""
    engine = CameraBehaviours(camera)
    events: dict[str, list[VideoEvent]] = defaultdict(list)
    crossings: Counter[str] = Counter()
    for message in messages:
        result = engine.process(message, site)
        assert result is not None
        for event in result.events:
            events[event.kind].append(event)
        crossings.update(direction for _, direction in result.crossings)
    return events, crossings


def test_line_crossings_match_the_ground_truth(cam_pets: tuple[Camera, Site],
                                              detected: list[Tracks], truth: list[Tracks]
                                              ) -> None:
    true_events, true_counts = replay(*cam_pets, truth)
    assert dict(true_counts) == HAND_COUNTED
    events, counts = replay(*cam_pets, detected)
    for direction, expected in HAND_COUNTED.items():
        assert abs(counts[direction] - expected) <= 1, (direction, counts)
    crossing_events = events["line_crossing"]
    assert len(crossing_events) == sum(counts.values())  # no schedule: one event each
    # each true crossing is found, in the same direction, within 1 s
    found = 0
    for true in true_events["line_crossing"]:
        if any(e.attributes["direction"] == true.attributes["direction"]
               and abs(e.ts - true.ts) <= 1.0 for e in crossing_events):
            found += 1
    assert found >= len(true_events["line_crossing"]) - 1
    assert len({e.event_id for e in crossing_events}) == len(crossing_events)


def test_loitering_running_and_crowd(cam_pets: tuple[Camera, Site], detected: list[Tracks],
                                     truth: list[Tracks]) -> None:
    true_events, _ = replay(*cam_pets, truth)
    assert sorted(e.track_ids[0] for e in true_events["loitering"]) == [9, 15]
    assert [e.seq + 1 for e in true_events["loitering"]] == [110, 112]  # frame numbers
    events, _ = replay(*cam_pets, detected)
    loitering = events["loitering"]
    assert 1 <= len(loitering) <= 3, loitering
    for true in true_events["loitering"]:  # each found within 3 s
        assert any(abs(e.ts - true.ts) <= 3.0 for e in loitering), (true, loitering)
    for event in loitering:
        assert event.zone_id == "lamp-post" and float(event.attributes["dwell_s"]) >= 10.0
    assert events["running"] == []  # everybody walks
    crowds = events["crowd"]
    assert 1 <= len(crowds) <= len(true_events["crowd"]) == 2
    assert all(event.count >= 3 for event in crowds)
