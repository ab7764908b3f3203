"""Two generic event options of the rule engine, as tables: ``of`` with ``before_s`` /
``after_s`` (an event within an asymmetric span of another) and ``times`` with ``apart_s``
(an event N times within the window, per place and ``group_by`` values), their validation,
and the pure picking behind ``times`` (``rules/repeats.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.stages.correlate.rules import RuleError, parse_rules
from pipelines.stages.correlate.rules.repeats import repeated
from schemas.events import VideoEvent
from tests.unit.test_rule_engine import TOPOLOGY, Step, engine_for, play, s, summary, v

RELATIVE = """
rules:
  - id: badge_then_person
    title: "Person after badge: {zone_name}"
    severity: low
    events:
      - {as: badge, type: access, state: [granted]}
      - {as: person, kind: zone_intrusion, class: person, of: badge, before_s: 10, after_s: 20}
    window_s: 30
"""


@pytest.mark.parametrize(("steps", "expected"), [
    ([s(0, "badge", "granted"), v(5, zone="door")], ["opened door x1 low"]),
    ([s(0, "badge", "granted"), v(20, zone="door")], ["opened door x1 low"]),     # edge
    ([s(0, "badge", "granted"), v(21, zone="door")], []),                         # too late
    ([v(0, zone="door"), s(10, "badge", "granted")], ["opened door x1 low"]),     # edge
    ([v(0, zone="door"), s(11, "badge", "granted")], []),                         # too early
    ([v(0, zone="door"), s(25, "badge", "granted")], []),   # within window_s, not before_s
    ([s(0, "badge", "granted"), v(25, zone="door"), v(15, zone="door")],          # late event
     ["opened door x1 low"]),
    ([s(0, "badge", "granted"), v(5, zone="lobby")], []),                         # other zone
])
def test_of_before_after(steps: list[Step], expected: list[str]) -> None:
    assert summary(play(engine_for(RELATIVE), steps)) == expected


TIMES = """
rules:
  - id: three_runs
    title: "Running again: {run[attrs][who]} ({count})"
    severity: medium
    events:
      - {as: run, kind: running, times: 3, apart_s: 60}
    window_s: 600
    where: site
    group_by: [run.attrs.who]
    cooldown_s: 600
    evidence: {events: [run]}
"""


def run(t: float, who: str = "a", zone: str = "lobby") -> VideoEvent:
    return v(t, "running", zone=zone, who=who)


@pytest.mark.parametrize(("steps", "expected"), [
    ([run(0), run(100), run(200)], ["opened lobby x1 medium"]),
    ([run(0), run(100)], []),                                              # twice only
    ([run(0), run(300), run(601)], []),                                    # over window_s
    ([run(0), run(300), run(600)], ["opened lobby x1 medium"]),                # window_s edge
    ([run(0), run(30), run(50), run(70)], []),                             # not 60 s apart
    ([run(0), run(30), run(90), run(150)], ["opened lobby x1 medium"]),        # 0, 90, 150
    ([run(0), run(100), run(200), run(300)], ["opened lobby x1 medium", "updated lobby x2 medium"]),
    ([run(0, "a"), run(100, "b"), run(200, "a")], []),                     # group_by
    ([run(0, zone="lobby"), run(100, zone="yard"), run(200, zone="door")],  # where: site
     ["opened door x1 medium"]),
    ([run(400), run(0), run(200)], ["opened lobby x1 medium"]),                # out of order
])
def test_times_apart(steps: list[Step], expected: list[str]) -> None:
    changes = play(engine_for(TIMES), steps, round_trip=True)
    assert summary(changes) == expected  # the alert's zone: the completing event's


def test_times_keeps_every_event_as_evidence_and_is_idempotent() -> None:
    engine = engine_for(TIMES)
    first, second, third = run(0), run(100), run(200)
    state: dict[str, Any] = {}
    changes = play(engine, [first, second, third], state)
    [opened] = changes
    assert [e.event_id for e in opened.alert.evidence] == [
        first.event_id, second.event_id, third.event_id]
    assert opened.alert.title == "Running again: a (1)"
    assert play(engine, [third], state) == []  # redelivered: nothing


def test_times_counts_a_redelivery_once_even_when_no_longer_remembered() -> None:
    engine = engine_for(TIMES.replace("apart_s: 60", "apart_s: 0"))
    state: dict[str, Any] = {}
    assert play(engine, [run(0)], state) == []
    state["seen"] = []  # forgotten (the engine remembers the last 200 ids)
    assert play(engine, [run(0), run(100)], state) == []  # two events, not three
    assert summary(play(engine, [run(200)], state)) == ["opened lobby x1 medium"]


BASE = """
rules:
  - id: r
    title: t
    severity: low
    events:
      - {as: a, type: access}
      - {as: b, kind: running%s}
    window_s: 30
"""


@pytest.mark.parametrize(("extra", "expected"), [
    (", of: a, before_s: 40", "before_s/after_s 40 exceed window_s 30"),
    (", of: zz, after_s: 5", "events.of: unknown event alias 'zz'"),
    (", of: b, after_s: 5", "of: 'b' is this event itself"),
    (", before_s: 5", "of goes with before_s and/or after_s"),
    (", of: a", "of goes with before_s and/or after_s"),
    (", times: 2", "times goes in a rule of one event"),
    (", apart_s: 5", "apart_s goes with times >= 2"),
])
def test_relative_and_times_errors(extra: str, expected: str) -> None:
    with pytest.raises(RuleError, match=expected):
        parse_rules(BASE % extra, "x.yaml", TOPOLOGY)


def test_times_that_cannot_fit_is_an_error() -> None:
    text = TIMES.replace("apart_s: 60", "apart_s: 400")
    with pytest.raises(RuleError, match="3 times 400 s apart cannot fit in window_s 600"):
        parse_rules(text, "x.yaml", TOPOLOGY)


def ev(ts: float, i: str | None = None) -> dict[str, Any]:
    return {"id": i or f"e{ts:g}", "ts": float(ts)}


@pytest.mark.parametrize(("new", "others", "times", "apart", "window", "expected"), [
    (100, [0, 50], 3, 0, 100, [0, 50, 100]),
    (100, [0, 50], 3, 0, 99, None),
    (100, [0, 50, 60, 70], 3, 0, 100, [60, 70, 100]),        # the nearest past ones
    (100, [0, 50, 60, 70], 3, 20, 100, [50, 70, 100]),       # 20 s apart
    (100, [0, 50, 60, 70], 3, 40, 100, [0, 60, 100]),
    (100, [0, 50, 60, 70], 4, 40, 100, None),
    (50, [0, 100], 3, 0, 100, [0, 50, 100]),                 # a late event in the middle
    (0, [50, 100], 3, 50, 100, [0, 50, 100]),                # the earliest, late
    (100, [100], 2, 0, 10, [100, 100]),                      # the same time counts
    (100, [100], 2, 1, 10, None),
    (100, [], 1, 0, 10, [100]),
])
def test_repeated(new: float, others: list[float], times: int, apart: float, window: float,
                  expected: list[float] | None) -> None:
    found = repeated(ev(new, "new"), [ev(t) for t in others], times, apart, window)
    assert (None if found is None else [e["ts"] for e in found]) == expected
    if found is not None:
        assert sum(e["id"] == "new" for e in found) == 1
