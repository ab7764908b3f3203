"""Crowd gathering on synthetic tracks: 3 people in the left half for 1 s; with a radius
(people within one body height of a neighbour); with a rise within a time window."""

from __future__ import annotations

import pytest

from pipelines.stages.behaviour.crowd import group_sizes
from tests.unit.test_behaviour_support import T0, Script, camera, empty, obj, run, still, together

ZONE = """    zones:
      - id: square
        site_zone: z
        polygon: [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]
        behaviours:
          crowd: {{count: 3, hold_s: 1{extra}}}
"""


def people(n: int, seconds: float, x0: float = 0.1, dx: float = 0.05, first: int = 1
           ) -> Script:
    """``n`` people standing side by side from x0, ``dx`` apart (box height 0.2)."""
    return together(*(still(first + i, x0 + i * dx, 0.8, seconds) for i in range(n)))


@pytest.mark.parametrize(
    ("script", "extra", "expected"),
    [
        pytest.param(people(3, 3), "", [(5, 3)], id="3 people for 3 s"),
        pytest.param(people(2, 3), "", [], id="2 people"),
        pytest.param(people(5, 10), "", [(5, 5)], id="5 people for 10 s: one event"),
        pytest.param(people(3, 0.8), "", [], id="3 people for 0.8 s: a flicker"),
        pytest.param(together(people(2, 3), still(3, 0.8, 0.8, 3)), "", [],
                     id="the third is outside the zone"),
        pytest.param(people(3, 2) + people(1, 2) + people(3, 2), "", [(5, 3), (25, 3)],
                     id="disperses for 2 s and gathers again: two occurrences"),
        pytest.param(people(3, 2) + people(1, 0.6) + people(3, 2), "", [(5, 3)],
                     id="dips for 0.6 s: the same occurrence"),
        pytest.param(people(3, 3, dx=0.15), ", radius: 1.0", [], id="spread out"),
        pytest.param(people(3, 3, dx=0.05), ", radius: 1.0", [(5, 3)], id="clustered"),
        pytest.param(together(people(3, 3, dx=0.05), still(9, 0.45, 0.3, 3)), ", radius: 1.0",
                     [(5, 3)], id="clustered, one apart: counts the group"),
        pytest.param(people(3, 20), ", within_s: 5", [], id="always busy: not a gathering"),
        pytest.param(people(1, 10) + people(3, 3), ", within_s: 5", [(55, 3)],
                     id="1 then 3: a gathering"),
        pytest.param(people(1, 10) + people(2, 10) + people(3, 3), ", within_s: 5", [],
                     id="one more every 10 s: too slow"),
        pytest.param(people(1, 10) + people(2, 10) + people(3, 3), ", within_s: 5, rise: 1",
                     [(105, 3)], id="rise 1"),
        pytest.param(empty(2) + people(4, 3), ", within_s: 5", [(15, 4)], id="from empty"),
    ],
)
def test_crowd(script: Script, extra: str, expected: list[tuple[int, int]]) -> None:
    cam, site = camera(ZONE.format(extra=extra))
    events = run(cam, site, script)
    assert [(i, e.count) for i, e in events] == expected
    for i, event in events:
        assert (event.kind, event.zone_id, event.class_name) == ("crowd", "square", "person")
        assert len(event.track_ids) == event.count == event.attributes["people"]
        assert event.ts - (event.start_ts or 0) == pytest.approx(1.0)
        assert event.event_id == f"cam:square:crowd:{'+'.join(map(str, event.track_ids))}:{i - 5}"


def test_crowd_box_covers_the_group() -> None:
    cam, site = camera(ZONE.format(extra=""))
    (_, event), = run(cam, site, people(3, 2))
    boxes = [t.box for t in people(3, 2)[0]]
    assert event.box.x1 == min(b.x1 for b in boxes) and event.box.x2 == max(b.x2 for b in boxes)
    assert event.start_ts == pytest.approx(T0)


@pytest.mark.parametrize(
    ("xs", "radius", "sizes"),
    [
        ([0.1, 0.15, 0.2], 1.0, [3]),
        ([0.1, 0.15, 0.5], 1.0, [2, 1]),
        ([0.1, 0.3, 0.5], 1.0, [1, 1, 1]),
        ([0.1, 0.3, 0.5], 2.0, [3]),  # chained: each within reach of the next
    ],
)
def test_group_sizes(xs: list[float], radius: float, sizes: list[int]) -> None:
    tracks = [obj(i, x, 0.8) for i, x in enumerate(xs, 1)]  # box height 0.2 = 72 px
    points = [((t.box.x1 + t.box.x2) / 2, t.box.y2) for t in tracks]
    assert group_sizes(points, [72.0] * len(xs), 640, 360, radius) == sizes
