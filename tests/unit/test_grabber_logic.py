"""Pure logic of the frame grabber: sampling, backoff, the drop-oldest buffer, sources."""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pytest
from prometheus_client import REGISTRY

from argus.sources import SourceKind, parse_source, source_kind
from services.frame_grabber.buffer import FrameBuffer
from services.frame_grabber.frame import downscale
from services.frame_grabber.source import FrameSampler

# --- FrameSampler -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source_fps", "target_fps", "n", "kept"),
    [
        (10, 5, 10, [0, 2, 4, 6, 8]),
        (12, 4, 12, [0, 3, 6, 9]),
        (12, 5, 12, [0, 3, 5, 8, 10]),
        (10, 3, 10, [0, 4, 7]),
        (25, 10, 10, [0, 3, 5, 8]),
        (30, 1, 61, [0, 30, 60]),
        (10, 10, 5, [0, 1, 2, 3, 4]),
        (10, 30, 5, [0, 1, 2, 3, 4]),
        (29.97, 29.97, 4, [0, 1, 2, 3]),
        (7.5, 5, 9, [0, 2, 3, 5, 6, 8]),
    ],
)
def test_sampler_keeps_expected_indices(source_fps: float, target_fps: float, n: int,
                                        kept: list[int]) -> None:
    sampler = FrameSampler(source_fps, target_fps)
    assert [i for i in range(n) if sampler.keep(i)] == kept


@pytest.mark.parametrize(
    ("source_fps", "target_fps", "n", "expected"),
    [
        (12, 4, 459, 153),  # the person-bicycle-car clip used by the integration test
        (10, 5, 1394, 697),
        (12.5, 5, 377, 151),
        (29.97, 5, 30_000, 5005),  # long run: exact rational arithmetic, no drift
        (10, 60, 100, 100),
    ],
)
def test_sampler_long_run_rate(source_fps: float, target_fps: float, n: int,
                               expected: int) -> None:
    sampler = FrameSampler(source_fps, target_fps)
    assert sum(sampler.keep(i) for i in range(n)) == expected


def test_sampler_is_deterministic_across_instances() -> None:
    first = FrameSampler(12.5, 5)
    second = FrameSampler(12.5, 5)
    assert [first.keep(i) for i in range(200)] == [second.keep(i) for i in range(200)]
    assert FrameSampler(10, 20).keeps_all and not FrameSampler(20, 10).keeps_all


