"""The confirmed-intrusion rule's window logic, as a table."""

from __future__ import annotations

import pytest

from argus.topology import Topology
from pipelines.rules import ConfirmedIntrusion, SiteState, alert_id
from schemas.detections import Box
from schemas.events import VideoEvent
from schemas.sensors import SensorEvent, SensorType

TOPOLOGY = Topology.model_validate({
    "sites": [{"id": "s1", "lat": 1.0, "lon": 2.0, "zones": [{"id": "lobby"}, {"id": "yard"}]}],
    "cameras": [{"id": "c1", "site": "s1", "source": "x.mp4", "zones": [
        {"id": "floor", "site_zone": "lobby", "polygon": [[0, 0], [1, 0], [1, 1]]}]}],
    "sensors": [{"id": "pir", "site": "s1", "zone": "lobby", "type": "intrusion"}],
})


def sensor(ts: float, zone: str = "lobby", state: str = "active",
           kind: SensorType = SensorType.INTRUSION) -> SensorEvent:
    return SensorEvent(event_id=f"pir:{ts}:{state}", sensor_id="pir", site_id="s1", zone_id=zone,
                       type=kind, state=state, ts=ts)


def video(ts: float, site_zone: str | None = "lobby", seq: int = 0) -> VideoEvent:
    return VideoEvent(event_id=f"c1:floor:zone_intrusion:{seq}", kind="zone_intrusion",
                      camera_id="c1", site_id="s1", zone_id="floor", site_zone_id=site_zone,
                      ts=ts, seq=seq, class_name="person", score=0.9,
                      box=Box(x1=0.1, y1=0.1, x2=0.2, y2=0.5), count=1)


@pytest.mark.parametrize(
    ("events", "alerts"),
    [
        ("sensor first, video 10 s later", 1),
        ("video first, sensor 10 s later", 1),
        ("video 31 s after sensor", 0),
        ("sensor in another zone", 0),
        ("sensor inactive", 0),
        ("door sensor, not intrusion", 0),
        ("unmapped camera zone", 0),
        ("one sensor, three videos", 3),  # same alert id three times (sinks dedupe)
    ],
)
def test_confirmed_intrusion(events: str, alerts: int) -> None:
    cases: dict[str, list[SensorEvent | VideoEvent]] = {
        "sensor first, video 10 s later": [sensor(1000.0), video(1010.0)],
        "video first, sensor 10 s later": [video(1000.0), sensor(1010.0)],
        "video 31 s after sensor": [sensor(1000.0), video(1031.0)],
        "sensor in another zone": [sensor(1000.0, zone="yard"), video(1005.0)],
        "sensor inactive": [sensor(1000.0, state="inactive"), video(1005.0)],
        "door sensor, not intrusion": [sensor(1000.0, kind=SensorType.DOOR), video(1005.0)],
        "unmapped camera zone": [sensor(1000.0), video(1005.0, site_zone=None)],
        "one sensor, three videos": [sensor(1000.0), video(1001.0, seq=1), video(1002.0, seq=2),
                                     video(1003.0, seq=3)],
    }
    rule = ConfirmedIntrusion(TOPOLOGY, window_s=30.0)
    state: SiteState = {}
    produced = [a for e in cases[events] for a in rule.observe(state, e)]
    assert len(produced) == alerts
    assert len({a.alert_id for a in produced}) == min(alerts, 1)
    for alert in produced:
        assert alert.site_id == "s1" and alert.zone_id == "lobby" and alert.camera_id == "c1"
        assert (alert.lat, alert.lon) == (1.0, 2.0)
        assert {e.source for e in alert.evidence} == {"sensor", "video"}
        assert alert.alert_id == alert_id("confirmed_intrusion", "s1", "lobby", "pir:1000.0:active"
                                          ) or events.startswith("video first")


def test_state_is_pruned_and_json_safe() -> None:
    import json

    rule = ConfirmedIntrusion(TOPOLOGY, window_s=30.0)
    state: SiteState = {}
    for i in range(100):
        rule.observe(state, video(1000.0 + i * 10, seq=i))
    assert len(state["video"]) <= 7  # only the last 2 windows are kept
    json.dumps(state)
