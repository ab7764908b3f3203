"""The counting stage in the real worker: ``tracks`` on the real Kafka → one ``counts``
message per area when the next minute starts, the latest window in the real Redis, the
counters in Prometheus, and the correlate stage's ``over_occupancy`` alert from it.

The test publishes ``tracks`` for ``cam-counting`` (tests/topology.yaml: zone
``hall-floor`` over the bottom half, tripwire ``hall-door`` at x = 0.5 drawn downwards so
right to left is ``a_to_b`` = in) in one minute of capture time, then one frame of the
next minute:

* person 1 walks into the zone; person 2 crosses the door right to left above the zone;
  person 3 appears in the zone and walks out of it; a car drives into the zone;
* then 20 people stand in the zone: 21 people inside at once, over the shipped rule's 20.
"""

from __future__ import annotations

import math
import time

import pytest
import redis
from kafka.consumer.fetcher import ConsumerRecord

from argus.kafka import make_producer
from argus.settings import Settings
from argus.stores import alerts as alert_sink
from argus.stores import counts as store
from schemas import Alert, Counts, GroupCounts, Track, Tracks
from tests.conftest import metric_value, scrape
from tests.kafka_utils import consume_until
from tests.unit.test_behaviour_support import H, W, obj

pytestmark = pytest.mark.integration

CAMERA, SITE, ZONE, LINE = "cam-counting", "site-counting", "hall-floor", "hall-door"
CROWD = 20


def path(start: tuple[float, float], end: tuple[float, float], steps: int, frames: int
         ) -> list[tuple[float, float]]:
    """From ``start`` to ``end`` in ``steps`` frames, then standing at ``end``."""
    points = [(start[0] + (end[0] - start[0]) * i / (steps - 1),
               start[1] + (end[1] - start[1]) * i / (steps - 1)) for i in range(steps)]
    return points + [end] * (frames - steps)


def script() -> list[list[Track]]:
    frames = 14
    walkers = {1: ("person", path((0.3, 0.3), (0.3, 0.75), 8, frames)),
               2: ("person", path((0.75, 0.3), (0.25, 0.3), 8, frames)),
               3: ("person", path((0.8, 0.8), (0.8, 0.3), 8, frames)),
               4: ("car", path((0.9, 0.3), (0.9, 0.8), 8, frames))}
    out = []
    for i in range(frames):
        tracks = [obj(tid, *points[i], cls=cls) for tid, (cls, points) in walkers.items()]
        if i >= 10:  # the crowd stands in the zone, away from the door line
            tracks += [obj(10 + k, 0.05 + 0.02 * k, 0.9, h=0.1) for k in range(CROWD)]
        out.append(tracks)
    return out


def publish(settings: Settings, frames: list[list[Track]], times: list[float], seq0: int
            ) -> None:
    producer = make_producer(settings)
    for i, (tracks, ts) in enumerate(zip(frames, times, strict=True)):
        message = Tracks(camera_id=CAMERA, seq=seq0 + i, capture_ts=ts, width=W, height=H,
                         tracks=tracks)
        producer.send(settings.topic("tracks"), key=CAMERA.encode(), value=message.to_bytes())
    producer.flush()
    producer.close()


def ours(record: ConsumerRecord) -> bool:
    return bool(Counts.model_validate_json(record.value).camera_id == CAMERA)


def test_tracks_become_counts_in_kafka_redis_and_an_alert(stack: Settings, worker: int
                                                          ) -> None:
    minute = math.floor(time.time() / 60) * 60 - 600  # a whole minute, in the past
    frames = script()
    times = [minute + 50 + i * 0.2 for i in range(len(frames))]
    publish(stack, frames, times, seq0=100)
    publish(stack, [frames[-1]], [minute + 60.5], seq0=100 + len(frames))  # closes it

    records = consume_until(stack, "counts", lambda rs: len(rs) >= 2, timeout_s=90,
                            where=ours)
    by_area = {Counts.model_validate_json(r.value).area_id: (r, Counts.model_validate_json(
        r.value)) for r in records}
    assert sorted(by_area) == [LINE, ZONE]
    assert all(r.key == SITE.encode() for r, _ in by_area.values())

    _, zone = by_area[ZONE]
    assert (zone.window_start, zone.window_end, zone.frames) == (minute, minute + 60,
                                                                 len(frames))
    assert (zone.site_id, zone.site_zone_id, zone.last_seq) == (SITE, "hall", 113)
    # people: 1 walked in, 3 appeared inside and walked out, 20 appeared and stayed
    assert zone.groups["people"] == GroupCounts(entries=2 + CROWD, exits=1,
                                                occupancy=1 + CROWD, max_occupancy=1 + CROWD)
    assert zone.groups["vehicles"] == GroupCounts(entries=1, exits=0, occupancy=1,
                                                  max_occupancy=1)
    _, line = by_area[LINE]
    assert line.groups["people"] == GroupCounts(entries=1, exits=0)  # person 2, a_to_b
    assert line.groups["vehicles"] == GroupCounts(entries=0, exits=0)

    db = redis.Redis.from_url(stack.redis_url)
    latest = store.latest(db, SITE)
    assert latest[f"{CAMERA}/{ZONE}"] == zone and latest[f"{CAMERA}/{LINE}"] == line
    key = store.window_key(SITE, CAMERA, ZONE, minute)
    assert Counts.model_validate_json(db.get(key) or b"") == zone
    assert 0 < int(db.ttl(key)) <= 7 * 24 * 3600

    metrics = scrape(worker)
    assert metric_value(metrics, "argus_counted_total", camera=CAMERA, area=LINE,
                        group="people", direction="in") == 1
    assert metric_value(metrics, "argus_counted_total", camera=CAMERA, area=ZONE,
                        group="vehicles", direction="in") == 1
    assert metric_value(metrics, "argus_zone_occupancy", camera=CAMERA, zone=ZONE,
                        group="people") == 1 + CROWD

    # the correlate stage read the window as an occupancy of 21 people: over the limit
    deadline = time.monotonic() + 60
    alert_ids: list[str] = []
    while time.monotonic() < deadline and not alert_ids:
        alert_ids = [a.decode() if isinstance(a, bytes) else str(a)
                     for a in db.zrange(alert_sink.site_active_key(SITE), 0, -1)]
        time.sleep(0.5)
    assert len(alert_ids) == 1, "no over_occupancy alert"
    alert = Alert.model_validate_json(db.hget(alert_sink.alert_key(alert_ids[0]), "json")
                                      or b"")
    assert (alert.rule, alert.zone_id, alert.camera_id) == ("over_occupancy", "hall", CAMERA)
    assert f"{1 + CROWD} people at once" in alert.title

    # a replay of the same frames (at-least-once redelivery) counts nothing again
    before = metric_value(metrics, "argus_stage_skipped_total", stage="counting",
                          reason="stale")
    publish(stack, frames, times, seq0=100)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and metric_value(
            scrape(worker), "argus_stage_skipped_total", stage="counting",
            reason="stale") < before + len(frames):
        time.sleep(0.5)
    assert metric_value(scrape(worker), "argus_counted_total", camera=CAMERA, area=LINE,
                        group="people", direction="in") == 1
    assert store.latest(db, SITE)[f"{CAMERA}/{ZONE}"] == zone
