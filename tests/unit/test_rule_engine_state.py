"""Rule-engine tables about place and state: geo radius, value rise, escalation by another
event, grouping, actions, the JSON round trip of the state, and hot reload."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipelines.stages.correlate.rules import RuleEngine, parse_rules
from tests.unit.test_rule_engine import (
    CONTEXTS,
    RULES,
    TOPOLOGY,
    Step,
    engine_for,
    play,
    s,
    summary,
    v,
)

MORE = """
rules:
  - id: near
    title: "Glass break and a person nearby"
    severity: high
    events:
      - {as: glass, type: glass_break}
      - {as: person, kind: zone_intrusion}
    where: radius
    radius_m: 100
    window_s: 60
  - id: fire
    title: "Fire in {zone_name}: {smoke[value]} ppm"
    severity: high
    events:
      - as: smoke
        any_of:
          - {type: smoke, state: [alarm]}
          - {type: smoke, value: {gte: 1000}}
      - {as: heat, type: temperature, rise: {by: 2, within_s: 300}}
    window_s: 120
    anchor: smoke
    cooldown_s: 600
    escalate:
      - {with: {kind: zone_intrusion, class: person}, within_s: 120, severity: critical}
    actions:
      - {type: lights, duration_s: 60}
      - {type: webhook, url: "https://ops.example/hook", when: [opened, updated, escalated]}
  - id: face
    title: "Watchlist: {face[attrs][subject]}"
    severity: high
    events: [{as: face, kind: face_match, attrs: {watchlist: [wanted, missing]}}]
    where: site
    group_by: [face.attrs.subject]
    cooldown_s: 300
