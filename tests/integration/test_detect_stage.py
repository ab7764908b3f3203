"""The detect stage on the real Kafka + Triton: frames.raw → detections, and dead letters."""

from __future__ import annotations

import json
import time
import uuid

import cv2
import numpy as np
import pytest
import redis
from kafka.consumer.fetcher import ConsumerRecord

from argus.kafka import make_producer
from argus.settings import Settings
from argus.stores.frame_cache import frame_key
from schemas import DeadLetter, Detections, FrameHeaders, VideoEvent
from tests.conftest import metric_value, scrape, start_worker
from tests.kafka_utils import consume
from tools import stack as embedded

pytestmark = pytest.mark.integration


def pets_frames(settings: Settings, count: int) -> list[bytes]:
    cap = cv2.VideoCapture(str(settings.shared / "data/pets09_s2l1/vtest.avi"))
    frames = []
    for _ in range(count):
        ok, image = cap.read()
        assert ok
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        frames.append(jpeg.tobytes())
    cap.release()
    return frames


def gt_people(settings: Settings, frame_no: int) -> int:
    rows = (settings.shared / "data/pets09_s2l1/gt_frames_001_300.txt").read_text().splitlines()
    return sum(1 for r in rows if r.split(",")[0] == str(frame_no) and float(r.split(",")[6]) != 0)


def test_frames_become_detections_and_zone_events(stack: Settings, worker: int) -> None:
    producer = make_producer(stack)
    frames = pets_frames(stack, 6)
    base_ts = time.time()
    for seq, jpeg in enumerate(frames):
        meta = FrameHeaders(camera_id="cam-test", seq=seq, capture_ts=base_ts + seq * 0.2,
                            width=480, height=360)
        producer.send(stack.topic("frames.raw"), key=b"cam-test", value=jpeg,
                      headers=meta.to_headers())
    cached_meta = FrameHeaders(camera_id="cam-cached", seq=0, capture_ts=base_ts,
                               width=480, height=360)
    producer.send(stack.topic("frames.raw"), key=b"cam-cached", value=frames[0],
                  headers=cached_meta.to_headers())
    producer.flush()
    records = consume(stack, "detections", 6, timeout_s=60,
                      where=lambda r: r.key == b"cam-test" and json.loads(r.value)["seq"] < 6)
    assert len(records) == 6
    by_seq = {d.seq: d for d in (Detections.model_validate_json(r.value) for r in records)}
    assert sorted(by_seq) == list(range(6))
    first = by_seq[0]
    assert (first.width, first.height, first.model) == (480, 360, "detector")
    # person boxes carry the re-identification embedding the tracker uses
    assert first.embedding_model == "osnet_x0_25_msmt17"
    assert any(d.embedding for d in first.detections if d.class_name == "person")
    persons = [d for d in first.detections if d.class_name == "person" and d.score >= 0.3]
    expected = gt_people(stack, 1)
    assert expected * 0.6 <= len(persons) <= expected + 5, (len(persons), expected)
    for d in persons:
        assert 0 <= d.box.x1 < d.box.x2 <= 1 and 0 <= d.box.y1 < d.box.y2 <= 1
        assert d.box.y2 - d.box.y1 > d.box.x2 - d.box.x1  # people are taller than wide
    # the whole-frame zone of cam-test maps to site zone "yard": one event (cool-down)
    events = [VideoEvent.model_validate_json(r.value)
              for r in consume(stack, "events.video", 1, timeout_s=20,
                               where=lambda r: b'"cam-test"' in r.value)]
    ours = [e for e in events if e.camera_id == "cam-test"]
    assert ours and ours[0].site_zone_id == "yard" and ours[0].count >= expected * 0.6
    # frames of cameras that later stages read (tripwires, behaviours, falls, faces on
    # tracks) are cached in Redis for a while; cam-test has zones only: not cached
    consume(stack, "detections", 1, timeout_s=60, where=lambda r: r.key == b"cam-cached")
    client = redis.Redis.from_url(stack.redis_url)
    assert client.get(frame_key("cam-cached", 0)) == frames[0]
    assert 0 < client.pttl(frame_key("cam-cached", 0)) <= stack.frame_cache_s * 1000
    assert client.exists(frame_key("cam-test", 3)) == 0
    metrics = scrape(worker)
    assert metric_value(metrics, "argus_stage_messages_out_total", stage="detect") >= 6
    assert metric_value(metrics, "argus_triton_request_seconds_count", model="detector") >= 6


