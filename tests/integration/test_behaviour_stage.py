"""The behaviour stage in the real worker: ``tracks`` on the real Kafka → ``events.video``
with evidence snapshots kept in the real Redis, line crossings counted in Prometheus,
replays that repeat nothing, and bad messages dead-lettered.

The test publishes ``tracks`` for ``cam-behaviour`` (tests/topology.yaml: a vertical
tripwire ``gate`` at x = 0.5 drawn downwards, so side A is right of it, and a zone
``square`` on the left with loitering after 3 s and running at 1.8 box heights/s for 3
frames) and, as the detect stage would, each frame's JPEG in the frame cache.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
import redis
from kafka.consumer.fetcher import ConsumerRecord

from argus.kafka import make_producer
from argus.settings import Settings
from argus.stores.frame_cache import frame_key, snapshot_key
from schemas import DeadLetter, Tracks, VideoEvent
from tests.conftest import metric_value, scrape
from tests.kafka_utils import consume
from tests.unit.test_behaviour_support import FPS, H, Script, W, moving, still, together

pytestmark = pytest.mark.integration

CAMERA, SITE = "cam-behaviour", "site-behaviour"
SCRIPT: Script = together(
    moving(1, (0.75, 0.5), (0.45, 0.5), 10),               # crosses the gate from A to B
    still(2, 0.2, 0.8, 4.0),                               # loiters in the square
    [[]] * 5 + still(3, 0.3, 0.9, 1.6, speed=3.0, h=0.3),  # runs through it
)


def jpeg(seq: int) -> bytes:
    image = np.full((H, W, 3), 40 + seq % 200, np.uint8)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def publish(settings: Settings, base_ts: float, seq0: int) -> None:
    """The script's frames as ``tracks`` messages, with their JPEGs in the frame cache."""
    db = redis.Redis.from_url(settings.redis_url)
    producer = make_producer(settings)
    for i, tracks in enumerate(SCRIPT):
        db.set(frame_key(CAMERA, seq0 + i), jpeg(seq0 + i), ex=120)
        message = Tracks(camera_id=CAMERA, seq=seq0 + i, capture_ts=base_ts + i / FPS, width=W,
                         height=H, tracks=tracks)
        producer.send(settings.topic("tracks"), key=CAMERA.encode(), value=message.to_bytes())
    producer.flush()
    producer.close()


def ours(record: ConsumerRecord) -> bool:
    return bool(VideoEvent.model_validate_json(record.value).camera_id == CAMERA)


def wait_for_stage_in(port: int, count: float, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if metric_value(scrape(port), "argus_stage_messages_in_total",
                        stage="behaviour") >= count:
            return
        time.sleep(0.5)
    pytest.fail(f"the behaviour stage did not consume {count} messages")


def test_tracks_become_behaviour_events(stack: Settings, worker: int) -> None:
    seq0, base_ts = 7000, time.time()
    publish(stack, base_ts, seq0)
    records = consume(stack, "events.video", 3, timeout_s=90, where=ours)
    events = {VideoEvent.model_validate_json(r.value).kind: (r, VideoEvent.model_validate_json(
        r.value)) for r in records}
    assert sorted(events) == ["line_crossing", "loitering", "running"]
    assert all(r.key == SITE.encode() for r, _ in events.values())

    _, crossing = events["line_crossing"]
    assert crossing.attributes == {"line": "gate", "direction": "a_to_b", "track_id": 1}
    assert (crossing.zone_id, crossing.site_zone_id, crossing.track_ids) == ("gate", "walkway",
                                                                              [1])
    assert crossing.event_id == f"{CAMERA}:gate:line_crossing:1:{crossing.seq}"
    _, loitering = events["loitering"]
    assert (loitering.zone_id, loitering.track_ids, loitering.seq) == ("square", [2], seq0 + 15)
    assert loitering.attributes["dwell_s"] == 3.0
    assert loitering.event_id == f"{CAMERA}:square:loitering:2:{seq0}"
    _, running = events["running"]
    assert (running.track_ids, running.seq) == ([3], seq0 + 7)
    assert running.start_ts is not None and running.end_ts is not None
    assert running.end_ts - running.start_ts == pytest.approx(0.4)

    db = redis.Redis.from_url(stack.redis_url)
    for _, event in events.values():  # the decisive frame, kept as evidence
        assert event.snapshot_ref == event.event_id
        assert db.get(snapshot_key(event.event_id)) == jpeg(event.seq)
        assert int(db.ttl(snapshot_key(event.event_id))) > 3600  # not the frame cache's TTL

    metrics = scrape(worker)
    assert metric_value(metrics, "argus_line_crossings_total", camera=CAMERA, line="gate",
                        direction="a_to_b") == 1
    assert metric_value(metrics, "argus_video_events_total", kind="running") >= 1

    # a replay of the same messages (at-least-once redelivery) produces nothing new
    before = metric_value(metrics, "argus_stage_messages_in_total", stage="behaviour")
    publish(stack, base_ts, seq0)
    wait_for_stage_in(worker, before + len(SCRIPT))
    time.sleep(1.0)
    again = consume(stack, "events.video", 4, timeout_s=5, where=ours)
    assert sorted(VideoEvent.model_validate_json(r.value).event_id for r in again) == sorted(
        e.event_id for _, e in events.values())


def test_bad_tracks_messages_are_dead_lettered(stack: Settings, worker: int) -> None:
    producer = make_producer(stack)
    producer.send(stack.topic("tracks"), key=CAMERA.encode(), value=b'{"camera_id": 1}')
    stranger = Tracks(camera_id="cam-nowhere", seq=1, capture_ts=time.time(), width=W,
                      height=H, tracks=[])
    producer.send(stack.topic("tracks"), key=b"cam-nowhere", value=stranger.to_bytes())
    producer.flush()
    producer.close()

    def behaviour_letter(record: ConsumerRecord) -> bool:
        return DeadLetter.model_validate_json(record.value).stage == "behaviour"

    letters = [DeadLetter.model_validate_json(r.value)
               for r in consume(stack, "dlq", 2, timeout_s=60, where=behaviour_letter)]
    assert sorted(letter.reason for letter in letters) == ["schema", "unknown_camera"]
    unknown = next(letter for letter in letters if letter.reason == "unknown_camera")
    assert "cam-nowhere" in unknown.error and unknown.payload() == stranger.to_bytes()
