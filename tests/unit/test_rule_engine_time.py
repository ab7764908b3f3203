"""Rule-engine tables about time: absences (before, and after with ticks), schedules in
the site's timezone (across midnight, opening hours) and silent sensors."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import cast
from zoneinfo import ZoneInfo

import pytest

from argus.schedule import TimeWindow, in_any
from argus.topology import Topology
from pipelines.stages.correlate.rules import site_contexts
from tests.unit.test_rule_engine import Step, at, engine_for, play, s, summary, tick, v

RULES = """
rules:
  - id: forced
    title: "Forced entry at {door[sensor]}"
    severity: high
    events: [{as: door, type: door, state: [open]}]
    absent: [{type: access, state: [granted], of: door, before_s: 30}]
    where: site
    cooldown_s: 0
  - id: held
    title: "Door held open"
    severity: low
    events: [{as: door, type: door, state: [open]}]
    absent: [{type: door, state: [closed], of: door, after_s: 60}]
  - id: night
    title: "Loitering at night"
    severity: medium
    events: [{as: person, kind: loitering}]
    schedule: {hours: [{from: "22:00", to: "06:00"}]}
    cooldown_s: 0
  - id: weekend_nights
    title: "Friday night"
    severity: low
    events: [{as: person, kind: loitering}]
    schedule: {hours: [{from: 22:00, to: 06:00, days: [fri]}]}
    cooldown_s: 0
  - id: closed
    title: "After hours in {zone_name}"
    severity: medium
    events: [{as: person, kind: zone_intrusion, class: person}]
    schedule: {site: closed}
    cooldown_s: 0
  - id: offline
    title: "Sensor offline: {sensor[sensor]}"
    severity: medium
    silence: {type: temperature, for_s: 600}
