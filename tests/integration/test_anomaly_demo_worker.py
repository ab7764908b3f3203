"""The demo's walkway camera in the real worker: the cut of
``person-bicycle-car-detection.mp4`` the demo replays (an empty car park, a cyclist, then a
pedestrian), sampled at 5 fps as the grabber publishes it, goes to ``frames.raw``; the
worker's detect (Triton), track (the camera's own ``tracking`` thresholds from the topology)
and ``anomaly_objects`` stages (``ARGUS_ANOMALY_METHOD=flow,objects``) turn one pass into
exactly one ``anomaly`` event, naming a bicycle while the cyclist is in view. The camera's
model is trained here exactly as ``tools/anomaly_demo.py`` trains it, on the pedestrian."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from argus.kafka import make_producer
from argus.settings import Settings
from schemas.events import VideoEvent
from schemas.frames import FrameHeaders
from schemas.tracks import Tracks
from tests.conftest import start_worker
from tests.integration.test_correlation_restart import Private, on_topic, private_env
from tools import anomaly_demo
from tools.video_frames import cut_clip, sample_video

pytestmark = pytest.mark.integration

TOPOLOGY = """\
sites:
  - id: {site}
    name: Private test site
    lat: 48.85
    lon: 2.35
cameras:
  - id: {site}-cam
    site: {site}
    source: "0"   # no grabber: the test produces the frames
    fps: 5
    tracking: {{default_threshold: 0.3, new_track_margin: 0.1}}
"""
CYCLIST_S = (4.2, 9.9)  # in view, seconds of the cut (8.2-13.9 s of the file, by eye)


@pytest.fixture(scope="module")
def private(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Private]:
    yield from private_env(stack, tmp_path_factory, "ad", TOPOLOGY)


def test_the_demo_cyclist_makes_one_event_naming_a_bicycle(private: Private,
                                                            tmp_path: Path) -> None:
    settings, camera = private.settings, private.camera
    assert anomaly_demo.TRACKING == {"default_threshold": 0.3, "new_track_margin": 0.1}
    video = settings.shared / anomaly_demo.VIDEO
    if not video.is_file():
        pytest.skip(f"no {video}")
    clip = cut_clip(video, tmp_path / "walkway.avi", *anomaly_demo.CUT_S)
    anomaly_demo.train(clip, tmp_path / f"{camera}.json")
    assert anomaly_demo.cached_model_fits(tmp_path / f"{camera}.json", clip)
    proc, _ = start_worker(settings, "--stages", "detect,track,anomaly_objects",
                           log_path=private.log_path, env={
                               "ARGUS_ANOMALY_METHOD": "flow,objects",
                               "ARGUS_ANOMALY_OBJECTS_DIR": str(tmp_path)})
    private.procs.append(proc)
    frames = list(sample_video(clip, anomaly_demo.FPS))
    t0 = 1.8e9
    producer = make_producer(settings)
    try:
        for seq, frame in enumerate(frames):
            meta = FrameHeaders(camera_id=camera, seq=seq, capture_ts=t0 + frame.time_s,
                                width=768, height=432)
            producer.send(settings.topic("frames.raw"), key=camera.encode(),
                          value=frame.jpeg, headers=meta.to_headers())
        producer.flush()
    finally:
        producer.close(5)
    tracks = on_topic(settings, "tracks", camera.encode(), min_count=len(frames),
                      timeout_s=150)
    assert len(tracks) == len(frames), private.log_tail()
    assert Tracks.model_validate_json(tracks[-1]).seq == len(frames) - 1
    values = on_topic(settings, "events.video", private.site.encode(), min_count=2,
                      timeout_s=5)  # one is expected: wait a little for a second
    anomalies = [e for e in (VideoEvent.model_validate_json(v) for v in values)
                 if e.kind == "anomaly"]
    assert len(anomalies) == 1, (anomalies, private.log_tail())
    event = anomalies[0]
    attrs = event.attributes
    assert event.class_name == "bicycle", attrs
    assert CYCLIST_S[0] <= event.ts - t0 <= CYCLIST_S[1] + 1.0  # + the trigger's frames
    assert attrs["method"] == "objects" and attrs["attribute_group"] == "class"
    assert str(attrs["why"]).startswith(f"bicycle #{attrs['track_id']}: class seen in 0 of ")
    assert str(attrs["reason"]).endswith(" normal objects")
    print(f"anomaly at {event.ts - t0:.2f} s of the cut: {attrs['why']}")


def test_prepare_cuts_trains_once_and_adds_the_camera(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """``prepare`` on the real clip and detector (no servers): the cut, the model (trained
    once), the demo topology with the camera's thresholds, both anomaly methods on."""
    import io
    import json
    import os

    from argus.settings import get_settings
    from argus.topology import load_topology

    base = get_settings()
    if not (base.shared / anomaly_demo.VIDEO).is_file():
        pytest.skip("no bicycle clip")
    for name in ("ARGUS_TOPOLOGY", "ARGUS_ANOMALY_METHOD"):  # restored at the end, even
        monkeypatch.setenv(name, "")                         # though prepare sets them
        monkeypatch.delenv(name)
    monkeypatch.setenv("ARGUS_ANOMALY_OBJECTS_DIR", str(tmp_path / "models"))
    settings = base.model_copy(update={"cache_dir": tmp_path / "cache"})
    out = io.StringIO()
    model = anomaly_demo.prepare(settings, out)
    assert model == tmp_path / "models" / f"{anomaly_demo.CAMERA_ID}.json", out.getvalue()
    assert "(trained in " in out.getvalue()
    info = json.loads(model.read_text())["info"]
    assert info["tracker"] == anomaly_demo.TRACKING and info["objects"] > 0
    assert os.environ["ARGUS_ANOMALY_METHOD"] == "flow,objects"
    topology = load_topology(Path(os.environ["ARGUS_TOPOLOGY"]), settings.shared)
    camera = topology.camera(anomaly_demo.CAMERA_ID)
    assert camera is not None and camera.tracking is not None
    assert camera.tracking.overrides() == anomaly_demo.TRACKING and camera.fps == 5.0
    again = io.StringIO()
    assert anomaly_demo.prepare(settings, again) == model
    assert "trained in" not in again.getvalue()  # the cached model fits
