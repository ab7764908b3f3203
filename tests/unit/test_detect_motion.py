"""The detect stage's motion gate: the still/moving decision on real JPEG thumbnails, and the
stage's micro-batch logic with the detector faked (which frames reach the detector, what a
carried frame says, the order of the outputs)."""

from __future__ import annotations

import asyncio
from typing import Any

import cv2
import numpy as np
import pytest
from prometheus_client import REGISTRY

from argus.kafka import Rejected
from argus.metrics import camera_label
from argus.settings import Settings
from argus.topology import Topology
from pipelines.stages.detect.motion import (
    GateConfig,
    MotionGate,
    Reference,
    changed_fraction,
    is_still,
    thumbnail,
)
from pipelines.stages.detect.stage import Detect, DetectSettings, Frame
from schemas.detections import Detections
from schemas.frames import FrameHeaders

T0 = 1_800_000_000.0
W, H = 640, 480
TOPOLOGY = Topology.model_validate({
    "sites": [{"id": "s1", "lat": 52.0, "lon": 4.0}],
    "cameras": [{"id": "a", "site": "s1", "source": "0"},
                {"id": "b", "site": "s1", "source": "0"}]})


def jpeg(square: tuple[int, int, int] | None = None, level: int = 90) -> bytes:
    """A flat grey frame, with a bright square (x, y, side in pixels) if given."""
    image = np.full((H, W, 3), level, np.uint8)
    image[::40, :] = 60  # some texture, so the JPEG is not trivially flat
    if square is not None:
        x, y, side = square
        image[y:y + side, x:x + side] = 250
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return buf.tobytes()


STILL = jpeg()
PERSON = jpeg((300, 200, 64))     # 64x64 of 640x480: 1.3 % of the frame
SPECK = jpeg((300, 200, 8))       # one 8x8 block: 0.02 %, under a 0.002 gate


def reference(image: bytes, age_s: float = 0.5) -> Reference:
    thumb = thumbnail(image)
    assert thumb is not None
    return Reference(thumb, T0 - age_s, 1)


@pytest.mark.parametrize(("config", "ref", "frame", "still"), [
    (GateConfig(gate=0.002), reference(STILL), STILL, True),            # identical frames
    (GateConfig(gate=0.002), reference(STILL), SPECK, True),            # noise-size change
    (GateConfig(gate=0.002), reference(STILL), PERSON, False),          # a region moved
    (GateConfig(gate=0.02), reference(STILL), PERSON, True),            # ... under a 2 % gate
    (GateConfig(gate=0.002), reference(STILL, age_s=2.5), STILL, False),  # reference too old
    (GateConfig(gate=0.002), reference(STILL, age_s=-1.0), STILL, False),  # clock went back
    (GateConfig(gate=0.0), reference(STILL), STILL, False),             # the gate is off
    (GateConfig(gate=0.002), None, STILL, False),                       # no reference yet
    (GateConfig(gate=0.002), reference(STILL), b"not a jpeg", False),   # not decodable
    (GateConfig(gate=0.002), reference(STILL), jpeg(level=140), False),  # lights on
])
def test_is_still(config: GateConfig, ref: Reference | None, frame: bytes,
                  still: bool) -> None:
    assert is_still(config, ref, thumbnail(frame), T0) is still


