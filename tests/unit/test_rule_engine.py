"""Rule-engine semantics as tables: events in order (with times) → alert changes expected.

This module also holds the small topology, event factories and runner the other
``test_rule_engine_*`` modules import.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from argus.schedule import TimeWindow
from argus.topology import Topology
from pipelines.stages.correlate.rules import (
    AlertChange,
    RuleEngine,
    alert_id,
    parse_rules,
    site_contexts,
)
from schemas.alerts import MAX_EVIDENCE
from schemas.detections import Box
from schemas.events import VideoEvent, VideoKind
from schemas.sensors import SensorEvent

TZ = "Europe/Amsterdam"
TOPOLOGY = Topology.model_validate({
    "sites": [
        {"id": "s1", "name": "Depot", "lat": 52.0, "lon": 4.0,
         "zones": [{"id": "lobby", "name": "Lobby"}, {"id": "yard"}, {"id": "door"}]},
        {"id": "s2", "lat": 48.0, "lon": 2.0, "zones": [{"id": "lobby"}]},
    ],
    "cameras": [{"id": "c1", "site": "s1", "source": "x.mp4", "zones": [
        {"id": "floor", "site_zone": "lobby", "polygon": [[0, 0], [1, 0], [1, 1]]},
        {"id": "gate", "site_zone": "door", "polygon": [[0, 0], [1, 0], [1, 1]]},
        {"id": "yardcam", "site_zone": "yard", "polygon": [[0, 0], [1, 0], [1, 1]]},
        {"id": "sky", "polygon": [[0, 0], [1, 0], [1, 1]]}]}],
    "sensors": [
        {"id": "pir", "site": "s1", "zone": "lobby", "type": "intrusion"},
        {"id": "pir-yard", "site": "s1", "zone": "yard", "type": "intrusion"},
        {"id": "door", "site": "s1", "zone": "door", "type": "door"},
        {"id": "badge", "site": "s1", "zone": "door", "type": "access"},
        {"id": "badge-lobby", "site": "s1", "zone": "lobby", "type": "access"},
        {"id": "smoke", "site": "s1", "zone": "lobby", "type": "smoke"},
        {"id": "temp", "site": "s1", "zone": "lobby", "type": "temperature"},
        {"id": "temp2", "site": "s1", "zone": "yard", "type": "temperature"},
        {"id": "glass", "site": "s1", "zone": "yard", "type": "glass_break"},
        {"id": "pir-s2", "site": "s2", "zone": "lobby", "type": "intrusion"},
    ],
})
CAMERA_ZONES = {"lobby": "floor", "door": "gate", "yard": "yardcam", None: "sky"}
CONTEXTS = site_contexts(TOPOLOGY)
CONTEXTS["s1"] = replace(
    CONTEXTS["s1"], timezone=TZ,
    opening_hours=(TimeWindow.model_validate({"from": "08:00", "to": "18:00",
                                              "days": ["mon", "tue", "wed", "thu", "fri"]}),),
    positions={"zone:lobby": (52.0, 4.0), "zone:yard": (52.0, 4.0005),
               "zone:door": (52.0, 4.01)})
T = 1_795_000_000.0
"""Wednesday 2026-11-18 12:06:40 in Amsterdam (open hours); tests count seconds from here."""

Step = SensorEvent | VideoEvent | tuple[str, float]


def at(local: str) -> float:
    """Unix time of an Amsterdam wall-clock time, e.g. ``at("2026-11-23 19:00")``."""
    return datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(TZ)).timestamp()


def _ts(t: float) -> float:
    return t if t > 1e9 else T + t


def s(t: float, sensor: str, state: str | None = None, value: float | None = None
      ) -> SensorEvent:
    """A sensor event ``t`` s after ``T`` (or at ``t``, a Unix time)."""
    found = TOPOLOGY.sensor(sensor)
    assert found is not None
    ts = _ts(t)
    return SensorEvent(event_id=f"{sensor}:{ts:.3f}:{state}:{value}", sensor_id=sensor,
                       site_id=found.site, zone_id=found.zone, type=found.type, state=state,
                       value=value, ts=ts)


def v(t: float, kind: VideoKind = "zone_intrusion", zone: str | None = "lobby",
      count: int = 1, cls: str = "person", **attrs: str | float) -> VideoEvent:
    """A video event of camera c1, in the camera zone mapped to site zone ``zone``."""
    ts = _ts(t)
    seq = int(ts * 10) % 10_000_000
    return VideoEvent(event_id=f"c1:{CAMERA_ZONES[zone]}:{kind}:{seq}:{sorted(attrs.items())}",
                      kind=kind, camera_id="c1", site_id="s1", zone_id=CAMERA_ZONES[zone],
                      site_zone_id=zone, ts=ts, seq=seq, class_name=cls, score=0.9,
                      box=Box(x1=0.1, y1=0.1, x2=0.2, y2=0.5), count=count, attributes=attrs)


def tick(t: float) -> tuple[str, float]:
    return ("tick", _ts(t))


def engine_for(rules_yaml: str, rule_id: str | None = None) -> RuleEngine:
    rules = parse_rules(rules_yaml, "test.yaml", TOPOLOGY).rules
    chosen = [r for r in rules if rule_id is None or r.id == rule_id]
    assert chosen, rule_id
    return RuleEngine(chosen, TOPOLOGY, CONTEXTS)


def play(engine: RuleEngine, steps: list[Step], state: dict[str, Any] | None = None,
         round_trip: bool = False) -> list[AlertChange]:
    """Feed the steps in order (``now`` = event time); ``round_trip`` passes the state
    through JSON after every step, as the Faust changelog would."""
    state = {} if state is None else state
    changes: list[AlertChange] = []
    for step in steps:
        if isinstance(step, tuple):
            changes += engine.tick(state, step[1], "s1")
        else:
            changes += engine.observe(state, step, step.ts)
        if round_trip:
            restored = json.loads(json.dumps(state))
            state.clear()
            state.update(restored)
    return changes


def summary(changes: list[AlertChange]) -> list[str]:
    """``"opened lobby x1 high"`` per change."""
    return [f"{c.change.value} {c.alert.zone_id} x{c.alert.count} {c.alert.severity.value}"
            for c in changes]


RULES = """
rules:
  - id: pair
    title: "Confirmed intrusion: {zone_name} ({site_name}) by {sensor[sensor]}"
    severity: high
    events:
      - {as: sensor, type: intrusion, state: [active]}
      - {as: person, kind: zone_intrusion, class: person}
    window_s: 30
    anchor: sensor
    cooldown_s: 60
    escalate: [{repeats: 3, severity: critical}]
  - id: seq
    title: "Door then person in {zone_name}"
    severity: medium
    events:
      - {as: door, type: door, state: [open]}
      - {as: person, kind: zone_intrusion}
    match: sequence
    window_s: 20
  - id: tailgate
    title: "Tailgating: {people[count]} people"
    severity: medium
    events:
      - {as: badge, type: access, state: [granted]}
      - {as: people, kind: [zone_intrusion, line_crossing], class: person, count: {gte: 2}}
    match: sequence
    window_s: 15
    absent: [{type: access, state: [granted], of: people, before_s: 15}]