"""

HEAT: list[Step] = [s(0, "temp", value=20.0), s(60, "temp", value=20.5),
                    s(120, "temp", value=23.0)]


@pytest.mark.parametrize(
    ("rule", "steps", "expected"),
    [
        # radius: yard is ~34 m from the lobby, the door zone ~680 m
        ("near", [s(0, "glass", "active"), v(10, zone="lobby")], ["opened yard x1 high"]),
        ("near", [s(0, "glass", "active"), v(10, zone="door")], []),
        ("near", [v(0, zone="yard"), s(10, "glass", "active")], ["opened yard x1 high"]),
        # fire: smoke and a rise of >= 2 degrees within 5 minutes in the same zone
        ("fire", [*HEAT, s(125, "smoke", value=1500.0)], ["opened lobby x1 high"]),
        ("fire", [s(0, "smoke", "alarm"), *HEAT], ["opened lobby x1 high"]),
        ("fire", [*HEAT[:2], s(125, "smoke", value=1500.0)], []),
        ("fire", [*HEAT, s(125, "smoke", value=600.0)], []),
        ("fire", [s(0, "temp", value=30.0), s(60, "temp", value=20.0), s(90, "temp", value=21.0),
                  s(100, "smoke", "alarm")], []),
        ("fire", [s(0, "temp2", value=20.0), s(60, "temp2", value=25.0),
                  s(100, "smoke", "alarm")], []),
        ("fire", [s(0, "temp", value=20.0), s(400, "temp", value=23.0),
                  s(401, "smoke", "alarm")], []),
        # people in the burning zone escalate it, before or after it opens
        ("fire", [*HEAT, s(125, "smoke", value=1500.0), v(130)],
         ["opened lobby x1 high", "escalated lobby x1 critical"]),
        ("fire", [v(30), *HEAT, s(125, "smoke", value=1500.0)], ["opened lobby x1 critical"]),
        ("fire", [v(30, zone="yard"), *HEAT, s(125, "smoke", value=1500.0), v(400)],
         ["opened lobby x1 high"]),
        # one alert per watchlisted subject
        ("face", [v(0, kind="face_match", watchlist="wanted", subject="A"),
                  v(10, kind="face_match", watchlist="wanted", subject="B"),
                  v(20, kind="face_match", watchlist="wanted", subject="A"),
                  v(30, kind="face_match", watchlist="vip", subject="C")],
         ["opened lobby x1 high", "opened lobby x1 high", "updated lobby x2 high"]),
    ],
)
def test_place_rise_escalation_grouping(rule: str, steps: list[Step], expected: list[str]
                                        ) -> None:
    assert summary(play(engine_for(MORE, rule), steps)) == expected


def test_actions_and_titles() -> None:
    changes = play(engine_for(MORE, "fire"), [*HEAT, s(125, "smoke", value=1500.0), v(130),
                                              s(126, "smoke", value=1600.0)])
    assert [c.change.value for c in changes] == ["opened", "escalated", "updated"]
    assert changes[0].alert.title == "Fire in Lobby: 1500.0 ppm"
    assert [(a.type, getattr(a, "zone", None)) for a in changes[0].actions] == [
        ("lights", "lobby"), ("webhook", None)]
    assert [a.type for a in changes[1].actions] == ["lights", "webhook"]
    assert [a.type for a in changes[2].actions] == ["webhook"]
    assert [e.source for e in changes[1].alert.evidence] == ["sensor", "sensor", "video"]
    assert changes[2].alert.version == 3
    face = play(engine_for(MORE, "face"), [v(0, kind="face_match", watchlist="missing",
                                              subject="Jane")])
    assert face[0].alert.title == "Watchlist: Jane"


ALL_STEPS: list[Step] = [
    *HEAT, s(125, "smoke", value=1500.0), v(130), s(140, "pir", "active"), v(150),
    s(160, "door", "open"), v(165, zone="door", count=2), s(170, "badge", "granted"),
    v(175, zone="door", count=3), v(200, kind="face_match", watchlist="wanted", subject="A"),
    s(900, "pir", "active"), v(905), v(906), v(907),
]


def test_state_json_round_trip_changes_nothing() -> None:
    rules = parse_rules(RULES, "a.yaml", TOPOLOGY).rules + parse_rules(MORE, "b.yaml",
                                                                      TOPOLOGY).rules
    direct = play(RuleEngine(rules, TOPOLOGY, CONTEXTS), ALL_STEPS)
    state: dict[str, Any] = {}
    restored = play(RuleEngine(rules, TOPOLOGY, CONTEXTS), ALL_STEPS, state, round_trip=True)
    assert summary(direct) == summary(restored)
    assert len(direct) >= 8
    assert [c.alert for c in direct] == [c.alert for c in restored]
    assert json.loads(json.dumps(state)) == state


def test_hot_reload_keeps_state_of_unchanged_ids() -> None:
    engine = engine_for(RULES, "pair")
    state: dict[str, Any] = {}
    opened = play(engine, [s(0, "pir", "active"), v(5)], state)
    assert summary(opened) == ["opened lobby x1 high"]
    # same id, new window and title: the open alert and its cool-down carry over
    edited = RULES.replace("window_s: 30\n    anchor", "window_s: 40\n    anchor").replace(
        "Confirmed intrusion:", "Intrusion:")
    engine.reload(parse_rules(edited, "r.yaml", TOPOLOGY).rules[:1])
    updated = play(engine, [v(38)], state)  # 38 s after the sensor: only the new window fits
    assert summary(updated) == ["updated lobby x2 high"]
    assert updated[0].alert.alert_id == opened[0].alert.alert_id
    assert updated[0].alert.title.startswith("Intrusion: Lobby")
    # a renamed rule starts afresh; the old rule's state is dropped
    engine.reload(parse_rules(edited.replace("id: pair", "id: pair2"), "r.yaml",
                              TOPOLOGY).rules[:1])
    assert play(engine, [v(39)], state) == []  # the sensor event went with the old rule
    renamed = play(engine, [s(45, "pir", "active"), v(46)], state)
    assert summary(renamed) == ["opened lobby x1 high", "updated lobby x2 high"]
    assert renamed[0].alert.rule == "pair2"
    assert set(state["rules"]) == {"pair2"}
    # disabled rules do nothing
    engine.reload(parse_rules(edited.replace("id: pair\n", "id: pair\n    enabled: false\n"),
                              "r.yaml", TOPOLOGY).rules[:1])
    assert play(engine, [s(50, "pir", "active"), v(51)], state) == []


def test_site_wide_rules_deduplicate_across_zones() -> None:
    steps: list[Step] = [v(0, kind="face_match", watchlist="wanted", subject="A"),
                         v(10, zone="yard", kind="face_match", watchlist="wanted", subject="A")]
    assert summary(play(engine_for(MORE, "face"), steps)) == [
        "opened lobby x1 high", "updated lobby x2 high"]
    zoned = MORE.replace("where: site\n    group_by", "where: zone\n    group_by")
    assert summary(play(engine_for(zoned, "face"), steps)) == [
        "opened lobby x1 high", "opened yard x1 high"]
