"""The track stage's logic: settings, per-camera registry, persistence, messages."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from argus.inference.detector import COCO_CLASSES
from argus.inference.reid import attach_embeddings
from pipelines.stages.track.registry import TrackerRegistry, TrackSettings
from schemas.detections import Box, Detection, Detections
from schemas.tracks import Tracks


def frame(seq: int, xs: list[float], camera: str = "cam-1", ts0: float = 1_700_000_000.0,
          class_name: str = "person", score: float = 0.9) -> Detections:
    """People (or ``class_name``) standing at the given x positions."""
    dets = [Detection(box=Box(x1=x, y1=0.4, x2=x + 0.04, y2=0.56),
                      class_id=COCO_CLASSES.index(class_name), class_name=class_name,
                      score=score) for x in xs]
    return Detections(camera_id=camera, seq=seq, capture_ts=ts0 + seq * 0.2, width=640,
                      height=480, detections=dets, model="detector", model_version="1",
                      inference_ms=1.0)


def registry(store: dict[str, Any] | None = None, **settings: Any) -> TrackerRegistry:
    s = TrackSettings(**settings)
    return TrackerRegistry(s.tracker_config(COCO_CLASSES), COCO_CLASSES,
                           store=store, persist_every_s=s.persist_every_s)


def confirmed_ids(message: Tracks | None) -> list[int]:
    assert message is not None
    return sorted(t.track_id for t in message.confirmed())


@pytest.mark.parametrize(("settings", "expected"), [
    ({}, {"default": 0.5, "person": 0.5, "car": 0.5}),
    ({"class_thresholds": {"car": 0.6}}, {"default": 0.5, "person": 0.5, "car": 0.6}),
    ({"classes": ["person"], "class_thresholds": {"person": 0.4}},
     {"default": None, "person": 0.4, "car": None}),
])
def test_settings_resolve_class_names(settings: dict[str, Any],
                                      expected: dict[str, float | None]) -> None:
    config = TrackSettings(**settings).tracker_config(COCO_CLASSES)
    assert config.default_threshold == expected["default"]
    assert config.threshold(COCO_CLASSES.index("person")) == expected["person"]
    assert config.threshold(COCO_CLASSES.index("car")) == expected["car"]


def test_settings_refuse_unknown_class_names() -> None:
    with pytest.raises(ValueError, match="unicorn"):
        TrackSettings(class_thresholds={"unicorn": 0.5}).tracker_config(COCO_CLASSES)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARGUS_TRACK_CLASS_THRESHOLDS", '{"person": 0.45}')
    monkeypatch.setenv("ARGUS_TRACK_MAX_LOST", "12")
    config = TrackSettings().tracker_config(COCO_CLASSES)
    assert (config.threshold(0), config.max_lost) == (0.45, 12)


def test_message_fields() -> None:
    reg = registry()
    messages = [reg.process(frame(seq, [0.2 + 0.01 * seq, 0.6])) for seq in range(10)]
    first, last = messages[0], messages[-1]
    assert first is not None and last is not None
    assert (last.camera_id, last.seq, last.width, last.height) == ("cam-1", 9, 640, 480)
    assert [t.state for t in first.tracks] == ["tentative", "tentative"]
    assert confirmed_ids(last) == [1, 2]
    walker = next(t for t in last.tracks if t.track_id == 1)
    assert walker.class_name == "person" and walker.age == 9
    assert walker.first_seen == pytest.approx(1_700_000_000.0)
    assert walker.last_seen == last.capture_ts
    assert walker.velocity.vx == pytest.approx(0.05, rel=0.3)  # 0.01 per 0.2 s frame
    assert walker.box.x1 == pytest.approx(0.29, abs=0.005)


def test_stale_frames_are_skipped_and_counted() -> None:
    reg = registry()
    for seq in range(5):
        reg.process(frame(seq, [0.3]))
    assert reg.process(frame(2, [0.3])) is None
    assert reg.stale == 1
    assert confirmed_ids(reg.process(frame(5, [0.3]))) == [1]


def test_state_survives_a_restart() -> None:
    store: dict[str, Any] = {}
    first = registry(store, persist_every_s=0.0)
    for seq in range(5):
        first.process(frame(seq, [0.2, 0.5]))
    # a new worker (process restart, or the partition moved) with the same table
    second = registry(store)
    assert confirmed_ids(second.process(frame(5, [0.2, 0.5]))) == [1, 2]
    assert second.restored == 1


def test_persisting_is_throttled_by_capture_time() -> None:
    store: dict[str, Any] = {}
    reg = registry(store, persist_every_s=1.0)
    revisions = []
    for seq in range(12):  # 0.2 s apart: writes at 0 s, 1 s, 2 s
        reg.process(frame(seq, [0.5]))
        revisions.append(store["cam-1"]["revision"])
    assert len(set(revisions)) == 3
    assert store["cam-1"]["state"]["last_seq"] == 10


def test_a_state_written_elsewhere_replaces_the_local_tracker() -> None:
    store: dict[str, Any] = {}
    a, b = registry(store, persist_every_s=0.0), registry(store, persist_every_s=0.0)
    for seq in range(4):
        a.process(frame(seq, [0.2]))
    # the partition moves to b, which sees a second person appear, then moves back to a
    for seq in range(4, 8):
        b.process(frame(seq, [0.2, 0.7]))
    message = a.process(frame(8, [0.2, 0.7]))
    assert confirmed_ids(message) == [1, 2]
    assert a.restored == 1


def test_unusable_stored_state_starts_afresh() -> None:
    store: dict[str, Any] = {"cam-1": {"revision": "x", "state": {"version": 99}}}
    reg = registry(store)
    reg.process(frame(0, [0.5]))
    assert confirmed_ids(reg.process(frame(1, [0.5]))) == [1]


def test_cameras_are_independent() -> None:
    reg = registry()
    for seq in range(3):
        a = reg.process(frame(seq, [0.2], camera="cam-a"))
        b = reg.process(frame(seq, [0.2, 0.6], camera="cam-b"))
    assert confirmed_ids(a) == [1] and confirmed_ids(b) == [1, 2]


def with_looks(message: Detections, looks: list[int], model: str = "osnet") -> Detections:
    """The frame with a one-hot int8 embedding per detection (-1: none), as the detect
    stage attaches the detector's ``EMBEDDINGS``."""
    codes = np.zeros((len(looks), 8), dtype=np.int8)
    for row, index in enumerate(looks):
        if index >= 0:
            codes[row, index] = 127
    return attach_embeddings(message, np.zeros(len(looks)), codes, model)


