"""``events.plate`` (+ ``sensors.events``) → correlate worker → plate alerts in Redis (real
Kafka, Redis and a ``python -m pipelines`` worker on topics and a topology of their own: a
gate zone with a barrier sensor, a plate camera whose lane is mapped to it, allow list
``staff``):

- a plate on a hotlist makes one high ``hotlist_vehicle`` alert with the plate in its title
  and the track's snapshot as evidence; a plate on no list (or only on an allow list) none;
- the barrier opening with a staff car (allow list ``staff``) and a stranger's car read just
  before makes one medium ``unauthorised_vehicle`` alert, for the stranger;
- a plate read three times in an hour makes one medium ``vehicle_loitering`` alert.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from argus.kafka import make_producer
from argus.settings import Settings
from schemas.alerts import Alert
from schemas.detections import Box
from schemas.plates import PlateEvent, PlateHit
from schemas.sensors import SensorEvent
from services.sensor_gateway.logic import event_id
from tests.integration.test_correlation_restart import (
    Private,
    active_alerts,
    private_env,
    send,
    wait_for,
)

pytestmark = pytest.mark.integration

BOX = Box(x1=0.3, y1=0.3, x2=0.6, y2=0.8)

TOPOLOGY = """\
sites:
  - id: {site}
    name: Private test site
    lat: 48.85
    lon: 2.35
    zones: [{{id: gate, name: Main gate}}, {{id: lobby, name: Lobby}}]
    plates: {{allow_lists: [staff]}}
cameras:
  - id: {site}-cam
    site: {site}
    source: "0"   # no grabber: the tests produce the plate events
    zones:
      - id: lane
        site_zone: gate
        polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]
        classes: [car]
        intrusion: false
sensors:
  - id: {site}-gate
    site: {site}
    zone: gate
    type: gate
"""


@pytest.fixture(scope="module")
def private(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Private]:
    yield from private_env(stack, tmp_path_factory, "pl", TOPOLOGY)


def plate_event(env: Private, track_id: int, text: str, *hits: PlateHit,
                ts: float | None = None) -> PlateEvent:
    return PlateEvent(
        event_id=f"plate-{env.camera}-{track_id}-{text}", camera_id=env.camera,
        site_id=env.site, ts=ts or time.time(), seq=track_id, track_id=track_id, text=text,
        format_id="us", confidence=0.9, confidences=[0.9] * len(text), reads=3, fixes=0,
        vehicle_class="car", colour="silver", speed=0.02, vehicle_box=BOX, plate_box=BOX,
        snapshot_ref=f"frames.raw/{env.camera}/{track_id}", hits=list(hits))


def gate_opens(env: Private, ts: float) -> SensorEvent:
    sensor = f"{env.site}-gate"
    return SensorEvent(event_id=event_id(sensor, ts, "open"), sensor_id=sensor,
                       site_id=env.site, zone_id="gate", type="gate", state="open", ts=ts)


def send_all(settings: Settings, events: list[PlateEvent]) -> None:
    producer = make_producer(settings)
    try:
        for event in events:
            producer.send(settings.topic("events.plate"), key=event.site_id.encode(),
                          value=event.to_bytes()).get(timeout=10)
    finally:
        producer.close(5)


def alerts_of(env: Private, rule: str) -> list[Alert]:
    return [a for a in active_alerts(env.settings, env.site) if a.rule == rule]


def ensure_worker(env: Private) -> None:
    """One worker for the module (every stage; only correlate has input on these topics)."""
    if not env.procs:
        env.start_worker()


STAFF = PlateHit(list_id="staff", list_kind="allow", entry_id="e2", distance=0)


def test_a_hotlisted_plate_raises_one_alert(private: Private) -> None:
    ensure_worker(private)
    stolen = PlateHit(list_id="stolen", list_kind="hotlist", entry_id="e1", distance=1)
    ts = time.time() - 4000  # before the other test's events (the engine runs on event time)
    send_all(private.settings, [
        plate_event(private, 1, "KX70ABC", STAFF, ts=ts),   # allowed: no alert
        plate_event(private, 2, "QQ11QQQ", ts=ts),          # on no list: no alert
        plate_event(private, 3, "YG9X2G", stolen, ts=ts),   # hotlisted: the alert
        plate_event(private, 4, "YG9X2G", stolen, ts=ts),   # again: the same alert, count 2
    ])
    assert wait_for(lambda: any(a.count == 2 for a in alerts_of(private, "hotlist_vehicle")),
                    60), private.log_tail()
    time.sleep(1.0)  # a second alert would land now
    [alert] = alerts_of(private, "hotlist_vehicle")
    assert (alert.rule, alert.severity.value, alert.count) == ("hotlist_vehicle", "high", 2)
    assert alert.title == (f"Hotlisted vehicle: YG9X2G (stolen) on {private.camera} "
                           "(Private test site)")
    assert alert.camera_id == private.camera
    assert [e.snapshot_ref for e in alert.evidence] == [f"frames.raw/{private.camera}/3",
                                                        f"frames.raw/{private.camera}/4"]
    # where in the frame (the console draws it over the snapshot): the vehicle's box in
    # the camera zone of the lane (mapped to the site zone gate)
    assert [(e.box, e.zone_id) for e in alert.evidence] == [(BOX, "lane")] * 2


def test_gate_and_loitering_alerts(private: Private) -> None:
    ensure_worker(private)
    start = time.time() - 3000  # in event time order, after the hotlist test's events
    settings = private.settings
    # a staff car and a stranger behind it, the gate opens: the stranger's alert only (the
    # two topics may be read in any order; the engine pairs them on event time)
    send_all(settings, [plate_event(private, 11, "AA11AAA", STAFF, ts=start),
                        plate_event(private, 12, "KX11XYZ", ts=start + 10)])
    send(settings, "sensors.events", gate_opens(private, start + 30))
    assert wait_for(lambda: bool(alerts_of(private, "unauthorised_vehicle")), 60), \
        private.log_tail()
    # then one plate, three tracks within the hour, far from the opening
    send_all(settings, [plate_event(private, 20 + i, "LT22LTR", ts=start + 1500 + 600 * i)
                        for i in range(3)])
    assert wait_for(lambda: bool(alerts_of(private, "vehicle_loitering")), 60), private.log_tail()
    time.sleep(1.5)  # a second alert would land now
    [gate] = alerts_of(private, "unauthorised_vehicle")
    assert (gate.severity.value, gate.zone_id, gate.count, gate.camera_id) == (
        "medium", "gate", 1, private.camera)
    assert gate.title == (f"Unauthorised vehicle: KX11XYZ (silver car) at {private.site}-gate "
                          "(Main gate, Private test site)")
    assert {(e.source, e.sensor_id or e.snapshot_ref) for e in gate.evidence} == {
        ("sensor", f"{private.site}-gate"), ("video", f"frames.raw/{private.camera}/12")}
    [loiter] = alerts_of(private, "vehicle_loitering")
    assert (loiter.severity.value, loiter.count) == ("medium", 1)
    assert loiter.title == ("Vehicle loitering: LT22LTR (silver car) keeps coming back to "
                            "Private test site")
    assert [e.snapshot_ref for e in loiter.evidence] == [
        f"frames.raw/{private.camera}/{track}" for track in (20, 21, 22)]
