"""The frame grabber on the real Kafka broker: replay, drop-oldest backpressure, reconnect.

The tests publish to ``frames.raw`` under a sub-prefix of the session's topics, so the
session's stream workers (which consume the session's ``frames.raw``) never see these
frames, and reading the topic back only reads what these tests wrote.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client import REGISTRY

from argus.settings import Settings
from argus.topology import Camera
from schemas.frames import FrameHeaders
from services.frame_grabber.grabber import FrameGrabber
from tests.kafka_utils import consume
from tools import stack as embedded

pytestmark = pytest.mark.integration

VIDEO = "data/videos/person-bicycle-car-detection.mp4"
VIDEO_FRAMES = 459
VIDEO_FPS = 12
SAMPLE_FPS = 4
EXPECTED = 153  # 459 frames at 12 fps sampled to 4 fps: source frames 0, 3, 6, …, 456
WIDTH, HEIGHT = 768, 432


@pytest.fixture(scope="module")
def settings(stack: Settings) -> Settings:
    """The session settings with a sub-prefix of their own (topics created)."""
    own = stack.model_copy(update={"topic_prefix": f"{stack.topic_prefix}grabber."})
    embedded.create_topics(own)
    return own


def make_camera(name: str, source: str | Path, **overrides: object) -> Camera:
    """A non-realtime, non-looping 4 fps camera with an id unique to this test run."""
    fields: dict[str, object] = {"id": f"grab-{name}-{uuid.uuid4().hex[:8]}", "site": "site-test",
                                 "source": str(source), "fps": SAMPLE_FPS, "realtime": False,
                                 "loop": False}
    fields.update(overrides)
    return Camera.model_validate(fields)


def topic_size(settings: Settings) -> int:
    """How many records ``frames.raw`` holds now (end minus start offsets, all partitions)."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    try:
        topic = settings.topic("frames.raw")
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(partitions)
        starts = consumer.beginning_offsets(partitions)
        return sum(ends[tp] - starts[tp] for tp in partitions)
    finally:
        consumer.close()


def camera_records(settings: Settings, camera_id: str) -> list[ConsumerRecord]:
    """Every ``frames.raw`` record of one camera, in log order (call after the grabber
    finished: its sends are acknowledged, so reading up to the current end is complete)."""
    records = consume(settings, "frames.raw", topic_size(settings), timeout_s=30)
    return [r for r in records if r.key == camera_id.encode()]


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def source_frames(path: Path, indices: list[int]) -> dict[int, np.ndarray]:
    """The decoded source frames at ``indices``."""
    cap = cv2.VideoCapture(str(path))
    wanted, index = set(indices), 0
    out: dict[int, np.ndarray] = {}
    try:
        while len(out) < len(wanted):
            ok, image = cap.read()
            assert ok, f"{path} ended at frame {index}"
            if index in wanted:
                out[index] = image
            index += 1
    finally:
        cap.release()
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def replay_whole_clip(settings: Settings, camera: Camera) -> tuple[FrameGrabber, float, float]:
    """Run ``camera`` (a non-looping file) to its end; returns the stopped grabber and the
    wall times it started and finished. The buffer holds the whole clip, so every sampled
    frame is published however fast the broker is (with a small buffer a non-realtime
    replay may drop under backpressure, by design)."""
    grabber = FrameGrabber([camera], settings, buffer_size=256)
    started = time.time()
    grabber.start()
    try:
        assert grabber.wait(timeout=40), grabber.stats()
    finally:
        grabber.stop()
    return grabber, started, time.time()


