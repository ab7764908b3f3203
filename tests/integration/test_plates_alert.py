"""``events.plate`` → correlate worker → ``hotlist_vehicle`` alert in Redis (real Kafka,
Redis and a ``python -m pipelines --stages correlate`` worker on topics and a topology of its
own): a plate on a hotlist makes one high alert with the plate in its title and the track's
snapshot as evidence; a plate on no list (or only on an allow list) makes none."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from argus.kafka import make_producer
from argus.settings import Settings
from schemas.detections import Box
from schemas.plates import PlateEvent, PlateHit
from tests.integration.test_correlation_restart import (
    Private,
    active_alerts,
    private_env,
    wait_for,
)

pytestmark = pytest.mark.integration

BOX = Box(x1=0.3, y1=0.3, x2=0.6, y2=0.8)


@pytest.fixture(scope="module")
def private(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Private]:
    yield from private_env(stack, tmp_path_factory, "pl")


def plate_event(env: Private, track_id: int, text: str, *hits: PlateHit) -> PlateEvent:
    ts = time.time()
    return PlateEvent(
        event_id=f"plate-{env.camera}-{track_id}-{text}", camera_id=env.camera,
        site_id=env.site, ts=ts, seq=track_id, track_id=track_id, text=text, format_id="us",
        confidence=0.9, confidences=[0.9] * len(text), reads=3, fixes=0,
        vehicle_class="car", colour="silver", speed=0.02, vehicle_box=BOX, plate_box=BOX,
        snapshot_ref=f"frames.raw/{env.camera}/{track_id}", hits=list(hits))


def send_all(settings: Settings, events: list[PlateEvent]) -> None:
    producer = make_producer(settings)
    try:
        for event in events:
            producer.send(settings.topic("events.plate"), key=event.site_id.encode(),
                          value=event.to_bytes()).get(timeout=10)
    finally:
        producer.close(5)


def test_a_hotlisted_plate_raises_one_alert(private: Private) -> None:
    private.start_worker()  # every stage; only correlate has input on these topics
    stolen = PlateHit(list_id="stolen", list_kind="hotlist", entry_id="e1", distance=1)
    staff = PlateHit(list_id="staff", list_kind="allow", entry_id="e2", distance=0)
    send_all(private.settings, [
        plate_event(private, 1, "KX70ABC", staff),          # allowed: no alert
        plate_event(private, 2, "QQ11QQQ"),                 # on no list: no alert
        plate_event(private, 3, "YG9X2G", stolen),          # hotlisted: the alert
        plate_event(private, 4, "YG9X2G", stolen),          # again: the same alert, count 2
    ])
    assert wait_for(lambda: any(a.count == 2 for a in active_alerts(private.settings,
                                                                     private.site)), 60), \
        private.log_tail()
    time.sleep(1.0)  # a second alert would land now
    [alert] = active_alerts(private.settings, private.site)
    assert (alert.rule, alert.severity.value, alert.count) == ("hotlist_vehicle", "high", 2)
    assert alert.title == (f"Hotlisted vehicle: YG9X2G (stolen) on {private.camera} "
                           "(Private test site)")
    assert alert.camera_id == private.camera
    assert [e.snapshot_ref for e in alert.evidence] == [f"frames.raw/{private.camera}/3",
                                                        f"frames.raw/{private.camera}/4"]
    # where in the frame (the console draws it over the snapshot): the vehicle's box
    assert [(e.box, e.zone_id) for e in alert.evidence] == [(BOX, "_frame")] * 2
