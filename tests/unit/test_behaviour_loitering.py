"""Loitering on synthetic tracks: dwell 10 s in the left half of the image, grace 3 s,
5 frames per second; occlusions, re-activation, id switches, schedule boundaries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from argus.topology import Camera, Site
from tests.unit.test_behaviour_support import (
    T0,
    Script,
    camera,
    empty,
    moving,
    run,
    still,
    together,
)

ZONE = """    zones:
      - id: bench
        site_zone: z
        polygon: [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]
        behaviours:
          loitering: {{dwell_s: 10, grace_s: 3{extra}}}
"""


def cam_with(extra: str = "", site_extra: str = "") -> tuple[Camera, Site]:
    return camera(ZONE.format(extra=extra), site_extra)


P = (0.3, 0.6)  # where the person stands
OUT = (0.8, 0.6)  # outside the zone


@pytest.mark.parametrize(
    ("script", "extra", "expected"),
    [
        pytest.param(still(1, *P, 12), "", [(50, [1], 10.0)], id="stays 12 s"),
        pytest.param(still(1, *P, 9.8), "", [], id="stays 9.8 s"),
        pytest.param(still(1, *P, 60), "", [(50, [1], 10.0)], id="stays 60 s: one event"),
        pytest.param(moving(1, (0.0, 0.6), (1.0, 0.6), 30), "", [], id="walks through"),
        pytest.param(still(1, *P, 6) + still(1, *P, 2, state="lost") + still(1, *P, 4), "",
                     [(50, [1], 10.0)], id="occluded 2 s (lost): keeps its dwell"),
        pytest.param(still(1, *P, 6) + empty(2) + still(1, *P, 4), "",
                     [(50, [1], 10.0)], id="re-activated after 2 s: keeps its dwell"),
        pytest.param(still(1, *P, 6) + empty(4) + still(1, *P, 8), "", [],
                     id="gone 4 s (over grace): a new visit"),
        pytest.param(still(1, *P, 6) + still(1, *OUT, 2) + still(1, *P, 4), "",
                     [(50, [1], 10.0)], id="steps out 2 s and back"),
        pytest.param(still(1, *P, 6) + still(2, *P, 6), "", [(50, [1, 2], 10.0)],
                     id="id switch in place: the visit continues"),
        pytest.param(still(1, *P, 6) + empty(1) + still(2, 0.32, 0.6, 6), "",
                     [(50, [1, 2], 10.0)], id="id switch after 1 s, nearby"),
        pytest.param(still(1, *P, 6) + still(2, 0.05, 0.6, 6), "", [],
                     id="new id far away: a new visit"),
        pytest.param(still(1, *P, 6) + still(2, *P, 6), ", handover: 0", [],
                     id="handover off"),
        pytest.param(still(1, 0.015, 0.6, 6) + still(2, 0.015, 0.6, 6), "", [],
                     id="vanished at the image border (left the view): no handover"),
        pytest.param(together(still(1, *P, 12), still(2, 0.1, 0.9, 12)), "",
                     [(50, [1], 10.0), (50, [2], 10.0)], id="two people, two events"),
        pytest.param(together(still(1, *P, 12), still(2, *OUT, 12)), "", [(50, [1], 10.0)],
                     id="the one outside does not count"),
        pytest.param(still(1, *P, 12, cls="dog"), "", [], id="not a watched class"),
        pytest.param(still(1, *P, 12, cls="dog"), ", classes: [dog]", [(50, [1], 10.0)],
                     id="classes configured"),
    ],
)
def test_loitering(script: Script, extra: str, expected: list[tuple[int, list[int], float]]
                   ) -> None:
    cam, site = cam_with(extra)
    events = run(cam, site, script)
    assert [(i, e.track_ids, e.attributes["dwell_s"]) for i, e in events] == expected
    for i, event in events:
        assert (event.kind, event.zone_id, event.site_zone_id) == ("loitering", "bench", "z")
        assert event.start_ts == pytest.approx(T0)
        assert event.end_ts == event.ts == pytest.approx(T0 + i / 5)
        assert event.event_id == f"cam:bench:loitering:{'+'.join(map(str, event.track_ids))}:0"
        assert event.score == pytest.approx(0.9)


def at(hour: int, minute: int, second: int = 0) -> float:
    return datetime(2026, 1, 1, hour, minute, second, tzinfo=UTC).timestamp()


NIGHT = ", schedule: {hours: [{from: '22:00', to: '06:00'}]}"


@pytest.mark.parametrize(
    ("start", "seconds", "extra", "fires_at"),
    [
        pytest.param(at(21, 59, 55), 12, NIGHT, at(22, 0, 5), id="due inside the window"),
        pytest.param(at(21, 59, 40), 25, NIGHT, at(22, 0, 0),
                     id="due before it: fires when it opens"),
        pytest.param(at(5, 59, 55), 20, NIGHT, None, id="due after it closes"),
        pytest.param(at(5, 59, 40), 20, NIGHT, at(5, 59, 50), id="due just before it closes"),
        pytest.param(at(12, 0), 20, NIGHT, None, id="midday"),
        pytest.param(at(23, 0), 20, ", schedule: {site: closed}", at(23, 0, 10),
                     id="site closed at 23:00 London"),
        pytest.param(at(12, 0), 20, ", schedule: {site: closed}", None, id="site open"),
        pytest.param(at(12, 0), 20, ", schedule: {site: open}", at(12, 0, 10), id="open"),
    ],
)
def test_schedule_boundaries(start: float, seconds: float, extra: str, fires_at: float | None
                             ) -> None:
    hours = "    timezone: Europe/London\n    opening_hours: [{open: '06:00', close: '22:00'}]\n"
    cam, site = cam_with(extra, hours)
    events = run(cam, site, still(1, *P, seconds), t0=start)
    assert [e.ts for _, e in events] == ([pytest.approx(fires_at)] if fires_at else [])