"""

OPENED_PAIR = "opened lobby x1 high"


@pytest.mark.parametrize(
    ("rule", "steps", "expected"),
    [
        # window, either order
        ("pair", [s(0, "pir", "active"), v(10)], [OPENED_PAIR]),
        ("pair", [v(0), s(10, "pir", "active")], [OPENED_PAIR]),
        ("pair", [s(0, "pir", "active"), v(30)], [OPENED_PAIR]),
        ("pair", [s(0, "pir", "active"), v(31)], []),
        ("pair", [v(31), s(0, "pir", "active")], []),
        # place, state, class, mapping
        ("pair", [s(0, "pir-yard", "active"), v(5)], []),
        ("pair", [s(0, "pir", "inactive"), v(5)], []),
        ("pair", [s(0, "pir", "active"), v(5, cls="car")], []),
        ("pair", [s(0, "pir", "active"), v(5, zone=None)], []),
        ("pair", [s(0, "pir", "active"), v(5, kind="loitering")], []),
        # repeats within the cool-down update, and escalate at the 3rd
        ("pair", [s(0, "pir", "active"), v(1), v(2), v(3)],
         [OPENED_PAIR, "updated lobby x2 high", "escalated lobby x3 critical"]),
        ("pair", [s(0, "pir", "active"), v(5), s(40, "pir", "active"), v(45)],
         [OPENED_PAIR, "updated lobby x2 high"]),
        # past the cool-down (60 s after the last trigger): a new alert
        ("pair", [s(0, "pir", "active"), v(5), s(100, "pir", "active"), v(105)],
         [OPENED_PAIR, OPENED_PAIR]),
        # sequence: in order only, within the window, out-of-order delivery allowed
        ("seq", [s(0, "door", "open"), v(10, zone="door")], ["opened door x1 medium"]),
        ("seq", [v(0, zone="door"), s(10, "door", "open")], []),
        ("seq", [s(0, "door", "open"), v(21, zone="door")], []),
        ("seq", [v(12, zone="door"), s(2, "door", "open")], ["opened door x1 medium"]),
        # tailgating: one badge then two people; a second badge explains the second person
        ("tailgate", [s(0, "badge", "granted"), v(5, zone="door", count=2)],
         ["opened door x1 medium"]),
        ("tailgate", [s(0, "badge", "granted"), v(5, zone="door", count=1)], []),
        ("tailgate", [s(0, "badge", "granted"), s(3, "badge", "granted"),
                      v(5, zone="door", count=2)], []),
        ("tailgate", [s(0, "badge", "denied"), v(5, zone="door", count=2)], []),
    ],
)
def test_windows_sequence_cooldown_escalation(rule: str, steps: list[Step], expected: list[str]
                                              ) -> None:
    assert summary(play(engine_for(RULES, rule), steps)) == expected


def test_alert_content_and_deterministic_id() -> None:
    steps: list[Step] = [v(0), s(10, "pir", "active"), v(12)]
    first = play(engine_for(RULES, "pair"), steps)
    again = play(engine_for(RULES, "pair"), steps)
    assert [c.alert.alert_id for c in first] == [c.alert.alert_id for c in again]
    opened, updated = first
    sensor_event = steps[1]
    assert isinstance(sensor_event, SensorEvent)
    assert opened.alert.alert_id == alert_id("pair", "s1", "lobby", sensor_event.event_id)
    assert updated.alert.alert_id == opened.alert.alert_id
    alert = updated.alert
    assert alert.title == "Confirmed intrusion: Lobby (Depot) by pir"
    assert (alert.site_id, alert.zone_id, alert.camera_id) == ("s1", "lobby", "c1")
    assert (alert.lat, alert.lon) == (52.0, 4.0)
    assert (alert.first_seen, alert.last_seen) == (T, T + 12)
    assert (alert.count, alert.version) == (2, 2)
    assert [e.source for e in alert.evidence] == ["sensor", "video", "video"]
    assert alert.evidence[1].snapshot_ref == f"frames.raw/c1/{int(T * 10) % 10_000_000}"
    assert opened.alert.created_at == T + 10  # ``now`` when it opened


@pytest.mark.parametrize(("evidence", "kept"), [
    ("", list(range(1, 31))),  # the default cap (MAX_EVIDENCE) holds them all
    ("evidence: {max: 20}", list(range(12, 31))),
    ("evidence: {max: 5}", [27, 28, 29, 30]),
    ("evidence: {max: 2}", [30]),
    ("evidence: {max: 1}", []),
])
def test_evidence_keeps_the_trigger_and_the_newest(evidence: str, kept: list[int]) -> None:
    """30 people seen within the cool-down of one sensor trigger: the alert keeps the
    trigger and the newest video events, the last one included (one cap for the engine
    and the store: ``cap_evidence``)."""
    rules = RULES.replace("    escalate: [{repeats: 3, severity: critical}]\n",
                          f"    {evidence}\n" if evidence else "")
    sensor = s(0, "pir", "active")
    videos = [v(i) for i in range(1, 31)]
    changes = play(engine_for(rules, "pair"), [sensor, *videos], round_trip=True)
    assert [c.alert.count for c in changes] == list(range(1, 31))
    ids = [e.event_id for e in changes[-1].alert.evidence]
    assert ids == [sensor.event_id, *(videos[i - 1].event_id for i in kept)]
    assert len(set(ids)) == len(ids)


def test_evidence_cap_defaults_to_the_store_cap() -> None:
    [rule] = parse_rules(RULES, "test.yaml", TOPOLOGY).rules[:1]
    assert rule.evidence.max == MAX_EVIDENCE


def test_redelivered_event_changes_nothing() -> None:
    engine = engine_for(RULES, "pair")
    state: dict[str, Any] = {}
    sensor = s(0, "pir", "active")
    assert summary(play(engine, [sensor, v(5)], state)) == [OPENED_PAIR]
    before = json.dumps(state, sort_keys=True)
    assert play(engine, [sensor, v(5)], state) == []
    assert json.dumps(state, sort_keys=True) == before


def test_state_is_per_site_and_pruned() -> None:
    engine = engine_for(RULES, "pair")
    state: dict[str, Any] = {}
    play(engine, [v(i * 10.0) for i in range(200)], state)
    assert len(state["rules"]["pair"]["buf"]["person"]) <= 10  # window 30 s + slack
    assert len(state["seen"]) == 200
    assert len(json.dumps(state)) < 60_000
    with pytest.raises(ValueError, match="not in the topology"):
        engine.observe({}, s(0, "pir", "active").model_copy(update={"site_id": "s9"}), T)


def test_needs_ticks_and_already_seen() -> None:
    assert not engine_for(RULES).needs_ticks
    held = RULES + """
  - id: held
    title: held
    severity: low
    events: [{as: door, type: door, state: [open]}]
    absent: [{type: door, state: [closed], after_s: 60}]
"""
    assert engine_for(held).needs_ticks
    engine, event = engine_for(RULES, "pair"), s(0, "pir", "active")
    state: dict[str, Any] = {}
    assert not engine.already_seen(state, event)
    engine.observe(state, event, T)
    assert engine.already_seen(state, event)