def test_bad_frames_are_dead_lettered_and_the_stage_goes_on(stack: Settings, worker: int
                                                            ) -> None:
    producer = make_producer(stack)
    good = pets_frames(stack, 1)[0]
    now = time.time()

    def headers(camera: str, seq: int) -> list[tuple[str, bytes]]:
        return FrameHeaders(camera_id=camera, seq=seq, capture_ts=now, width=480,
                            height=360).to_headers()

    topic = stack.topic("frames.raw")
    cases = {
        "corrupt_jpeg": (b"cam-test", good[:300], headers("cam-test", 9001)),
        "unknown_camera": (b"cam-nowhere", good, headers("cam-nowhere", 9002)),
        "schema": (b"cam-test", good, [("camera_id", b"cam-test"), ("seq", b"minus one")]),
        "oversize": (b"cam-test", good + b"\0" * stack.max_frame_bytes, headers("cam-test", 9004)),
    }
    for key, value, hdrs in cases.values():
        producer.send(topic, key=key, value=value, headers=hdrs)
    producer.send(topic, key=b"cam-test", value=np.random.default_rng(1).bytes(5000),
                  headers=headers("cam-test", 9005))
    # and after all of that, a good frame still goes through
    producer.send(topic, key=b"cam-test", value=good, headers=headers("cam-test", 9006))
    producer.flush()

    def ours(record: ConsumerRecord) -> bool:
        """The dead letters of this test: its frames have seqs 9001.. or a bad seq."""
        letter = DeadLetter.model_validate_json(record.value)
        seq = letter.headers.get("seq", "")
        return letter.stage == "detect" and (seq.startswith("900") or seq == "minus one")

    letters = [DeadLetter.model_validate_json(r.value)
               for r in consume(stack, "dlq", 5, timeout_s=60, where=ours)]
    reasons = sorted(letter.reason for letter in letters if letter.stage == "detect")
    assert reasons == sorted(["corrupt_jpeg", "corrupt_jpeg", "unknown_camera", "schema",
                              "oversize"])
    corrupt = next(letter for letter in letters if letter.reason == "corrupt_jpeg"
                   and letter.headers.get("seq") == "9001")
    assert corrupt.payload() == good[:300]
    assert corrupt.source_topic == topic and corrupt.offset is not None
    assert corrupt.key_b64 is not None
    unknown = next(letter for letter in letters if letter.reason == "unknown_camera")
    assert "cam-nowhere" in unknown.error and unknown.payload() == good

    seqs = {json.loads(r.value)["seq"] for r in consume(
        stack, "detections", 1, timeout_s=60,
        where=lambda r: r.key == b"cam-test" and json.loads(r.value)["seq"] >= 9000)}
    assert 9006 in seqs and 9001 not in seqs
    metrics = scrape(worker)
    assert metric_value(metrics, "argus_dlq_messages_total", stage="detect",
                        reason="corrupt_jpeg") == 2
    assert metric_value(metrics, "argus_dlq_messages_total", stage="detect",
                        reason="oversize") == 1


def test_motion_gate_carries_a_still_frame(stack: Settings) -> None:
    """A detect-only worker with the motion gate on, on topics of its own: of two identical
    frames the second is not detected but carries the first's detections."""
    tag = uuid.uuid4().hex[:8]
    settings = stack.model_copy(update={"topic_prefix": f"m{tag}.",
                                        "app_id": f"argus-motion-{tag}"})
    with embedded.own_topics(settings):
        motion_gate_run(settings)


def motion_gate_run(settings: Settings) -> None:
    proc, port = start_worker(settings, "--stages", "detect",
                              env={"ARGUS_DETECT_MOTION_GATE": "0.002"})
    try:
        producer = make_producer(settings)
        jpeg = pets_frames(settings, 1)[0]
        now = time.time()
        for seq in (0, 1):
            meta = FrameHeaders(camera_id="cam-test", seq=seq, capture_ts=now + seq * 0.2,
                                width=480, height=360)
            producer.send(settings.topic("frames.raw"), key=b"cam-test", value=jpeg,
                          headers=meta.to_headers())
        producer.flush()
        records = consume(settings, "detections", 2, timeout_s=30)
        first, second = sorted((Detections.model_validate_json(r.value) for r in records),
                               key=lambda d: d.seq)
        assert first.carried_from_seq is None and first.inference_ms > 0
        assert (second.seq, second.carried_from_seq, second.inference_ms) == (1, 0, 0.0)
        assert second.capture_ts == pytest.approx(now + 0.2)
        assert second.detections == first.detections  # embeddings included
        assert metric_value(scrape(port), "argus_detect_frames_carried_total",
                            camera="cam-test") == 1
    finally:
        proc.kill()
        proc.wait(10)
