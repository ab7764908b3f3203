"""Line crossing with direction on synthetic tracks: a horizontal tripwire from (0.2, 0.5)
to (0.8, 0.5), drawn left to right, so side A is above it and B below."""

from __future__ import annotations

import pytest

from pipelines.stages.behaviour.lines import crosses_segment, side_of
from tests.unit.test_behaviour_support import (
    T0,
    Script,
    camera,
    crossings,
    empty,
    moving,
    obj,
    run,
    still,
    together,
)

CAM = """    lines:
      - id: gate
        points: [[0.2, 0.5], [0.8, 0.5]]
        site_zone: z
"""
DOWN = moving(1, (0.5, 0.3), (0.5, 0.7), 10)
UP = moving(1, (0.5, 0.7), (0.5, 0.3), 10)
JITTER = [[obj(1, 0.5, y)] for y in (0.45, 0.495, 0.505, 0.498, 0.503, 0.496, 0.45)]
LOST_WHILE_CROSSING = (moving(1, (0.5, 0.3), (0.5, 0.45), 4)
                       + [[obj(1, 0.5, 0.5, state="lost")]] * 3
                       + moving(1, (0.5, 0.6), (0.5, 0.7), 3))


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        pytest.param(DOWN, ["a_to_b"], id="down through the middle"),
        pytest.param(UP, ["b_to_a"], id="up through the middle"),
        pytest.param(DOWN + UP, ["a_to_b", "b_to_a"], id="there and back: two crossings"),
        pytest.param(moving(1, (0.9, 0.3), (0.9, 0.7), 10), [], id="past the end of the line"),
        pytest.param(moving(1, (0.1, 0.3), (0.5, 0.7), 10), ["a_to_b"], id="diagonal"),
        pytest.param(JITTER, [], id="jitter on the line is not a crossing"),
        pytest.param(moving(1, (0.5, 0.3), (0.5, 0.5), 5) + moving(1, (0.5, 0.5), (0.5, 0.3), 5),
                     [], id="to the line and back"),
        pytest.param(LOST_WHILE_CROSSING, ["a_to_b"], id="lost while crossing: one crossing"),
        pytest.param([[obj(1, 0.5, 0.3)], [obj(1, 0.5, 0.7)]], ["a_to_b"],
                     id="frames dropped: a jump across"),
        pytest.param(moving(1, (0.5, 0.3), (0.5, 0.45), 4) + empty(1)
                     + moving(1, (0.5, 0.6), (0.5, 0.7), 3), ["a_to_b"],
                     id="gap of 1 s in the middle"),
        pytest.param(moving(1, (0.5, 0.3), (0.5, 0.45), 4) + empty(12)
                     + moving(1, (0.5, 0.6), (0.5, 0.7), 3), [], id="gap of 12 s: forgotten"),
        pytest.param(moving(1, (0.5, 0.3), (0.5, 0.7), 10, cls="car"), [],
                     id="a car: not a watched class"),
        pytest.param(together(DOWN, moving(2, (0.3, 0.7), (0.3, 0.3), 10),
                              still(3, 0.6, 0.45, 2)), ["a_to_b", "b_to_a"],
                     id="two people cross, one stands"),
    ],
)
def test_crossings(script: Script, expected: list[str]) -> None:
    cam, site = camera(CAM)
    events = run(cam, site, script)
    assert [e.attributes["direction"] for _, e in events] == expected
    assert crossings(cam, site, script) == expected
    for _, event in events:
        assert (event.kind, event.zone_id, event.site_zone_id) == ("line_crossing", "gate", "z")
        assert event.attributes["line"] == "gate"
        assert event.track_ids == [event.attributes["track_id"]]
        assert event.start_ts is not None and event.start_ts < event.ts == event.end_ts


def test_one_event_per_crossing_with_a_deterministic_id() -> None:
    cam, site = camera(CAM)
    events = run(cam, site, DOWN)
    assert len(events) == 1
    index, event = events[0]
    assert index == 5  # y = 0.522: the first frame beyond the 0.01 margin below the line
    assert event.event_id == "cam:gate:line_crossing:1:5"
    assert event.seq == 5 and event.ts == pytest.approx(T0 + 1.0)
    assert run(cam, site, DOWN)[0][1] == event  # the same input gives the same event


@pytest.mark.parametrize(
    ("schedule", "events"),
    [
        ("{hours: [{from: '00:00', to: '01:00'}]}", 1),  # T0 is 00:00 UTC
        ("{hours: [{from: '22:00', to: '00:00'}]}", 0),
        ("{hours: [{from: '23:00', to: '00:01'}]}", 1),  # past midnight
        ("{hours: [{from: '23:00', to: '00:01', days: [fri]}]}", 0),  # started on Wednesday
    ],
)
def test_schedule_gates_events_but_every_crossing_is_counted(schedule: str, events: int) -> None:
    cam, site = camera(CAM + f"        schedule: {schedule}\n")
    assert len(run(cam, site, DOWN)) == events
    assert crossings(cam, site, DOWN) == ["a_to_b"]


@pytest.mark.parametrize(
    ("point", "side"),
    [((0.5, 0.3), "a"), ((0.5, 0.7), "b"), ((0.5, 0.495), None), ((0.95, 0.2), "a")],
)
def test_side_of(point: tuple[float, float], side: str | None) -> None:
    assert side_of(point, ((0.2, 0.5), (0.8, 0.5)), 0.01) == side


@pytest.mark.parametrize(
    ("p", "q", "slack", "expected"),
    [
        ((0.5, 0.3), (0.5, 0.7), 0.0, True),
        ((0.81, 0.3), (0.81, 0.7), 0.0, False),
        ((0.81, 0.3), (0.81, 0.7), 0.02, True),  # within the slack past the end
        ((0.1, 0.4), (0.3, 0.6), 0.0, True),  # the crossing point x = 0.2 is the end
    ],
)
def test_crosses_segment(p: tuple[float, float], q: tuple[float, float], slack: float,
                         expected: bool) -> None:
    assert crosses_segment(p, q, ((0.2, 0.5), (0.8, 0.5)), slack) is expected