@pytest.mark.parametrize(
    ("times", "target_fps", "kept"),
    [
        # a 10 fps stream (every 0.1 s) sampled at 5 fps by time: every other frame
        ([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 5, [0.0, 0.2, 0.4, 0.6]),
        # a slower stream than the target: keep all
        ([0.0, 0.5, 1.0, 1.5], 5, [0.0, 0.5, 1.0, 1.5]),
        # a stall of several seconds: keep the next frame, restart the clock from it
        ([0.0, 0.1, 5.0, 5.1, 5.2], 5, [0.0, 5.0, 5.2]),
    ],
)
def test_sampler_by_time_without_source_fps(times: list[float], target_fps: float,
                                            kept: list[float]) -> None:
    sampler = FrameSampler(None, target_fps)
    # a tiny epsilon so float grid sums (0.2 + 0.2 ...) don't decide the outcome
    assert [t for i, t in enumerate(times) if sampler.keep(i, t + 1e-9 * i)] == kept


def test_sampler_by_time_long_run_rate() -> None:
    sampler = FrameSampler(None, 5)
    times = [i / 30 for i in range(30 * 60)]  # one minute of a 30 fps stream
    assert sum(sampler.keep(i, t) for i, t in enumerate(times)) == pytest.approx(300, abs=1)


@pytest.mark.parametrize(("source_fps", "target_fps"), [(10, 0), (0, 5), (-1, 5)])
def test_sampler_rejects_bad_rates(source_fps: float, target_fps: float) -> None:
    with pytest.raises(ValueError):
        FrameSampler(source_fps, target_fps)


def test_sampler_by_time_needs_now() -> None:
    with pytest.raises(ValueError):
        FrameSampler(None, 5).keep(0)


# --- FrameBuffer ----------------------------------------------------------------------


def _dropped_metric(camera: str) -> float:
    value = REGISTRY.get_sample_value("argus_frames_dropped_total",
                                      {"camera": camera, "reason": "backpressure"})
    return value or 0.0


@pytest.mark.parametrize(
    ("maxlen", "puts", "dropped", "remaining"),
    [
        (5, 3, 0, [0, 1, 2]),
        (5, 5, 0, [0, 1, 2, 3, 4]),
        (5, 6, 1, [1, 2, 3, 4, 5]),
        (5, 153, 148, [148, 149, 150, 151, 152]),
        (1, 4, 3, [3]),
    ],
)
def test_buffer_drops_oldest(maxlen: int, puts: int, dropped: int, remaining: list[int]) -> None:
    camera = f"unit-{uuid.uuid4().hex[:8]}"
    buffer: FrameBuffer[int] = FrameBuffer(maxlen, camera=camera)
    evicted = [e for e in (buffer.put(i) for i in range(puts)) if e is not None]
    assert evicted == list(range(dropped))
    assert buffer.dropped == dropped
    assert _dropped_metric(camera) == dropped
    assert REGISTRY.get_sample_value("argus_frame_queue_depth", {"camera": camera}) == len(
        remaining)
    assert len(buffer) == len(remaining)
    assert [buffer.get(timeout=0) for _ in remaining] == remaining
    assert buffer.get(timeout=0) is None
    assert REGISTRY.get_sample_value("argus_frame_queue_depth", {"camera": camera}) == 0


def test_buffer_without_camera_touches_no_metrics() -> None:
    buffer: FrameBuffer[str] = FrameBuffer(2)
    for item in "abc":
        buffer.put(item)
    assert buffer.dropped == 1
    assert buffer.drain() == ["b", "c"]
    assert len(buffer) == 0


def test_buffer_interleaved_put_get_keeps_fifo_order() -> None:
    buffer: FrameBuffer[int] = FrameBuffer(3)
    out: list[int | None] = []
    for i in range(10):
        buffer.put(i)
        if i % 2:
            out.append(buffer.get(timeout=0))
    out.extend(buffer.drain())
    # 10 puts, 5 gets interleaved: the buffer (3) evicts 2, 4 and 6; order stays FIFO
    assert buffer.dropped == 3
    assert out == [0, 1, 3, 5, 7, 8, 9]


def test_buffer_close_wakes_a_blocked_getter() -> None:
    buffer: FrameBuffer[int] = FrameBuffer(2)
    result: list[int | None] = []
    getter = threading.Thread(target=lambda: result.append(buffer.get(timeout=10)))
    getter.start()
    buffer.close()
    getter.join(timeout=2)
    assert not getter.is_alive()
    assert result == [None]
    assert buffer.closed


def test_buffer_get_waits_for_a_put() -> None:
    buffer: FrameBuffer[int] = FrameBuffer(2)
    threading.Timer(0.05, buffer.put, args=(7,)).start()
    assert buffer.get(timeout=5) == 7


def test_buffer_rejects_zero_maxlen() -> None:
    with pytest.raises(ValueError):
        FrameBuffer(0)


# --- sources --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "kind", "target"),
    [
        ("0", SourceKind.WEBCAM, "0"),
        ("2", SourceKind.WEBCAM, "2"),
        (" 01 ", SourceKind.WEBCAM, "1"),
        ("rtsp://10.0.0.5:554/stream1", SourceKind.URL, "rtsp://10.0.0.5:554/stream1"),
        ("RTSP://cam/live", SourceKind.URL, "RTSP://cam/live"),
        ("rtsps://cam/live", SourceKind.URL, "rtsps://cam/live"),
        ("http://cam.local/mjpeg", SourceKind.URL, "http://cam.local/mjpeg"),
        ("https://cam.example/video.mjpg", SourceKind.URL, "https://cam.example/video.mjpg"),
        ("/data/videos/a.mp4", SourceKind.FILE, "/data/videos/a.mp4"),
        ("videos/a.mp4", SourceKind.FILE, "videos/a.mp4"),
        ("file:///data/a.mp4", SourceKind.FILE, "/data/a.mp4"),
        ("cam0.avi", SourceKind.FILE, "cam0.avi"),
        ("12.mp4", SourceKind.FILE, "12.mp4"),
        ("dir:/data/anpr/*.jpg", SourceKind.DIR, "/data/anpr/*.jpg"),
        ("DIR: /data/anpr", SourceKind.DIR, "/data/anpr"),
    ],
)
def test_parse_source(source: str, kind: SourceKind, target: str) -> None:
    parsed = parse_source(source)
    assert parsed.kind is kind
    assert parsed.target == target
    assert source_kind(source) is kind
    assert kind.live is (kind not in (SourceKind.FILE, SourceKind.DIR))
    if kind is SourceKind.WEBCAM:
        assert parsed.index == int(target)
        assert parsed.path is None
    if kind is SourceKind.FILE:
        assert str(parsed.path) == target
        assert parsed.index is None


@pytest.mark.parametrize("source", ["", "   "])
def test_parse_source_rejects_empty(source: str) -> None:
    with pytest.raises(ValueError):
        parse_source(source)


# --- downscale ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "max_width", "expected"),
    [
        ((432, 768, 3), None, (432, 768, 3)),
        ((432, 768, 3), 1000, (432, 768, 3)),
        ((432, 768, 3), 768, (432, 768, 3)),
        ((432, 768, 3), 384, (216, 384, 3)),
        ((1080, 1920, 3), 640, (360, 640, 3)),
        ((480, 640), 320, (240, 320)),
    ],
)
def test_downscale_keeps_aspect(shape: tuple[int, ...], max_width: int | None,
                                expected: tuple[int, ...]) -> None:
    assert downscale(np.zeros(shape, dtype=np.uint8), max_width).shape == expected