def test_thumbnail_is_an_eighth() -> None:
    thumb = thumbnail(STILL)
    assert thumb is not None and thumb.shape == (H // 8, W // 8)
    assert thumbnail(b"") is None and thumbnail(b"\xff\xd8garbage") is None
    other = np.zeros((10, 10), np.uint8)
    assert changed_fraction(thumb, other, 25) == 1.0  # the resolution changed


class FakeDetector:
    """Triton's detector: one box whose x1 tells which frame it came from."""

    def __init__(self, boxes: dict[bytes, float], refuse: frozenset[bytes] = frozenset(),
                 slow: frozenset[bytes] = frozenset()) -> None:
        self.boxes = boxes
        self.refuse = refuse
        self.slow = slow
        self.calls: list[float] = []

    async def infer(self, image: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        await asyncio.sleep(0.05 if image in self.slow else 0)
        if image in self.refuse:
            raise Rejected("corrupt_jpeg", "the model could not decode it")
        x = self.boxes[image]
        self.calls.append(x)
        return (np.array([[x, 0.1, x + 0.1, 0.5]], np.float32), np.array([0.9], np.float32),
                np.array([0], np.int64), 7.0)


class NoCache:
    async def put_many(self, items: list[Any]) -> None:
        return None


def stage(gate: float = 0.002, refresh_s: float = 2.0,
          detector: FakeDetector | None = None) -> Detect:
    config = DetectSettings(reid=False, motion_gate=gate, motion_refresh_s=refresh_s)
    detect = Detect(Settings(), TOPOLOGY, NoCache(), frozenset(), config)  # type: ignore[arg-type]
    detect.detector = detector or FakeDetector(  # type: ignore[assignment]
        {STILL: 0.1, PERSON: 0.2, SPECK: 0.3})
    return detect


def frame(camera: str, seq: int, image: bytes, dt: float | None = None) -> Frame:
    ts = T0 + (seq * 0.2 if dt is None else dt)
    return Frame(FrameHeaders(camera_id=camera, seq=seq, capture_ts=ts, width=W, height=H),
                 image)


def run(detect: Detect, *frames: Frame) -> list[Detections]:
    out: list[Detections] = []
    for result in asyncio.run(detect.handle(list(frames))):
        assert isinstance(result, list)
        [message] = result
        out.append(message)
    return out


def summary(messages: list[Detections]) -> list[tuple[str, int, int | None, float]]:
    return [(m.camera_id, m.seq, m.carried_from_seq, round(m.detections[0].box.x1, 3))
            for m in messages]


def carried_count(camera: str) -> float:
    label = camera_label(camera, Settings().metrics_per_camera)
    return REGISTRY.get_sample_value("argus_detect_frames_carried_total",
                                     {"camera": label}) or 0.0


def test_batch_order_and_carried_from() -> None:
    detect = stage()
    before = carried_count("b")
    messages = run(detect, frame("a", 1, STILL), frame("b", 1, PERSON), frame("a", 2, STILL),
                   frame("a", 3, PERSON), frame("b", 2, PERSON), frame("a", 4, PERSON))
    assert summary(messages) == [
        ("a", 1, None, 0.1),   # no reference yet: detected
        ("b", 1, None, 0.2),
        ("a", 2, 1, 0.1),      # the same as a/1, detected earlier in the batch
        ("a", 3, None, 0.2),   # moved
        ("b", 2, 1, 0.2),      # cameras do not mix
        ("a", 4, 3, 0.2),      # compared with a/3, the latest detected, not a/1
    ]
    assert detect.detector.calls == [0.1, 0.2, 0.2]  # type: ignore[attr-defined]
    assert carried_count("b") >= before + 1  # "_all" when per-camera metrics are off
    carried = messages[2]
    assert carried.inference_ms == 0.0 and carried.capture_ts == T0 + 0.4
    # the next batch compares with the stored reference (a/3), until it is too old
    later = run(detect, frame("a", 5, PERSON), frame("a", 6, PERSON, dt=0.6 + 2.0),
                frame("a", 7, PERSON, dt=0.6 + 2.2))
    assert [(m.seq, m.carried_from_seq) for m in later] == [(5, 3), (6, None), (7, 6)]


def test_gate_off_detects_every_frame() -> None:
    detect = stage(gate=0.0)
    messages = run(detect, frame("a", 1, STILL), frame("a", 2, STILL))
    assert [m.carried_from_seq for m in messages] == [None, None]
    assert len(detect.detector.calls) == 2  # type: ignore[attr-defined]


def test_a_failed_source_does_not_fail_its_still_frames() -> None:
    """The detector refuses a/1 (a dead letter of its own); a/2, as still as a/1, is
    then detected itself, not lost."""
    bad = jpeg(level=91)  # decodes for the gate, "corrupt" for the fake detector
    detect = stage(detector=FakeDetector({STILL: 0.1}, refuse=frozenset({bad, b"garbage"})))
    results = asyncio.run(detect.handle([frame("a", 1, bad), frame("a", 2, bad),
                                         frame("a", 3, b"garbage")]))
    assert isinstance(results[0], Rejected) and isinstance(results[1], Rejected)
    assert isinstance(results[2], Rejected)  # the gate could not decode it: detected
    assert detect.gate._stored == {}


def test_late_batch_does_not_replace_a_newer_reference() -> None:
    """Batch 1 (a/1) and batch 2 (a/2, moved) are in flight at once and batch 2 returns
    first; batch 1's return must not make the older a/1 the reference."""
    detect = stage(detector=FakeDetector({STILL: 0.1, PERSON: 0.2}, slow=frozenset({STILL})))

    async def both() -> None:
        first = detect.handle([frame("a", 1, STILL)])
        second = detect.handle([frame("a", 2, PERSON)])
        task = asyncio.ensure_future(first)  # planned first, finishes last
        await asyncio.sleep(0)
        await second
        await task

    asyncio.run(both())
    assert detect.gate._stored["a"].reference.seq == 2
    [message] = run(detect, frame("a", 3, PERSON))
    assert message.carried_from_seq == 2


def test_gate_plans_nothing_when_off() -> None:
    gate = MotionGate(GateConfig())
    headers = FrameHeaders(camera_id="a", seq=1, capture_ts=T0, width=W, height=H)
    sources, thumbs = gate.plan([(headers, STILL)] * 3)
    assert sources == [None] * 3 and all(t is None for t, _ in thumbs)


def test_a_retried_batch_counts_its_carried_frames_once() -> None:
    """Triton fails on the frames detected after the carry (b/2, whose source b/1 was
    refused): the runner retries the whole batch, and a/2's carry is counted once."""
    bad = jpeg(level=91)

    class FlakyOnce(FakeDetector):
        bad_calls = 0

        async def infer(self, image: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
            if image == bad:
                FlakyOnce.bad_calls += 1
                if FlakyOnce.bad_calls == 2:
                    raise ConnectionError("triton went away")
            return await super().infer(image)

    detect = stage(detector=FlakyOnce({STILL: 0.1}, refuse=frozenset({bad})))
    batch = [frame("a", 1, STILL), frame("a", 2, STILL), frame("b", 1, bad), frame("b", 2, bad)]
    before = carried_count("a")
    with pytest.raises(ConnectionError):
        asyncio.run(detect.handle(batch))
    results = asyncio.run(detect.handle(batch))  # the runner's retry
    assert isinstance(results[1], list) and results[1][0].carried_from_seq == 1
    assert carried_count("a") == before + 1
