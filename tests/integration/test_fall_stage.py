"""Person down through the worker: URFD fall-01 frames → detect → track → behaviour (fall
detector, pose on Triton, frame cache) → ``events.video`` → the ``person_down`` alert.

The same clip through ``argus eval fall`` fires at frame 110 (docs/behaviours-fall.md);
here the real worker must give one ``fall`` event in the falling/lying frames (83-160),
with its decisive frame kept as a snapshot, and the correlation stage must open a
``person_down`` alert whose evidence points at that snapshot.
"""

from __future__ import annotations

import json
import time

import pytest
import redis
from kafka.consumer.fetcher import ConsumerRecord

from argus.kafka import make_producer
from argus.settings import Settings
from argus.stores import alerts as alert_sink
from argus.stores.frame_cache import snapshot_key
from schemas import Alert, FrameHeaders, VideoEvent
from tests.kafka_utils import consume
from tools.eval_fall import read_frames

pytestmark = pytest.mark.integration

CAMERA = "cam-fall"
SITE = "site-behaviour"


def test_a_fall_on_video_becomes_a_person_down_alert(stack: Settings, worker: int) -> None:
    jpegs, fps, width, height = read_frames(
        stack.shared / "data/urfd_fall/fall-01-cam0.mp4", "right")
    assert (len(jpegs), fps, width, height) == (160, 30.0, 320, 240)
    producer = make_producer(stack)
    start = time.time() - len(jpegs) / fps
    for i, jpeg in enumerate(jpegs):
        seq = i + 1  # the labels' frame numbers
        meta = FrameHeaders(camera_id=CAMERA, seq=seq, capture_ts=start + i / fps,
                            width=width, height=height)
        producer.send(stack.topic("frames.raw"), key=CAMERA.encode(), value=jpeg,
                      headers=meta.to_headers())
    producer.flush()

    def is_fall(record: ConsumerRecord) -> bool:
        value = json.loads(record.value)
        return bool(value["camera_id"] == CAMERA and value["kind"] == "fall")

    records = consume(stack, "events.video", 1, timeout_s=120, where=is_fall)
    assert records, "no fall event from the worker"
    time.sleep(3)  # any second event would follow within the clip's last frames
    falls = [VideoEvent.model_validate_json(r.value)
             for r in consume(stack, "events.video", 2, timeout_s=5, where=is_fall)]
    assert len(falls) == 1, [(e.seq, e.event_id) for e in falls]
    fall = falls[0]
    assert 83 <= fall.seq <= 160 and fall.class_name == "person" and fall.score >= 0.55
    assert fall.attributes["confirmed_by"] == "pose" and fall.track_ids
    client = redis.Redis.from_url(stack.redis_url)
    text = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    assert fall.snapshot_ref == fall.event_id
    assert client.get(snapshot_key(fall.snapshot_ref)) == jpegs[fall.seq - 1]

    deadline = time.monotonic() + 30
    alert = None
    while alert is None and time.monotonic() < deadline:
        for alert_id in text.zrange(alert_sink.site_active_key(SITE), 0, -1):
            raw = text.hget(alert_sink.alert_key(str(alert_id)), "json")
            found = Alert.model_validate_json(raw) if raw else None
            if found is not None and found.rule == "person_down":
                alert = found
        time.sleep(0.5)
    assert alert is not None, "no person_down alert"
    assert [e.event_id for e in alert.evidence] == [fall.event_id]
    assert alert.evidence[0].snapshot_ref == fall.snapshot_ref
