"""The object method of the anomaly stage in the real worker: UCSD Ped2 clip 04 frames
(walkers, then a cart from frame 30) go to ``frames.raw``; the worker's detect (Triton),
track and ``anomaly_objects`` stages, on topics of their own, turn them into exactly one
``anomaly`` event that names the object and the attribute. The camera's model is trained
here on the normal frames of clips 01-03 (the evaluation's split A) with the evaluation's
code, and the track stage runs with the settings that evaluation measured."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from argus.anomaly_objects import ObjectParams, fit_model
from argus.kafka import make_producer
from argus.settings import Settings
from schemas.events import VideoEvent
from schemas.frames import FrameHeaders
from tests.conftest import start_worker
from tests.integration.test_correlation_restart import Private, on_topic, private_env
from tools.eval_anomaly import load_clips
from tools.train_anomaly import normal_pairs
from tools.train_anomaly_objects import Extractor, TrackParams

pytestmark = pytest.mark.integration

FRAMES = 80  # clip 04: normal 0-29, the cart from 30


@pytest.fixture(scope="module")
def private(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Private]:
    yield from private_env(stack, tmp_path_factory, "ao")


def train_split_a(stack: Settings, out: Path) -> None:
    root = stack.shared / "data" / "ucsd_ped2"
    clips = {c.name: c for c in load_clips(root / "frames", root / "frame_labels.csv", False)}
    extractor = Extractor(TrackParams())
    normal = []
    for name in ("01", "02", "03"):
        objects, _ = extractor.clip_objects(clips[name].paths)
        normal.append([objects[int(i)] for i in normal_pairs(clips[name].labels)])
    out.write_text(json.dumps(fit_model(normal, ObjectParams()).to_dict()))


@pytest.mark.timeout(300)
def test_a_cart_among_walkers_makes_one_event_saying_why(
        private: Private, tmp_path: Path) -> None:
    settings, camera = private.settings, private.camera
    train_split_a(settings, tmp_path / f"{camera}.json")
    proc, _ = start_worker(settings, "--stages", "detect,track,anomaly_objects",
                           log_path=private.log_path, env={
                               "ARGUS_ANOMALY_METHOD": "objects",
                               "ARGUS_ANOMALY_OBJECTS_DIR": str(tmp_path),
                               "ARGUS_ANOMALY_MIN_FRAMES": "3",
                               "ARGUS_ANOMALY_COOLDOWN_S": "1000",
                               "ARGUS_TRACK_DEFAULT_THRESHOLD": "0.3",
                               "ARGUS_TRACK_NEW_TRACK_MARGIN": "0.1",
                               "ARGUS_TRACK_REID": "false"})
    private.procs.append(proc)
    folder = settings.shared / "data" / "ucsd_ped2" / "frames" / "04"
    producer = make_producer(settings)
    try:
        for seq, path in enumerate(sorted(folder.glob("*.jpg"))[:FRAMES]):
            meta = FrameHeaders(camera_id=camera, seq=seq, capture_ts=1.8e9 + seq / 10,
                                width=360, height=240)
            producer.send(settings.topic("frames.raw"), key=camera.encode(),
                          value=path.read_bytes(), headers=meta.to_headers())
        producer.flush()
    finally:
        producer.close(5)
    values = on_topic(settings, "events.video", private.site.encode(), min_count=1,
                      timeout_s=120)
    events = [VideoEvent.model_validate_json(v) for v in values]
    anomalies = [e for e in events if e.kind == "anomaly"]
    assert len(anomalies) == 1, (events, private.log_tail())
    event = anomalies[0]
    assert 30 < event.seq < 60  # the cart comes at frame 30; smoothing and 3 frames later
    assert event.camera_id == camera and event.event_id.endswith(f":anomaly:{event.seq}")
    attrs = event.attributes
    assert attrs["method"] == "objects"
    assert attrs["attribute_group"] in {"class", "shape", "motion"}
    assert str(attrs["why"]).startswith(f"{event.class_name} #{attrs['track_id']}: ")
    assert "normal" in str(attrs["reason"])
    assert event.track_ids == [attrs["track_id"]]
    assert 0.0 <= event.box.x1 < event.box.x2 <= 1.0
    assert float(str(attrs["score"])) > float(str(attrs["threshold"])) > 0