"""

FORCED = "opened door x1 high"
HELD = "opened door x1 low"


@pytest.mark.parametrize(
    ("rule", "steps", "expected"),
    [
        # forced entry: no access granted in the 30 s before the door opened
        ("forced", [s(0, "door", "open")], [FORCED]),
        ("forced", [s(0, "badge", "granted"), s(10, "door", "open")], []),
        ("forced", [s(0, "badge", "granted"), s(30, "door", "open")], []),
        ("forced", [s(0, "badge", "granted"), s(31, "door", "open")], [FORCED]),
        ("forced", [s(0, "badge", "denied"), s(10, "door", "open")], [FORCED]),
        ("forced", [s(0, "door", "closed")], []),
        # where: site: a badge anywhere on the site counts
        ("forced", [s(0, "badge-lobby", "granted"), s(10, "door", "open")], []),
        # a badge *after* the door does not excuse it
        ("forced", [s(0, "door", "open"), s(5, "badge", "granted")], [FORCED]),
        # held open: nothing until 60 s have passed (tick or a later event), then only if
        # the door did not close
        ("held", [s(0, "door", "open"), tick(30)], []),
        ("held", [s(0, "door", "open"), tick(30), tick(61)], [HELD]),
        ("held", [s(0, "door", "open"), tick(61), tick(90)], [HELD]),
        ("held", [s(0, "door", "open"), s(20, "door", "closed"), tick(61)], []),
        ("held", [s(0, "door", "open"), s(61, "door", "closed")], [HELD]),
        ("held", [s(0, "door", "open"), s(70, "pir", "active")], [HELD]),
        ("held", [s(0, "door", "open"), s(0, "door", "open"), tick(61)], [HELD]),
        # night 22:00-06:00 local time, across midnight; end exclusive
        ("night", [v(at("2026-11-18 23:30"), kind="loitering")], ["opened lobby x1 medium"]),
        ("night", [v(at("2026-11-19 03:00"), kind="loitering")], ["opened lobby x1 medium"]),
        ("night", [v(at("2026-11-18 22:00"), kind="loitering")], ["opened lobby x1 medium"]),
        ("night", [v(at("2026-11-18 21:59"), kind="loitering")], []),
        ("night", [v(at("2026-11-19 06:00"), kind="loitering")], []),
        ("night", [v(at("2026-11-18 12:00"), kind="loitering")], []),
        # summer time: 21:30 UTC is 23:30 in Amsterdam in July
        ("night", [v(datetime(2026, 7, 1, 21, 30, tzinfo=ZoneInfo("UTC")).timestamp(),
                     kind="loitering")], ["opened lobby x1 medium"]),
        # a range on Fridays runs into Saturday morning (unquoted YAML 22:00 too)
        ("weekend_nights", [v(at("2026-11-21 02:00"), kind="loitering")],
         ["opened lobby x1 low"]),
        ("weekend_nights", [v(at("2026-11-20 02:00"), kind="loitering")], []),
        ("weekend_nights", [v(at("2026-11-20 23:00"), kind="loitering")],
         ["opened lobby x1 low"]),
        # opening hours Mon-Fri 08:00-18:00
        ("closed", [v(at("2026-11-23 10:00"))], []),
        ("closed", [v(at("2026-11-23 19:00"))], ["opened lobby x1 medium"]),
        ("closed", [v(at("2026-11-23 07:59"))], ["opened lobby x1 medium"]),
        ("closed", [v(at("2026-11-28 10:00"))], ["opened lobby x1 medium"]),
    ],
)
def test_absence_and_schedules(rule: str, steps: list[Step], expected: list[str]) -> None:
    assert summary(play(engine_for(RULES, rule), steps)) == expected


@pytest.mark.parametrize(
    ("window", "local", "inside"),
    [
        ({"from": "08:00", "to": "18:00"}, "2026-11-23 08:00", True),
        ({"from": "08:00", "to": "18:00"}, "2026-11-23 18:00", False),
        ({"from": "22:00", "to": "06:00", "days": ["sun"]}, "2026-11-23 05:59", True),
        ({"from": "22:00", "to": "06:00", "days": ["sun"]}, "2026-11-22 05:59", False),
        ({"from": "00:00", "to": "00:00", "days": ["mon"]}, "2026-11-23 13:00", True),
        ({"from": "18:00", "to": "24:00"}, "2026-11-23 23:59", True),
        ({"from": "18:00", "to": "24:00"}, "2026-11-24 00:01", False),
    ],
)
def test_time_windows(window: dict[str, object], local: str, inside: bool) -> None:
    when = datetime.fromisoformat(local).replace(tzinfo=ZoneInfo("Europe/Amsterdam"))
    assert in_any([TimeWindow.model_validate(window)], when) is inside


def test_silent_sensors_open_one_alert_until_heard_again() -> None:
    engine = engine_for(RULES, "offline")
    state: dict[str, object] = {}
    # the site is first seen at T; temp reports at 100, temp2 never
    steps: list[Step] = [tick(0), s(100, "temp", value=20.0), tick(599)]
    assert play(engine, steps, state) == []
    changes = play(engine, [tick(650)], state)  # temp2: silent since T (650 s)
    assert summary(changes) == ["opened yard x1 medium"]
    assert changes[0].alert.title == "Sensor offline: temp2"
    assert changes[0].alert.evidence[0].sensor_id == "temp2"
    assert play(engine, [tick(680)], state) == []  # still silent: no second alert
    changes = play(engine, [tick(701)], state)  # temp: silent since 100
    assert summary(changes) == ["opened lobby x1 medium"]
    first_id = changes[0].alert.alert_id
    # heard again, then silent again: a new alert with a new id
    again = play(engine, [s(800, "temp", value=20.5), tick(1300), tick(1401)], state)
    assert summary(again) == ["opened lobby x1 medium"]
    assert again[0].alert.alert_id != first_id
    assert again[0].alert.first_seen == pytest.approx(800 + 1_795_000_000.0)


def test_site_contexts_read_optional_topology_fields() -> None:
    """Sites may gain ``timezone``/``opening_hours`` and zones, cameras and sensors
    ``lat``/``lon``; until then the defaults apply (UTC, always open, the site's position)."""
    zone = SimpleNamespace(id="gate", name=None, lat=40.0, lon=-74.0)
    site = SimpleNamespace(id="ny", name="NY", lat=40.7, lon=-74.0, zones=[zone],
                           timezone="America/New_York",
                           opening_hours=[{"days": ["mon"], "open": 480, "close": "17:00"}])
    bare = SimpleNamespace(id="old", name=None, lat=1.0, lon=2.0, zones=[])
    topology = cast(Topology, SimpleNamespace(sites=[site, bare], cameras=[], sensors=[]))
    contexts = site_contexts(topology)
    ny = contexts["ny"]
    monday_9am = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("America/New_York")).timestamp()
    assert ny.is_open(monday_9am) and not ny.is_open(monday_9am + 9 * 3600)
    assert ny.position({"zone": "gate"}) == (40.0, -74.0)
    assert ny.position({"zone": "elsewhere"}) == (40.7, -74.0)
    old = contexts["old"]
    assert (old.timezone, old.opening_hours, old.is_open(monday_9am)) == ("UTC", None, True)
