"""The object method of the anomaly stage (``anomaly_objects``: ``tracks`` → ``events.video``)
on synthetic ``tracks`` messages with a model file in a temporary folder: which frames make
an event, what the event says, repeats, cameras without a model, reloads."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import numpy as np
import pytest

from argus.anomaly_objects import ObjectModel, ObjectParams, fit_model, object_features
from argus.settings import Settings
from argus.topology import Topology
from pipelines.stage import Record, Rejected
from pipelines.stages.anomaly.agent import AnomalySettings
from pipelines.stages.anomaly.stage import AnomalyObjects
from schemas.detections import Box
from schemas.events import VideoEvent
from schemas.tracks import Track, Tracks, Velocity

T0 = 1_700_000_000.0
FPS = 10.0
WALK = 0.2 * 240 / 360 / FPS  # normalised x per frame of a 0.2-high box at 1 height/s

TOPOLOGY = Topology.model_validate({
    "sites": [{"id": "s", "lat": 0.0, "lon": 0.0, "zones": [{"id": "street"}]}],
    "cameras": [
        {"id": "cam", "site": "s", "source": "x",
         "zones": [{"id": "road", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]],
                    "site_zone": "street"}]},
        {"id": "untrained", "site": "s", "source": "y"}]})


def normal_model(threshold_factor: float = 1.0) -> ObjectModel:
    rng = np.random.default_rng(2)

    def walker() -> np.ndarray:
        h = rng.normal(0.2, 0.01)
        speed = rng.normal(1.0, 0.1) if rng.random() > 0.2 else 0.0
        box = (0.4, 0.4, 0.4 + 0.5 * h * 240 / 360, 0.4 + h)
        return object_features(box, 0, (speed * h * 240 / 360, 0.0), 360, 240)

    clips = [[np.stack([walker() for _ in range(3)]) for _ in range(40)] for _ in range(3)]
    return fit_model(clips, ObjectParams(window=3, margin=threshold_factor))


def track(track_id: int, x: float, y: float, seq: int, class_id: int = 0) -> Track:
    ts = T0 + seq / FPS
    return Track(track_id=track_id, class_id=class_id,
                 class_name={0: "person", 1: "bicycle"}[class_id],
                 box=Box(x1=x, y1=y, x2=x + 0.2 * 240 / 360 / 2, y2=y + 0.2),
                 velocity=Velocity(vx=0.0, vy=0.0), age=seq, state="confirmed",
                 first_seen=T0, last_seen=ts, score=0.9)


def record(camera: str, seq: int, bicycle_from: int | None = None) -> Record:
    tracks = [track(1, 0.1 + seq * WALK, 0.3, seq)]
    if bicycle_from is not None and seq >= bicycle_from:
        tracks.append(track(2, 0.05 + (seq - bicycle_from) * 3 * WALK, 0.6, seq, class_id=1))
    message = Tracks(camera_id=camera, seq=seq, capture_ts=T0 + seq / FPS, width=360,
                     height=240, tracks=tracks)
    return Record(topic="tracks", key=camera.encode(), value=message.model_dump_json().encode())


@pytest.fixture
def stage(tmp_path: Path) -> AnomalyObjects:
    (tmp_path / "cam.json").write_text(json.dumps(normal_model().to_dict()))
    config = AnomalySettings(method="objects", objects_dir=tmp_path, min_frames=2,
                             cooldown_s=30.0, reload_s=0.0)
    return AnomalyObjects.local(Settings(), TOPOLOGY, config)


def run(stage: AnomalyObjects, records: list[Record]) -> list[VideoEvent]:
    async def each() -> list[VideoEvent]:
        events: list[VideoEvent] = []
        for item in records:
            events += await stage.handle_one(stage.parse(item))
        return events

    return asyncio.run(each())


@pytest.mark.parametrize(("bicycle_from", "events"), [(None, 0), (5, 1)])
def test_a_fast_bicycle_makes_one_event_that_says_why(
        stage: AnomalyObjects, bicycle_from: int | None, events: int) -> None:
    got = run(stage, [record("cam", seq, bicycle_from) for seq in range(20)])
    assert len(got) == events  # one, then the cool-down
    if events:
        event = got[0]
        assert event.kind == "anomaly" and event.class_name == "bicycle"
        assert event.track_ids == [2] and event.zone_id == "road"
        assert event.site_zone_id == "street" and event.seq in {6, 7}
        assert event.event_id == f"cam:road:anomaly:{event.seq}"
        assert event.box.y1 == pytest.approx(0.6)
        attrs = event.attributes
        assert attrs["method"] == "objects" and attrs["track_id"] == 2
        assert attrs["attribute_group"] in {"class", "motion"}
        assert str(attrs["why"]).startswith("bicycle #2: ")
        assert float(str(attrs["score"])) > float(str(attrs["threshold"]))
        assert 0.5 < event.score <= 1.0


def test_repeats_are_skipped(stage: AnomalyObjects) -> None:
    records = [record("cam", seq, 2) for seq in range(6)]
    first = run(stage, records)
    assert len(first) == 1
    assert run(stage, records) == []  # redelivered: not newer, nothing twice


def test_cameras_without_a_model_and_unknown_cameras(stage: AnomalyObjects) -> None:
    assert run(stage, [record("untrained", seq, 0) for seq in range(10)]) == []
    with pytest.raises(Rejected):
        stage.parse(record("nowhere", 0))


def test_a_retrained_model_is_picked_up(stage: AnomalyObjects, tmp_path: Path) -> None:
    path = tmp_path / "cam.json"
    path.write_text(json.dumps(normal_model(threshold_factor=1e6).to_dict()))
    os.utime(path, (T0, T0))  # a different modification time than the fixture's file
    assert run(stage, [record("cam", seq, 2) for seq in range(10)]) == []
    path.write_text(json.dumps(normal_model().to_dict()))
    os.utime(path, (T0 + 1, T0 + 1))
    assert len(run(stage, [record("cam", seq, 2) for seq in range(10, 20)])) == 1



def test_tracker_thresholds_the_camera_sets_are_compared_with_the_model() -> None:
    from argus.topology import Camera, CameraTracking
    from pipelines.stages.anomaly.objects import tracker_differences

    model = normal_model()
    model.info["tracker"] = {"default_threshold": 0.3, "new_track_margin": 0.1}

    def camera(tracking: CameraTracking | None) -> Camera:
        return Camera(id="cam", site="s", source="x.mp4", tracking=tracking)

    assert tracker_differences(camera(None), model) == {}  # the worker's: not known here
    assert tracker_differences(camera(CameraTracking(default_threshold=0.3,
                                                     new_track_margin=0.1)), model) == {}
    assert tracker_differences(camera(CameraTracking(default_threshold=0.5)), model) == {
        "default_threshold": (0.3, 0.5)}
    model.info.pop("tracker")
    assert tracker_differences(camera(CameraTracking(default_threshold=0.5)), model) == {}