def test_replay_publishes_every_sampled_frame(settings: Settings) -> None:
    video = settings.shared / VIDEO
    camera = make_camera("replay", video)
    grabber, started, finished = replay_whole_clip(settings, camera)

    stats = grabber.stats()[camera.id]
    assert stats["captured"] == EXPECTED
    assert stats["published"] == EXPECTED
    assert stats["dropped"] == 0
    assert stats["reconnects"] == 0
    assert (stats["queued"], stats["in_flight"]) == (0, 0)
    assert metric("argus_frames_captured_total", camera=camera.id) == EXPECTED
    assert metric("argus_frames_published_total", camera=camera.id) == EXPECTED

    records = camera_records(settings, camera.id)
    assert len(records) == EXPECTED
    assert len({r.partition for r in records}) == 1  # keyed: one camera, one partition
    headers = [FrameHeaders.from_headers(r.headers) for r in records]
    assert [h.seq for h in headers] == list(range(EXPECTED))
    assert {(h.camera_id, h.width, h.height, h.encoding) for h in headers} == {
        (camera.id, WIDTH, HEIGHT, "jpeg")}
    stamps = [h.capture_ts for h in headers]
    assert stamps == sorted(stamps)
    assert started <= stamps[0] and stamps[-1] <= finished
    assert [r.timestamp for r in records] == [int(ts * 1000) for ts in stamps]

    # Every value is a decodable 768x432 JPEG, and frame seq k is source frame 3k.
    step = VIDEO_FPS // SAMPLE_FPS
    checked = [0, 1, 50, EXPECTED - 1]
    originals = source_frames(video, [k * step for k in checked])
    for record, header in zip(records, headers, strict=True):
        image = cv2.imdecode(np.frombuffer(record.value, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (HEIGHT, WIDTH, 3)
        if header.seq in checked:
            original = originals[header.seq * step]
            assert psnr(image, original) > 30.0, header.seq
            if header.seq > 0:  # and not its neighbour (the scene moves between frames)
                neighbour = source_frames(video, [header.seq * step - 1])[header.seq * step - 1]
                assert psnr(image, original) > psnr(image, neighbour)


def test_media_clock_stamps_a_fast_replay_on_the_files_timeline(settings: Settings) -> None:
    # clock: media: read as fast as the broker takes it, stamped as if paced, so timed
    # behaviours (dwell, speed) see the clip's own durations
    camera = make_camera("media", settings.shared / VIDEO, clock="media")
    _, started, finished = replay_whole_clip(settings, camera)
    elapsed = finished - started

    headers = [FrameHeaders.from_headers(r.headers) for r in camera_records(settings, camera.id)]
    assert [h.seq for h in headers] == list(range(EXPECTED))
    stamps = np.array([h.capture_ts for h in headers])
    assert started <= stamps[0] <= started + elapsed
    # one kept frame every 3 source frames at 12 fps: exactly 0.25 s apart
    np.testing.assert_allclose(np.diff(stamps), 1 / SAMPLE_FPS, atol=1e-6)
    span = stamps[-1] - stamps[0]
    assert span == pytest.approx((EXPECTED - 1) / SAMPLE_FPS)  # 38 s of video ...
    assert elapsed < span / 2, (elapsed, span)                 # ... read in far less


def test_drop_oldest_under_backpressure(settings: Settings) -> None:
    camera = make_camera("backpressure", settings.shared / VIDEO)
    grabber = FrameGrabber([camera], settings, buffer_size=5)
    grabber.pause_publishing(camera.id)  # Kafka "slower than the camera": nothing leaves
    grabber.start()
    try:
        worker = grabber.worker(camera.id)
        assert worker.wait_reader(timeout=30)
        paused = grabber.stats()[camera.id]
        assert paused["captured"] == EXPECTED
        assert paused["published"] == 0
        assert paused["queued"] == 5
        assert paused["dropped_backpressure"] == paused["captured"] - 5 == EXPECTED - 5
        assert paused["dropped"] == paused["dropped_backpressure"]
        assert metric("argus_frames_dropped_total", camera=camera.id,
                      reason="backpressure") == EXPECTED - 5
        assert metric("argus_frame_queue_depth", camera=camera.id) == 5

        grabber.resume_publishing(camera.id)
        assert grabber.wait(timeout=20), grabber.stats()
    finally:
        grabber.stop()

    stats = grabber.stats()[camera.id]
    assert stats["published"] == 5
    assert stats["dropped"] == EXPECTED - 5
    records = camera_records(settings, camera.id)
    seqs = [FrameHeaders.from_headers(r.headers).seq for r in records]
    assert seqs == list(range(EXPECTED - 5, EXPECTED))  # exactly the 5 newest, in order


def test_missing_source_is_retried_until_it_appears(settings: Settings, tmp_path: Path) -> None:
    late = tmp_path / "late.mp4"
    camera = make_camera("reconnect", late)
    grabber = FrameGrabber([camera], settings, buffer_size=256)
    grabber.start()
    try:
        # Backoff 0.5 s, 1 s, …: the first retry is counted after half a second.
        assert wait_until(lambda: grabber.stats()[camera.id]["reconnects"] >= 1, 10)
        assert grabber.stats()[camera.id]["captured"] == 0
        assert metric("argus_source_reconnects_total", camera=camera.id) >= 1

        late.symlink_to(settings.shared / VIDEO)
        assert grabber.wait(timeout=40), grabber.stats()
    finally:
        grabber.stop()

    stats = grabber.stats()[camera.id]
    assert stats["reconnects"] >= 1
    assert metric("argus_source_reconnects_total", camera=camera.id) == stats["reconnects"]
    assert (stats["captured"], stats["published"], stats["dropped"]) == (EXPECTED, EXPECTED, 0)
    records = camera_records(settings, camera.id)
    assert [FrameHeaders.from_headers(r.headers).seq for r in records] == list(range(EXPECTED))


def test_oversize_frames_are_dropped_and_counted(settings: Settings) -> None:
    tiny = settings.model_copy(update={"max_frame_bytes": 1000})  # every JPEG is larger
    camera = make_camera("oversize", settings.shared / VIDEO, fps=1)
    grabber = FrameGrabber([camera], tiny)
    grabber.start()
    try:
        assert grabber.wait(timeout=30), grabber.stats()
    finally:
        grabber.stop()
    expected = math.ceil(VIDEO_FRAMES / VIDEO_FPS)  # source frames 0, 12, …, 456
    stats = grabber.stats()[camera.id]
    assert (stats["captured"], stats["dropped_oversize"], stats["published"]) == (
        expected, expected, 0)
    assert metric("argus_frames_dropped_total", camera=camera.id, reason="oversize") == expected
    assert camera_records(settings, camera.id) == []


def test_downscale_and_realtime_pacing(settings: Settings) -> None:
    # realtime: the grabber follows the file's own clock (12 fps), so 2 s of video
    # take about 2 s; max_width halves the frames.
    clip = settings.shared / VIDEO
    camera = make_camera("realtime", clip, realtime=True, max_width=384, fps=2)
    grabber = FrameGrabber([camera], settings)
    started = time.monotonic()
    grabber.start()
    try:
        assert wait_until(lambda: grabber.stats()[camera.id]["published"] >= 5, 10)
        elapsed = time.monotonic() - started
    finally:
        grabber.stop()
    # 5 frames at 2 fps span seqs 0..4 = source frames 0..24 = 2 s of the clip's clock.
    assert 1.8 <= elapsed <= 6.0, elapsed
    records = camera_records(settings, camera.id)
    headers = [FrameHeaders.from_headers(r.headers) for r in records]
    assert len(headers) >= 5
    assert [h.seq for h in headers] == list(range(len(headers)))
    assert {(h.width, h.height) for h in headers} == {(384, 216)}
    gaps = np.diff([h.capture_ts for h in headers[:5]])
    assert np.all((gaps > 0.35) & (gaps < 0.8)), gaps  # about 0.5 s apart (2 fps)
    image = cv2.imdecode(np.frombuffer(records[0].value, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (216, 384, 3)


@pytest.fixture
def mjpeg_camera(settings: Settings) -> Iterator[tuple[str, list[int]]]:
    """A live HTTP MJPEG "camera": 20 fps for one second per connection, then it hangs up.

    Yields the stream URL and a list that grows by one per connection.
    """
    cap = cv2.VideoCapture(str(settings.shared / VIDEO))
    jpegs = []
    for _ in range(20):
        ok, image = cap.read()
        assert ok
        jpegs.append(cv2.imencode(".jpg", image)[1].tobytes())
    cap.release()
    connections: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            connections.append(1)
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            try:
                for jpeg in jpegs:
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                     b"Content-Length: %d\r\n\r\n%s\r\n" % (len(jpeg), jpeg))
                    time.sleep(0.05)
            except OSError:
                pass

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/stream.mjpg", connections
    finally:
        server.shutdown()
        server.server_close()


def test_live_stream_that_hangs_up_is_reconnected(
        settings: Settings, mjpeg_camera: tuple[str, list[int]]) -> None:
    url, connections = mjpeg_camera
    camera = make_camera("live", url, fps=5)
    grabber = FrameGrabber([camera], settings)
    grabber.start()
    try:
        assert wait_until(lambda: grabber.stats()[camera.id]["reconnects"] >= 2, 20), (
            grabber.stats())
        assert wait_until(lambda: grabber.stats()[camera.id]["captured"] >= 10, 10)
    finally:
        grabber.stop()
    assert len(connections) >= 3  # the first connection and two reconnects

    stats = grabber.stats()[camera.id]
    assert stats["published"] == stats["captured"] >= 10
    assert stats["dropped"] == 0
    records = camera_records(settings, camera.id)
    headers = [FrameHeaders.from_headers(r.headers) for r in records]
    assert [h.seq for h in headers] == list(range(stats["captured"]))  # seq survives reconnects
    assert {(h.width, h.height) for h in headers} == {(WIDTH, HEIGHT)}
    # A 20 fps stream sampled by wall clock to 5 fps: about 5 frames per connected second.
    gaps = np.diff([h.capture_ts for h in headers])
    assert np.median(gaps) == pytest.approx(0.2, abs=0.06), gaps


def test_image_folder_source_publishes_each_image_once(settings: Settings, tmp_path: Path,
                                                       ) -> None:
    # the ANPR case: a camera that sends stills, replayed from a folder at the camera's fps
    plates = settings.shared / "data" / "plates" / "openalpr_us"
    names = sorted(p.name for p in plates.glob("car*.jpg"))[:5]
    assert len(names) == 5
    for name in names:
        (tmp_path / name).symlink_to(plates / name)
    camera = make_camera("stills", f"dir:{tmp_path}/*.jpg", fps=20)
    grabber, _, _ = replay_whole_clip(settings, camera)
    stats = grabber.stats()[camera.id]
    assert (stats["captured"], stats["published"], stats["dropped"]) == (5, 5, 0)
    records = camera_records(settings, camera.id)
    headers = [FrameHeaders.from_headers(r.headers) for r in records]
    assert [h.seq for h in headers] == list(range(5))
    sizes = [(h.width, h.height) for h in headers]
    images = [cv2.imread(str(plates / n)) for n in names]
    assert all(image is not None for image in images)
    expected = [(image.shape[1], image.shape[0]) for image in images if image is not None]
    assert sizes == expected  # each image as it is, in name order
