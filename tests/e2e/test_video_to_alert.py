"""End to end on the real servers: a real video and an intrusion sensor event become
exactly one confirmed-intrusion alert, in Redis and on the ``alerts`` topic.

grabber (one-by-one-person-detection.mp4) → frames.raw → detect (Triton) → detections
→ zones → events.video ┐
sensor publisher (pir-lobby-test) → sensors.events ┴→ correlate → alerts + Redis
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
import redis
from kafka.consumer.fetcher import ConsumerRecord
from pydantic import ValidationError

from argus.kafka import make_producer
from argus.settings import Settings
from argus.stores import alerts as alert_sink
from argus.topology import Topology
from schemas import Alert, SensorEvent, Tracks, VideoEvent
from services.frame_grabber.grabber import FrameGrabber
from services.sensor_gateway.gateway import SensorPublisher
from tests.conftest import metric_value, scrape
from tests.kafka_utils import consume

pytestmark = pytest.mark.e2e

SITE = "site-test"


def wait_for(predicate: object, timeout_s: float, interval_s: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval_s)
    return False


def test_real_video_and_sensor_make_one_alert(stack: Settings, topology: Topology, worker: int
                                              ) -> None:
    db = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    active_key = alert_sink.site_active_key(SITE)
    assert db.zcard(active_key) == 0

    # 1. the camera sees people walking through the lobby (the real video, not paced)
    camera = topology.camera("cam-e2e")
    assert camera is not None
    grabber = FrameGrabber([camera], stack)
    started = time.time()
    grabber.start()
    try:
        # 2. the intrusion sensor fires while the first person is in the lobby (through the
        # gateway's own publisher), timed on that frame's capture: a loaded machine that
        # reads the video slowly still has sensor and video within the rule's window
        def in_lobby(record: ConsumerRecord) -> bool:
            try:
                event = VideoEvent.model_validate_json(record.value)
            except ValidationError:  # other tests put bad records here on purpose
                return False
            return (event.camera_id == "cam-e2e" and event.kind == "zone_intrusion"
                    and event.ts >= started)

        (first,) = consume(stack, "events.video", 1, timeout_s=120, where=in_lobby)[:1]
        fired_at = VideoEvent.model_validate_json(first.value).ts + 1.0
        producer = make_producer(stack)
        publisher = SensorPublisher(stack, topology, producer)
        reading = {"sensor_id": "pir-lobby-test", "state": "active", "ts": fired_at}
        published = publisher.publish(json.dumps(reading).encode())
        assert len(published.event_ids) == 1
        assert grabber.wait(timeout=120), "the grabber did not finish the video"
    finally:
        grabber.stop()
    sent = grabber.stats()["cam-e2e"]["published"]
    assert sent >= 100  # 139 s of video sampled at 2 fps

    # 3. every frame is processed, and the alert is there
    def all_detected() -> bool:
        return metric_value(scrape(worker), "argus_stage_messages_out_total",
                            stage="detect") >= sent

    assert wait_for(all_detected, 120), "the detect stage did not process every frame"

    # the tracker followed the people walking through (a handful of stable ids)
    # (read everything there is, again until every frame has its tracks: a redelivered
    # message after a consumer-group rebalance repeats a seq, so a record count can be
    # reached before the last frames are in)
    def e2e_tracks() -> list[Tracks]:
        return [Tracks.model_validate_json(r.value) for r in consume(
            stack, "tracks", 10**9, timeout_s=5, where=lambda r: r.key == b"cam-e2e")]

    tracks = e2e_tracks()
    deadline = time.monotonic() + 150
    while len({m.seq for m in tracks}) < sent - 2 and time.monotonic() < deadline:
        tracks = e2e_tracks()
    seen = {m.seq for m in tracks}
    assert len(seen) >= sent - 2, (len(tracks), sorted(set(range(sent)) - seen))
    person = Counter(t.track_id for m in tracks for t in m.confirmed()
                     if t.class_name == "person")
    assert person and person.most_common(1)[0][1] >= 10 and len(person) <= 15
    assert wait_for(lambda: db.zcard(active_key) >= 1, 30), "no alert in Redis"
    time.sleep(3)  # let any late (duplicate) alert land before counting

    alert_ids = [str(a) for a in db.zrange(active_key, 0, -1)]
    assert len(alert_ids) == 1
    stored = db.hgetall(alert_sink.alert_key(alert_ids[0]))
    alert = Alert.model_validate_json(stored["json"])
    assert alert.rule == "confirmed_intrusion" and alert.severity.value == "high"
    assert (alert.site_id, alert.zone_id, alert.camera_id) == (SITE, "lobby", "cam-e2e")
    assert (alert.lat, alert.lon) == (48.8584, 2.2945)
    sensor_evidence = [e for e in alert.evidence if e.source == "sensor"]
    video_evidence = [e for e in alert.evidence if e.source == "video"]
    assert [e.event_id for e in sensor_evidence] == published.event_ids
    assert video_evidence[0].camera_id == "cam-e2e"
    assert video_evidence[0].snapshot_ref and video_evidence[0].snapshot_ref.startswith(
        "frames.raw/cam-e2e/")
    assert abs(video_evidence[0].ts - fired_at) <= stack.correlation_window_s

    # every change of the alert is on the alerts topic, keyed by its id, versions in order
    def ours(record: ConsumerRecord) -> bool:
        return bool(record.key == alert.alert_id.encode())

    on_kafka = [Alert.model_validate_json(r.value)
                for r in consume(stack, "alerts", alert.version, timeout_s=20, where=ours)]
    versions = [a.version for a in on_kafka]
    assert versions == sorted(versions) and versions[0] == 1 and versions[-1] == alert.version
    assert on_kafka[0].change == "created"

    # 4. the same sensor event delivered again (at-least-once) changes nothing
    raw = next(r for r in consume(stack, "sensors.events", 1, timeout_s=10)
               if SensorEvent.model_validate_json(r.value).event_id == published.event_ids[0])
    producer.send(stack.topic("sensors.events"), key=raw.key, value=raw.value)
    producer.flush()
    assert wait_for(lambda: metric_value(scrape(worker), "argus_correlation_duplicate_events_total",
                                         source="sensors.events") >= 1, 30)
    assert db.zrange(active_key, 0, -1) == alert_ids
    again = consume(stack, "alerts", len(on_kafka) + 1, timeout_s=5, where=ours)
    assert len(again) == len(on_kafka)
    assert metric_value(scrape(worker), "argus_alerts_total", rule="confirmed_intrusion",
                        severity="high") == 1
