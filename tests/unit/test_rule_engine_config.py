"""The rules file: the shipped rules load, errors name file, line and field, and the
shipped confirmed-intrusion rule reproduces the walking skeleton's alerts and ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from argus.settings import REPO_ROOT
from argus.topology import load_topology
from pipelines.stages.correlate.rules import RuleEngine, RuleError, load_rules, parse_rules
from pipelines.stages.correlate.rules.check import main as check_main
from tests.unit.test_rule_engine import TOPOLOGY, Step, play, s, v

SHIPPED = REPO_ROOT / "config" / "rules.yaml"
GOOD = SHIPPED.read_text()
SHIPPED_IDS = {"confirmed_intrusion", "forced_entry", "fire", "tailgating",
               "after_hours_presence", "loitering_at_night", "crowd_gathering",
               "watchlist_face", "hotlist_vehicle", "unauthorised_vehicle", "vehicle_loitering",
               "gate_unread_plate", "sensor_tamper", "sensor_offline"}


@pytest.mark.parametrize("topology", ["config/topology.yaml", "tests/topology.yaml"])
def test_shipped_rules_load_against_the_topologies(topology: str) -> None:
    topo = load_topology(REPO_ROOT / topology, Path("/data"))
    rules = load_rules(SHIPPED, topo)
    assert {r.id for r in rules.rules} >= SHIPPED_IDS
    RuleEngine(rules, topo)  # builds
    assert check_main([str(SHIPPED), "--topology", str(REPO_ROOT / topology)]) == 0


def _line(text: str, needle: str) -> int:
    """The 1-based line of the first occurrence of ``needle``."""
    return text[: text.index(needle)].count("\n") + 1


@pytest.mark.parametrize(
    ("old", "new", "at", "expected"),
    [
        ("window_s: 30", "window_s: -1", "window_s: -1",
         "rules[0].window_s: Input should be greater than or equal to 0"),
        ("type: intrusion", "type: intrusoin", "type: intrusoin",
         "rules[0].events[0].type[0]: Input should be"),
        ("severity: high", "severity: urgent", "severity: urgent", "rules[0].severity: Input"),
        ("cooldown_s: 120", "cooldown: 120", "cooldown: 120",
         "rules[0].cooldown: Extra inputs are not permitted"),
        ("class: person", "class: person\n        type: door", "- as: person",
         "rules[0].events[1]: Value error, mixes sensor fields ['type'] and video fields"),
        ('state: [active, "on", open', "state: [active, on, open", "state: [active, on",
         "rules[0].events[0].state: Value error, YAML reads on/off/yes/no"),
        ("anchor: sensor ", "anchor: nobody ", "- id: confirmed_intrusion",
         "rules[0]: Value error, anchor: unknown event alias 'nobody'"),
        ("({site_name})\"\n    severity: high", "({site_nme})\"\n    severity: high",
         "- id: confirmed_intrusion", "title: unknown name 'site_nme'"),
        ('hours: [{from: "22:00"', 'hours: [{from: "25:00"', 'from: "25:00"',
         "rules[5].schedule.hours[0].from: Value error, a clock time must be HH:MM"),
        ("- id: forced_entry", "- id: confirmed_intrusion",
         "- id: confirmed_intrusion\n    title: \"Forced",
         "rules[1].id: duplicate rule id 'confirmed_intrusion'"),
        ("      - repeats: 6 ", "      - repeats: 1 ", "repeats: 1",
         "rules[0].escalate[0].repeats: Input should be greater than or equal to 2"),
        ("evidence: {max: 30}", "evidence: {max: 101}", "evidence: {max: 101}",
         "rules[2].evidence.max: Input should be less than or equal to 100"),  # MAX_EVIDENCE
        ("rules:", "rules: [", "rules: [", "invalid YAML"),
    ],
)
def test_errors_name_file_line_and_field(old: str, new: str, at: str, expected: str) -> None:
    assert old in GOOD, old
    text = GOOD.replace(old, new, 1)
    with pytest.raises(RuleError) as info:
        parse_rules(text, "config/rules.yaml")
    message = str(info.value)
    assert expected in message
    if expected != "invalid YAML":
        assert message.startswith(f"config/rules.yaml:{_line(text, at)}: "), message


@pytest.mark.parametrize(
    ("old", "new", "at", "expected"),
    [
        ("type: intrusion\n", "type: intrusion\n        sensor: pir-9\n", "sensor: pir-9",
         "rules[0].events[0].sensor: unknown sensor 'pir-9'"),
        ("kind: zone_intrusion\n", "kind: zone_intrusion\n        camera: [c1, cam-9]\n",
         "camera: [c1", "rules[0].events[1].camera: unknown camera 'cam-9'"),
        ("        state: \"on\"\n", "        state: \"on\"\n        zone: roof\n", "zone: roof",
         "rules[0].actions[0].zone: unknown zone 'roof'"),
        ("    where: zone\n", "    where: zone\n    sites: [s1, s9]\n", "sites: [s1, s9]",
         "rules[0].sites: unknown site 's9'"),
    ],
)
def test_references_are_checked_against_the_topology(old: str, new: str, at: str,
                                                      expected: str) -> None:
    text = GOOD.replace(old, new, 1)
    with pytest.raises(RuleError) as info:
        parse_rules(text, "rules.yaml", TOPOLOGY)
    assert str(info.value) == f"rules.yaml:{_line(text, at)}: {expected}"


def test_missing_file_and_bad_top_level(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="not found"):
        load_rules(tmp_path / "nope.yaml")
    with pytest.raises(RuleError, match=":1: the rules file must be a mapping"):
        parse_rules("- a\n- b\n", "x.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - id: Bad-Id\n    title: t\n    severity: low\n"
                   "    events: [{as: x, kind: fall}]\n")
    assert check_main([str(bad), "--topology", str(REPO_ROOT / "tests" / "topology.yaml")]) == 1


CASES: dict[str, list[Step]] = {
    "sensor first": [s(0, "pir", "active"), v(10)],
    "video first": [v(0), s(10, "pir", "active")],
    "too late": [s(0, "pir", "active"), v(31)],
    "other zone": [s(0, "pir-yard", "active"), v(5)],
    "inactive": [s(0, "pir", "inactive"), v(5)],
    "door, not intrusion": [s(0, "door", "open"), v(5, zone="door")],
    "unmapped camera zone": [s(0, "pir", "active"), v(5, zone=None)],
    "one sensor, three videos": [s(0, "pir", "active"), v(1), v(2), v(3)],
}


EXPECTED: dict[str, list[str]] = {
    "sensor first": ["opened"],
    "video first": ["opened"],
    "too late": [],
    "other zone": [],
    "inactive": [],
    "door, not intrusion": [],
    "unmapped camera zone": [],
    "one sensor, three videos": ["opened", "updated", "updated"],  # one alert, updated
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_confirmed_intrusion_window_logic(case: str) -> None:
    """The shipped confirmed_intrusion rule: a PIR and a person in the mapped zone within
    30 s, in either order, make one alert; repeats update it."""
    rules = [r for r in load_rules(SHIPPED, TOPOLOGY).rules if r.id == "confirmed_intrusion"]
    new = play(RuleEngine(rules, TOPOLOGY), CASES[case])
    assert [c.change.value for c in new] == EXPECTED[case]
    assert len({c.alert.alert_id for c in new}) == (1 if new else 0)
    assert all(c.alert.title == "Confirmed intrusion: Lobby (Depot)" for c in new)
    if new:  # the opening alert's evidence: the sensor event and the person seen with it
        first_two = [step for step in CASES[case][:2] if not isinstance(step, tuple)]
        assert {e.event_id for e in new[0].alert.evidence} == {
            step.event_id for step in first_two}


def test_two_sensors_one_video_make_one_alert() -> None:
    """The walking skeleton made one alert per sensor event; the engine makes one, anchored
    on the sensor event closest in time to the video."""
    rules = [r for r in load_rules(SHIPPED, TOPOLOGY).rules if r.id == "confirmed_intrusion"]
    second, video = s(5, "pir", "active"), v(6)
    new = play(RuleEngine(rules, TOPOLOGY), [s(0, "pir", "active"), second, video])
    assert [c.change.value for c in new] == ["opened"]
    assert [e.event_id for e in new[0].alert.evidence] == [second.event_id, video.event_id]


@pytest.mark.parametrize(("why", "title"), [
    ("bicycle #5: class seen in 0 of 41 normal objects",
     "Unusual activity on c1 (Depot): bicycle #5: class seen in 0 of 41 normal objects"),
    (None, "Unusual activity on c1 (Depot): ?"),  # an event from before events had a why
])
def test_scene_anomaly_title_says_why(why: str | None, title: str) -> None:
    rules = [r for r in load_rules(SHIPPED, TOPOLOGY).rules if r.id == "scene_anomaly"]
    event = v(0, "anomaly", cls="bicycle") if why is None else v(0, "anomaly", cls="bicycle",
                                                                   why=why)
    new = play(RuleEngine(rules, TOPOLOGY), [event])
    assert [c.alert.title for c in new] == [title]
