"""Behaviour configuration in the topology: defaults, and errors that name the file, the
line and the field; the shipped topologies carry behaviours."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from argus.behaviours import Crowd
from argus.schedule import Schedule
from argus.settings import REPO_ROOT
from argus.topology import TopologyError, load_topology, parse_topology

GOOD = """sites:
  - id: s
    lat: 0
    lon: 0
    zones: [{id: lobby}]
cameras:
  - id: cam
    site: s
    source: x
    lines:
      - id: door
        points: [[0.5, 0.2], [0.5, 0.9]]
        site_zone: lobby
        schedule: {hours: [{from: 22:00, to: '06:00'}]}
    zones:
      - id: floor
        polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]
        behaviours:
          loitering: {dwell_s: 60}
          running: {speed: 2.0}
          crowd: {count: 8, radius: 1.5}
          wrong_way: {direction: [1, 0]}
          abandoned_object: {still_s: 30}
          vehicle_stopped: {stopped_s: 120, schedule: {site: closed}}
"""


def test_good_config_and_defaults() -> None:
    cam = parse_topology(GOOD, "t.yaml").cameras[0]
    line = cam.lines[0]
    assert line.points == ((0.5, 0.2), (0.5, 0.9)) and line.classes == ["person"]
    assert line.schedule == Schedule.model_validate({"hours": [{"from": "22:00",
                                                                "to": "06:00"}]})
    b = cam.zones[0].behaviours
    assert b is not None and b.loitering is not None and b.running is not None
    assert (b.loitering.dwell_s, b.loitering.grace_s, b.loitering.handover) == (60, 5.0, 1.0)
    assert (b.running.speed, b.running.frames) == (2.0, 5)
    assert b.abandoned_object is not None
    assert b.abandoned_object.classes == ["backpack", "handbag", "suitcase"]
    assert b.vehicle_stopped is not None
    assert b.vehicle_stopped.classes == ["car", "motorcycle", "bus", "truck"]
    assert b.vehicle_stopped.schedule == Schedule(site="closed")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("[0.5, 0.9]]", "[0.5, 1.9]]",
         "t.yaml:12: cameras[0].lines[0].points: Value error, point (0.5, 1.9) is outside 0..1"),
        ("[[0.5, 0.2], [0.5, 0.9]]", "[[0.5, 0.2], [0.5, 0.205]]",
         "t.yaml:12: cameras[0].lines[0].points: Value error, the line's two points"),
        ("site_zone: lobby", "site_zone: roof", "line 'door': unknown site zone 'roof'"),
        ("      - id: door", "      - id: floor", "line id 'floor' repeats a zone or line id"),
        ("from: 22:00", "from: '25:00'",
         "t.yaml:14: cameras[0].lines[0].schedule.hours[0].from: Value error, a clock time"),
        ("schedule: {hours: [{from: 22:00, to: '06:00'}]}", "schedule: {}",
         "t.yaml:14: cameras[0].lines[0].schedule: Value error, a schedule needs hours or site"),
        ("loitering: {dwell_s: 60}", "loitering: {grace_s: 2}",
         "t.yaml:19: cameras[0].zones[0].behaviours.loitering.dwell_s: Field required"),
        ("loitering: {dwell_s: 60}", "loitering: {dwell_s: -1}",
         "t.yaml:19: cameras[0].zones[0].behaviours.loitering.dwell_s: Input should be greater"),
        ("loitering: {dwell_s: 60}", "loiter: {dwell_s: 60}",
         "t.yaml:19: cameras[0].zones[0].behaviours.loiter: Extra inputs are not permitted"),
        ("crowd: {count: 8, radius: 1.5}", "crowd: {count: 1}",
         "t.yaml:21: cameras[0].zones[0].behaviours.crowd.count: Input should be greater"),
        ("wrong_way: {direction: [1, 0]}", "wrong_way: {direction: [0, 0]}",
         "t.yaml:22: cameras[0].zones[0].behaviours.wrong_way.direction: Value error, direction"),
        ("wrong_way: {direction: [1, 0]}", "wrong_way: {direction: [1, 0], max_angle_deg: 45}",
         "behaviours.wrong_way.max_angle_deg: Input should be greater than 90"),
        ("{site: closed}", "{site: shut}",
         "t.yaml:24: cameras[0].zones[0].behaviours.vehicle_stopped.schedule.site: Input should"),
        ("running: {speed: 2.0}", "running: {speed: 2.0, classes: []}",
         "behaviours.running.classes: List should have at least 1 item"),
    ],
)
def test_errors_name_file_line_and_field(old: str, new: str, expected: str) -> None:
    assert old in GOOD
    with pytest.raises(TopologyError, match=re.escape(expected)):
        parse_topology(GOOD.replace(old, new, 1), "t.yaml")


@pytest.mark.parametrize(("count", "rise", "needed"), [(3, None, 2), (10, None, 5), (4, 1, 1)])
def test_crowd_rise_defaults_to_half_the_count(count: int, rise: int | None, needed: int
                                               ) -> None:
    assert Crowd(count=count, rise=rise).needed_rise() == needed


def test_shipped_topologies_have_behaviours() -> None:
    demo = load_topology(REPO_ROOT / "config" / "topology.yaml", Path("/data"))
    lobby = demo.camera("cam-lobby")
    assert lobby is not None and [line.id for line in lobby.lines] == ["lobby-exit"]
    floor = lobby.zones[0].behaviours
    assert floor is not None and floor.loitering is not None
    tests = load_topology(REPO_ROOT / "tests" / "topology.yaml", Path("/data"))
    pets = tests.camera("cam-pets")
    assert pets is not None and pets.lines and pets.zones[0].behaviours is not None
    assert tests.camera("cam-behaviour") is not None
