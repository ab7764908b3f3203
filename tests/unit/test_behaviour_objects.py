"""Objects that stay: an abandoned bag (still 5 s after its owner left) and a vehicle
stopped in a no-parking zone (10 s), on synthetic tracks at 5 frames per second."""

from __future__ import annotations

import pytest

from schemas.tracks import TrackStateName
from tests.unit.test_behaviour_support import (
    T0,
    Script,
    camera,
    empty,
    moving,
    obj,
    run,
    still,
    together,
)

BAG_ZONE = """    zones:
      - id: hall
        polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]
        behaviours:
          abandoned_object: {still_s: 5, grace_s: 2}
"""
BAG = (0.5, 0.8)


def bag(seconds: float, tid: int = 10, cls: str = "suitcase",
        state: TrackStateName = "confirmed") -> Script:
    return still(tid, *BAG, seconds, h=0.06, cls=cls, state=state)


def owner_leaves(after_s: float, walk_frames: int = 10, tid: int = 1) -> Script:
    """The owner stands by the bag, then walks away to the right edge."""
    return (still(tid, 0.53, 0.8, after_s)
            + moving(tid, (0.53, 0.8), (0.95, 0.8), walk_frames))


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        pytest.param(together(bag(12), owner_leaves(2)), [(42, [10, 1])],
                     id="owner leaves: fires 5 s after they are out of reach"),
        pytest.param(together(bag(20), still(1, 0.53, 0.8, 20)), [], id="owner stays"),
        pytest.param(together(bag(12), owner_leaves(2) + empty(10)), [(42, [10, 1])],
                     id="owner leaves the picture"),
        pytest.param(bag(8), [(25, [10])], id="no one near: unattended from the start"),
        pytest.param(bag(4), [], id="unattended 4 s"),
        pytest.param(together(moving(10, (0.1, 0.8), (0.9, 0.8), 40, h=0.06, cls="suitcase"),
                              moving(1, (0.12, 0.8), (0.92, 0.8), 40)), [],
                     id="carried along"),
        pytest.param(together(bag(20), still(1, 0.53, 0.8, 2) + still(1, 0.9, 0.8, 3)
                              + still(1, 0.53, 0.8, 15)), [],
                     id="owner steps away 3 s and comes back"),
        pytest.param(bag(3) + bag(1, state="lost") + bag(4), [(25, [10])],
                     id="occluded 1 s: keeps its clock"),
        pytest.param(bag(8, cls="chair"), [], id="not a bag class"),
        pytest.param(together(bag(12), owner_leaves(2), still(2, 0.45, 0.8, 12)),
                     [(42, [10, 1])], id="a stranger near it does not count as the owner"),
    ],
)
def test_abandoned_object(script: Script, expected: list[tuple[int, list[int]]]) -> None:
    cam, site = camera(BAG_ZONE)
    events = run(cam, site, script)
    assert [(i, e.track_ids) for i, e in events] == expected
    for _, event in events:
        assert (event.kind, event.class_name, event.zone_id) == ("abandoned_object",
                                                                 "suitcase", "hall")
        assert event.attributes["still_s"] == pytest.approx(5.0, abs=0.21)
        owner = event.track_ids[1] if len(event.track_ids) > 1 else None
        assert event.attributes.get("owner_track_id") == owner


def test_abandoned_clock_starts_when_the_owner_is_out_of_reach() -> None:
    cam, site = camera(BAG_ZONE)
    (index, event), = run(cam, site, together(bag(12), owner_leaves(2)))
    # the owner (box 72 px tall) is over 3 box heights (216 px = 0.3375 of 640) away from frame 17
    assert event.start_ts == pytest.approx(T0 + 17 / 5)
    assert event.end_ts == pytest.approx(T0 + index / 5)
    assert event.event_id == "cam:hall:abandoned_object:10+1:0"


CAR_ZONE = """    zones:
      - id: bus-stop
        site_zone: z
        polygon: [[0, 0.5], [0.6, 0.5], [0.6, 1], [0, 1]]
        behaviours:
          vehicle_stopped: {stopped_s: 10, grace_s: 3}
"""


def car(seconds: float, x: float = 0.3, tid: int = 5, cls: str = "car",
        state: TrackStateName = "confirmed") -> Script:
    return still(tid, x, 0.9, seconds, h=0.25, aspect=2.0, cls=cls, state=state)


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        pytest.param(car(12), [(50, 5, 0)], id="parked 12 s"),
        pytest.param(car(9), [], id="parked 9 s"),
        pytest.param(car(30), [(50, 5, 0)], id="parked 30 s: one event"),
        pytest.param(moving(5, (0.0, 0.9), (0.6, 0.9), 60, h=0.25, aspect=2.0, cls="car"), [],
                     id="drives through slowly"),
        pytest.param(car(12, x=0.8), [], id="parked outside the zone"),
        pytest.param(car(6) + car(6, x=0.45), [], id="stops, moves on, stops: 6 s each"),
        pytest.param(car(6) + car(12, x=0.45), [(80, 5, 30)], id="the second stop is long"),
        pytest.param(car(6) + car(2, state="lost") + car(4), [(50, 5, 0)],
                     id="occluded 2 s: keeps its clock"),
        pytest.param(car(6) + empty(4) + car(6), [], id="gone 4 s (over grace)"),
        pytest.param(car(12, cls="bus"), [(50, 5, 0)], id="a bus"),
        pytest.param(car(12, cls="person"), [], id="a person standing"),
    ],
)
def test_vehicle_stopped(script: Script, expected: list[tuple[int, int, int]]) -> None:
    cam, site = camera(CAR_ZONE)
    events = run(cam, site, script)
    assert [(i, e.track_ids[0], e.seq - round((e.ts - (e.start_ts or 0)) * 5))
            for i, e in events] == expected
    for _, event in events:
        assert (event.kind, event.zone_id, event.site_zone_id) == ("vehicle_stopped",
                                                                   "bus-stop", "z")
        assert event.attributes["stopped_s"] == pytest.approx(10.0)
        assert event.event_id.endswith(f":5:{expected[0][2]}")


def test_jitter_within_tolerance_is_still_stopped() -> None:
    wobble = [[obj(5, 0.3 + 0.004 * (i % 3), 0.9, 0.25, cls="car", aspect=2.0)]
              for i in range(60)]
    cam, site = camera(CAR_ZONE)
    assert [i for i, _ in run(cam, site, wobble)] == [50]
