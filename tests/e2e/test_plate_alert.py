"""End to end on the real servers: a car whose plate is on a hotlist passes an ANPR camera
and becomes a ``hotlist_vehicle`` alert; a car on the site's allow list and a car on no list
make plate events but no alert; a close-up with no vehicle in it is read whole.

frames.raw (OpenALPR US photos as stills) → detect → track → plates (frame from the frame
cache, Triton "plates" on the vehicle box, the site's format, the lists) → events.plate
(text, hits, colour, snapshot) and a sealed sighting → correlate (rules.yaml:
hotlist_vehicle) → alerts + Redis
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from argus.kafka import make_producer
from argus.plates.hotlist import PlateKeys, PlateListStore
from argus.plates.sightings import SightingStore
from argus.settings import Settings
from argus.stores import alerts as alert_sink
from argus.stores.frame_cache import snapshot_key
from schemas import Alert, FrameHeaders
from schemas.plates import PlateEvent
from tests.conftest import TEST_TOPOLOGY, start_worker
from tests.kafka_utils import consume
from tools import stack as embedded

pytestmark = pytest.mark.e2e

SITE, CAMERA = "site-plates", "cam-plates"
# OpenALPR US photos whose car the tracker starts a track on (score >= 0.7, its new-track
# threshold) and whose plate the reader gets exactly (argus eval plates)
PHOTOS = {
    "car9-1.jpg": "ASC7399",                                 # on no list
    "37170dd1-2802-4e38-b982-c5d07c64ff67.jpg": "6HP995",   # on the hotlist
    "wts-lg-000060.jpg": "TVG399",                           # on the site's allow list
}
HOTLISTED, ALLOWED, UNLISTED = "6HP995", "TVG399", "ASC7399"


@pytest.fixture(scope="module")
def plates_worker(stack: Settings) -> Iterator[tuple[Settings, bytes]]:
    """A worker with the plate key, on topics of its own."""
    settings = Settings(topic_prefix=f"{stack.topic_prefix}plates.",
                        app_id=f"argus-plates-{uuid.uuid4().hex[:8]}",
                        redis_url=stack.redis_url, topology=TEST_TOPOLOGY)
    embedded.create_topics(settings)
    key = os.urandom(32)
    proc, _port = start_worker(settings, env={"ARGUS_PLATE_KEY": base64.b64encode(key).decode()})
    yield settings, key
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_hotlisted_plate_becomes_an_alert(plates_worker: tuple[Settings, bytes]) -> None:
    settings, key = plates_worker
    folder = settings.shared / "data" / "plates" / "openalpr_us"
    db = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    lists = PlateListStore(redis.Redis.from_url(settings.redis_url), PlateKeys.from_master(key))
    hot = lists.add("e2e-stolen", "hotlist", HOTLISTED, "stolen 2026-11-30", "e2e-test")
    lists.add("e2e-staff", "allow", ALLOWED, "staff car", "e2e-test")
    try:
        producer = make_producer(settings)
        start = time.time()
        for seq, name in enumerate(PHOTOS):  # one still a second
            jpeg = (folder / name).read_bytes()
            meta = FrameHeaders(camera_id=CAMERA, seq=seq, capture_ts=start + seq,
                                width=1280, height=720)
            producer.send(settings.topic("frames.raw"), key=CAMERA.encode(), value=jpeg,
                          headers=meta.to_headers())
        producer.flush()

        deadline = time.monotonic() + 120
        alert_ids: list[str] = []
        while time.monotonic() < deadline and not alert_ids:
            alert_ids = [str(a) for a in db.zrange(alert_sink.site_active_key(SITE), 0, -1)]
            time.sleep(0.5)
        assert len(alert_ids) == 1, "no hotlist alert"

        events = {e.text: e for e in (PlateEvent.model_validate_json(r.value) for r in consume(
            settings, "events.plate", 3, timeout_s=10, where=lambda r: r.key == SITE.encode()))}
        assert set(events) == set(PHOTOS.values())  # every car read exactly
        hotlisted = events[HOTLISTED]
        assert [(h.list_id, h.list_kind, h.entry_id, h.distance) for h in hotlisted.hits] == [
            ("e2e-stolen", "hotlist", hot.entry_id, 0)]
        assert [h.list_kind for h in events[ALLOWED].hits] == ["allow"]
        assert events[UNLISTED].hits == []
        for event in events.values():
            assert event.camera_id == CAMERA and event.format_id == "us"
            assert event.vehicle_class in ("car", "truck") and event.reads == 1
            assert event.colour != "unknown" and min(event.confidences) >= 0.6
            # the plate lies inside the vehicle box
            assert event.vehicle_box.x1 <= event.plate_box.x1 <= event.vehicle_box.x2
            ref = event.snapshot_ref
            assert ref is not None and db.exists(snapshot_key(ref)) and db.ttl(
                snapshot_key(ref)) > 0

        # every read is a sighting, searchable by pattern with the camera's site position
        sightings = SightingStore(redis.Redis.from_url(settings.redis_url),
                                  PlateKeys.from_master(key))
        found = sightings.search("6HP*", since=start - 1, site=SITE, actor="e2e-test")
        assert [(s.plate, s.camera_id, s.event_id, s.lat, s.lon) for s in found] == [
            (HOTLISTED, CAMERA, hotlisted.event_id, 48.85, 2.30)]
        assert [(s.plate, s.distance) for s in sightings.search(
            "TV6399", fuzzy=True, since=start - 1, actor="e2e-test")] == [(ALLOWED, 1)]

        stored = db.hget(alert_sink.alert_key(alert_ids[0]), "json")
        assert isinstance(stored, str)
        alert = Alert.model_validate_json(stored)
        assert alert.rule == "hotlist_vehicle" and alert.severity == "high"
        assert alert.camera_id == CAMERA and HOTLISTED in alert.title
        assert [e.snapshot_ref for e in alert.evidence] == [hotlisted.snapshot_ref]
    finally:
        lists.remove("e2e-stolen", HOTLISTED, "e2e-test")
        lists.remove("e2e-staff", ALLOWED, "e2e-test")


def test_a_close_up_with_no_vehicle_is_read_whole(plates_worker: tuple[Settings, bytes],
                                                  ) -> None:
    """A still that frames only the plate (the detector boxes no vehicle in it): the stills
    camera reads the whole photo and publishes its plate as the pseudo track 0."""
    settings, _key = plates_worker
    jpeg = (settings.shared / "data" / "plates" / "openalpr_us" / "us10.jpg").read_bytes()
    producer = make_producer(settings)
    start = time.time()
    seq = int(start)  # after every earlier still of this camera (the tracker drops stale seqs)
    meta = FrameHeaders(camera_id=CAMERA, seq=seq, capture_ts=start, width=800, height=600)
    producer.send(settings.topic("frames.raw"), key=CAMERA.encode(), value=jpeg,
                  headers=meta.to_headers())
    producer.flush()
    records = consume(settings, "events.plate", 1, timeout_s=60, where=lambda r: (
        (e := PlateEvent.model_validate_json(r.value)).camera_id == CAMERA and e.seq == seq))
    events = [PlateEvent.model_validate_json(r.value) for r in records]
    assert [(e.text, e.track_id, e.vehicle_class, e.reads) for e in events] == [
        ("CC2881", 0, "unknown", 1)]
    event = events[0]
    assert event.vehicle_box.x1 == 0.0 and event.vehicle_box.x2 == 1.0  # the whole photo
    assert min(event.confidences) >= 0.6 and event.hits == []
    assert f"-0-{seq}-" in event.event_id and event.snapshot_ref is not None


def test_video_camera_votes_a_track_plate_once(plates_worker: tuple[Settings, bytes]) -> None:
    """A car standing at a video camera for five frames: its track is confirmed on the
    second, read on every frame at least 0.5 s after the last read, and its plate published
    once, when two reads agree."""
    settings, _key = plates_worker
    camera = "cam-plates-video"
    jpeg = (settings.shared / "data" / "plates" / "openalpr_us" /
            "4be2025c-09f7-4bb0-b1bd-8e8633e6dec1.jpg").read_bytes()
    producer = make_producer(settings)
    start = time.time()
    for seq in range(5):  # 0.6 s apart
        meta = FrameHeaders(camera_id=camera, seq=seq, capture_ts=start + 0.6 * seq,
                            width=1280, height=720)
        producer.send(settings.topic("frames.raw"), key=camera.encode(), value=jpeg,
                      headers=meta.to_headers())
    producer.flush()
    records = consume(settings, "events.plate", 2, timeout_s=25,  # one, and no second
                      where=lambda r: PlateEvent.model_validate_json(r.value).camera_id == camera)
    events = [PlateEvent.model_validate_json(r.value) for r in records]
    assert [(e.text, e.track_id) for e in events] == [("UF2V5S", events[0].track_id)]
    event = events[0]
    assert event.reads == 2 and event.seq in (1, 2)  # the better of the first two reads
    assert event.confidence == 1.0  # both reads agree on every character
    assert event.direction_deg is None and event.speed < 0.01  # standing