@pytest.mark.parametrize(("settings", "model", "has_embedding"), [
    ({}, "osnet", True),               # embeddings reach the tracker and its state
    ({"reid": False}, "osnet", False),  # ARGUS_TRACK_REID=false ignores them
])
def test_embeddings_reach_the_persisted_state(settings: dict[str, Any], model: str,
                                              has_embedding: bool) -> None:
    store: dict[str, Any] = {}
    reg = registry(store, persist_every_s=0.0, **settings)
    for seq in range(3):
        reg.process(with_looks(frame(seq, [0.2, 0.6]), [0, 1], model))
    state = store["cam-1"]["state"]
    assert [("emb" in t) for t in state["tracks"]] == [has_embedding] * 2
    assert state["embedding_model"] == ("osnet" if has_embedding else None)
    restored = registry(store)
    message = restored.process(with_looks(frame(3, [0.2, 0.6]), [0, 1], model))
    assert confirmed_ids(message) == [1, 2]
    if has_embedding:
        tracker = restored.tracker("cam-1")
        assert [int(np.argmax(t.feature)) for t in tracker.tracks if t.feature is not None
                ] == [0, 1]


def test_a_changed_reid_model_drops_the_tracks_embeddings() -> None:
    reg = registry()
    for seq in range(3):
        reg.process(with_looks(frame(seq, [0.2]), [0]))
    reg.process(with_looks(frame(3, [0.2]), [3], model="another"))
    tracker = reg.tracker("cam-1")
    assert tracker.embedding_model == "another"
    # the old average is gone: the track's embedding is the new model's box alone
    feature = tracker.tracks[0].feature
    assert feature is not None and feature.tolist() == [0.0, 0.0, 0.0, 1.0] + [0.0] * 4


def test_a_camera_with_its_own_thresholds_tracks_weaker_boxes() -> None:
    """Topology ``tracking`` (e.g. a camera scored by the object anomaly method, trained
    with 0.3 / 0.1) overrides the worker's thresholds for that camera only."""
    from argus.topology import Camera, CameraTracking, Site, Topology
    from pipelines.stages.track.stage import camera_configs

    own = CameraTracking(default_threshold=0.3, new_track_margin=0.1)
    topology = Topology(sites=[Site(id="s", name="S", lat=0.0, lon=0.0)], cameras=[
        Camera(id="cam-own", site="s", source="x.mp4", tracking=own),
        Camera(id="cam-1", site="s", source="y.mp4")])
    settings = TrackSettings()
    configs = camera_configs(settings, topology)
    assert set(configs) == {"cam-own"}
    assert (configs["cam-own"].default_threshold, configs["cam-own"].new_track_margin) == (
        0.3, 0.1)
    reg = TrackerRegistry(settings.tracker_config(COCO_CLASSES), COCO_CLASSES,
                          camera_configs=configs)
    weak = 0.45  # starts a track at 0.3 + 0.1, not at the defaults' 0.5 + 0.2
    started = {}
    for cam in ("cam-own", "cam-1"):
        message = reg.process(frame(0, [0.2], camera=cam, score=weak))
        assert message is not None
        started[cam] = len(message.tracks)
    assert started == {"cam-own": 1, "cam-1": 0}
    assert CameraTracking().overrides() == {}
