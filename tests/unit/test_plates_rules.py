"""Plate events in the correlation engine, as tables: ``events.plate`` → ``plate_seen`` (and
``plate_match`` per hotlist hit) with the site's allow lists and the vehicle's zone from the
topology; the shipped rules ``hotlist_vehicle``, ``unauthorised_vehicle``,
``vehicle_loitering`` and (opt-in) ``gate_unread_plate``."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from argus.plates.events import PlatePlace, plate_place, plate_to_video_events
from argus.settings import REPO_ROOT
from argus.topology import Topology
from pipelines.stages.correlate.rules import AlertChange, RuleEngine, parse_rules, site_contexts
from pipelines.stages.correlate.writer import parse_events
from schemas.detections import Box
from schemas.events import VideoEvent
from schemas.plates import PlateEvent, PlateHit
from schemas.sensors import SensorEvent
from tests.unit.test_rule_engine import T

BOX = Box(x1=0.1, y1=0.3, x2=0.3, y2=0.6)      # foot point (0.2, 0.6): in the lane
ROADSIDE = Box(x1=0.6, y1=0.1, x2=0.8, y2=0.3)  # foot point (0.7, 0.3): above the lane

# Site s1: a gate zone with a barrier, a badge reader and an ANPR camera whose lane is mapped
# to it, a yard with a camera of its own, allow lists staff and visitors. Site s2: a gate,
# no allow lists (it checks no plates).
TOPOLOGY = Topology.model_validate({
    "sites": [
        {"id": "s1", "name": "Depot", "lat": 52.0, "lon": 4.0,
         "zones": [{"id": "gate", "name": "Main gate"}, {"id": "yard", "name": "Yard"}],
         "plates": {"allow_lists": ["staff", "visitors"]}},
        {"id": "s2", "name": "Annex", "lat": 52.1, "lon": 4.1, "zones": [{"id": "gate"}]},
    ],
    "cameras": [
        {"id": "anpr", "site": "s1", "source": "0", "plates": {}, "zones": [
            {"id": "walkway", "site_zone": "yard", "classes": ["person"],
             "polygon": [[0, 0.5], [0.5, 0.5], [0.5, 1], [0, 1]]},
            {"id": "lane", "site_zone": "gate", "classes": ["car", "truck"],
             "polygon": [[0, 0.4], [1, 0.4], [1, 1], [0, 1]]}]},
        {"id": "yardcam", "site": "s1", "source": "0", "plates": {}, "zones": [
            {"id": "bay", "site_zone": "yard", "classes": ["car"],
             "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}]},
        {"id": "bare", "site": "s1", "source": "0", "plates": {}},
        {"id": "anpr2", "site": "s2", "source": "0", "plates": {}, "zones": [
            {"id": "lane", "site_zone": "gate", "classes": ["car"],
             "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}]},
    ],
    "sensors": [
        {"id": "barrier", "site": "s1", "zone": "gate", "type": "gate"},
        {"id": "reader", "site": "s1", "zone": "gate", "type": "access"},
        {"id": "shed", "site": "s1", "zone": "yard", "type": "gate"},
        {"id": "barrier2", "site": "s2", "zone": "gate", "type": "gate"},
    ],
})


def plate(t: float, text: str, *hits: tuple[str, str], camera: str = "anpr", track: int = 0,
          site: str = "s1", box: Box = BOX, vehicle: str = "car") -> PlateEvent:
    """A plate read ``t`` s after ``T`` (track: default one per time)."""
    track = track or int(t) + 1000
    return PlateEvent(
        event_id=f"plate-{camera}-{track}-{text}", camera_id=camera, site_id=site, ts=T + t,
        seq=int(t) + 1000, track_id=track, text=text, format_id="us", confidence=0.9,
        confidences=[0.9] * len(text), reads=3, fixes=0, vehicle_class=vehicle,
        colour="red", speed=0.05, vehicle_box=box, plate_box=box,
        snapshot_ref=f"frames.raw/{camera}/{int(t) + 1000}",
        hits=[PlateHit.model_validate({"list_id": list_id, "list_kind": kind,
                                       "entry_id": f"e-{list_id}", "distance": 0})
              for list_id, kind in hits])


def sensor(t: float, sensor_id: str, state: str) -> SensorEvent:
    found = TOPOLOGY.sensor(sensor_id)
    assert found is not None
    return SensorEvent(event_id=f"{sensor_id}:{T + t:.3f}:{state}", sensor_id=sensor_id,
                       site_id=found.site, zone_id=found.zone, type=found.type, state=state,
                       ts=T + t)


# --- conversion ------------------------------------------------------------------------


@pytest.mark.parametrize(("event", "expected"), [
    (plate(0, "AB12CDE"), (["staff", "visitors"], "lane", "gate")),
    # in the walkway and the lane: the zone watching cars wins
    (plate(0, "AB12CDE", box=Box(x1=0.1, y1=0.5, x2=0.3, y2=0.9)),
     (["staff", "visitors"], "lane", "gate")),
    # a bus: no zone watches it, the first containing it
    (plate(0, "AB12CDE", box=Box(x1=0.1, y1=0.5, x2=0.3, y2=0.9), vehicle="bus"),
     (["staff", "visitors"], "walkway", "yard")),
    (plate(0, "AB12CDE", box=ROADSIDE), (["staff", "visitors"], "_frame", None)),
    (plate(0, "AB12CDE", camera="bare"), (["staff", "visitors"], "_frame", None)),
    (plate(0, "AB12CDE", camera="nope"), (["staff", "visitors"], "_frame", None)),
    (plate(0, "AB12CDE", camera="anpr2", site="s2"), ([], "lane", "gate")),
    (plate(0, "AB12CDE", camera="anpr", site="s2"), ([], "_frame", None)),  # not its site
    (plate(0, "AB12CDE", site="s9"), ([], "_frame", None)),
])
def test_plate_place(event: PlateEvent, expected: tuple[list[str], str, str | None]) -> None:
    place = plate_place(TOPOLOGY, event)
    assert (sorted(place.allow_lists), place.zone_id, place.site_zone_id) == expected


STAFF_SITE = PlatePlace(allow_lists=frozenset({"staff", "visitors"}))


@pytest.mark.parametrize(("hits", "place", "expected"), [
    ((), STAFF_SITE, (["plate_seen"], False, None, 2, False)),
    ((("staff", "allow"),), STAFF_SITE, (["plate_seen"], True, "staff", 2, False)),
    ((("visitors", "allow"), ("staff", "allow")), STAFF_SITE,
     (["plate_seen"], True, "staff", 2, False)),
    ((("contractors", "allow"),), STAFF_SITE, (["plate_seen"], False, None, 2, False)),
    ((("stolen", "hotlist"),), STAFF_SITE, (["plate_seen", "plate_match"], False, None, 2, True)),
    ((("stolen", "hotlist"), ("wanted", "hotlist"), ("staff", "allow")), STAFF_SITE,
     (["plate_seen", "plate_match", "plate_match"], True, "staff", 2, True)),
    ((("staff", "allow"),), None, (["plate_seen"], False, None, 0, False)),
])
def test_plate_to_video_events(hits: tuple[tuple[str, str], ...], place: PlatePlace | None,
                               expected: tuple[Any, ...]) -> None:
    event = plate(0, "AB12CDE", *hits)
    events = plate_to_video_events(event, place)
    seen = events[0].attributes
    assert ([e.kind for e in events], seen["allowed"], seen.get("allow_list"),
            seen["allow_lists"], seen["hotlisted"]) == expected
    assert events[0].event_id == event.event_id
    assert [e.event_id for e in events[1:]] == [
        f"{event.event_id}:{h[0]}" for h in hits if h[1] == "hotlist"]
    for e in events:
        assert (e.camera_id, e.class_name, e.track_ids, e.snapshot_ref, e.score) == (
            "anpr", "car", [event.track_id], event.snapshot_ref, 0.9)
        assert e.attributes["plate"] == "AB12CDE" and e.attributes["colour"] == "red"


def test_a_still_read_whole_is_placed_by_its_plate() -> None:
    """No vehicle box (the whole image): the plate's foot point picks the zone, and the video
    events name no track."""
    whole = plate(0, "AB12CDE").model_copy(update={
        "track_id": 0, "vehicle_class": "unknown",
        "vehicle_box": Box(x1=0.0, y1=0.0, x2=1.0, y2=1.0), "plate_box": ROADSIDE})
    assert plate_place(TOPOLOGY, whole).zone_id == "_frame"  # not the image's foot (lane)
    inside = whole.model_copy(update={"plate_box": BOX})
    assert plate_place(TOPOLOGY, inside).zone_id == "lane"
    [seen] = plate_to_video_events(inside, STAFF_SITE)
    assert seen.track_ids == [] and seen.attributes["track_id"] == 0
    assert seen.class_name == "unknown"


def test_parse_events_places_plates_with_the_topology() -> None:
    value = plate(0, "AB12CDE", ("staff", "allow")).to_bytes()
    [placed] = parse_events("events.plate", value, TOPOLOGY)
    assert isinstance(placed, VideoEvent)
    assert (placed.zone_id, placed.site_zone_id, placed.attributes["allowed"]) == (
        "lane", "gate", True)
    [bare] = parse_events("events.plate", value)
    assert isinstance(bare, VideoEvent)
    assert (bare.zone_id, bare.site_zone_id, bare.attributes["allowed"]) == (
        "_frame", None, False)


# --- the shipped rules -----------------------------------------------------------------


def shipped_rule(rule_id: str, enable: bool = False) -> str:
    """One rule of config/rules.yaml as a rules file of its own (``enable``: even if off)."""
    rules = yaml.safe_load((REPO_ROOT / "config" / "rules.yaml").read_text())["rules"]
    chosen = [r for r in rules if r["id"] == rule_id]
    if enable:
        chosen = [{**r, "enabled": True} for r in chosen]
    return yaml.safe_dump({"rules": chosen})


def plate_engine(rule_id: str, enable: bool = False) -> RuleEngine:
    rules = parse_rules(shipped_rule(rule_id, enable), "rules.yaml", TOPOLOGY).rules
    return RuleEngine(rules, TOPOLOGY, site_contexts(TOPOLOGY))


Step = PlateEvent | SensorEvent | tuple[str, float]


def run_plates(engine: RuleEngine, steps: list[Step]) -> list[AlertChange]:
    """Feed the steps (plates converted as the correlate stage does), state through JSON."""
    events: list[VideoEvent | SensorEvent | tuple[str, float]] = []
    for step in steps:
        if isinstance(step, PlateEvent):
            events += plate_to_video_events(step, plate_place(TOPOLOGY, step))
        else:
            events.append(step)
    states: dict[str, dict[str, Any]] = {}
    changes: list[AlertChange] = []
    for item in events:
        if isinstance(item, tuple):
            for site in states:
                changes += engine.tick(states[site], T + item[1], site)
        else:
            changes += engine.observe(states.setdefault(item.site_id, {}), item, item.ts)
    return changes


def brief(changes: list[AlertChange]) -> list[tuple[Any, ...]]:
    return [(c.change.value, c.alert.severity.value, c.alert.title, c.alert.count)
            for c in changes]


@pytest.mark.parametrize(("plates", "expected"), [
    ([plate(0, "YG9X2G", ("stolen", "hotlist"))],
     [("opened", "high", "Hotlisted vehicle: YG9X2G (stolen) on anpr (Depot)", 1)]),
    # the same plate again within the cool-down: the alert counts it, no second alert
    ([plate(0, "YG9X2G", ("stolen", "hotlist")), plate(60, "YG9X2G", ("stolen", "hotlist"))],
     [("opened", "high", "Hotlisted vehicle: YG9X2G (stolen) on anpr (Depot)", 1),
      ("updated", "high", "Hotlisted vehicle: YG9X2G (stolen) on anpr (Depot)", 2)]),
    # two plates: two alerts
    ([plate(0, "YG9X2G", ("stolen", "hotlist")), plate(5, "4639520", ("wanted", "hotlist"))],
     [("opened", "high", "Hotlisted vehicle: YG9X2G (stolen) on anpr (Depot)", 1),
      ("opened", "high", "Hotlisted vehicle: 4639520 (wanted) on anpr (Depot)", 1)]),
    ([plate(0, "YG9X2G", ("staff", "allow"))], []),
    ([plate(0, "YG9X2G")], []),
])
def test_hotlist_vehicle(plates: list[PlateEvent], expected: list[tuple[Any, ...]]) -> None:
    changes = run_plates(plate_engine("hotlist_vehicle"), list(plates))
    assert brief(changes) == expected
    for change in changes:
        assert change.alert.rule == "hotlist_vehicle" and change.alert.site_id == "s1"
        assert change.alert.evidence[-1].snapshot_ref is not None


def unauthorised(text: str, count: int = 1, change: str = "opened", sensor_id: str = "barrier"
                 ) -> tuple[Any, ...]:
    return (change, "medium",
            f"Unauthorised vehicle: {text} (red car) at {sensor_id} (Main gate, Depot)", count)


STRANGER = "KX70ABC"
STAFF = ("staff", "allow")


@pytest.mark.parametrize(("steps", "expected"), [
    # a stranger's plate read before or after the barrier opens, within 60 s / 30 s
    ([plate(0, STRANGER), sensor(30, "barrier", "open")], [unauthorised(STRANGER)]),
    ([plate(0, STRANGER), sensor(60, "barrier", "open")], [unauthorised(STRANGER)]),
    ([plate(0, STRANGER), sensor(61, "barrier", "open")], []),
    ([sensor(0, "barrier", "open"), plate(30, STRANGER)], [unauthorised(STRANGER)]),
    ([sensor(0, "barrier", "open"), plate(31, STRANGER)], []),
    ([sensor(0, "barrier", "opening"), plate(5, STRANGER)], [unauthorised(STRANGER)]),
    ([sensor(0, "reader", "granted"), plate(5, STRANGER)],
     [unauthorised(STRANGER, sensor_id="reader")]),
    # no alert: closed / denied, allowed plates, no plate at all, elsewhere
    ([sensor(0, "barrier", "closed"), plate(5, STRANGER)], []),
    ([sensor(0, "reader", "denied"), plate(5, STRANGER)], []),
    ([plate(0, STRANGER, STAFF), sensor(10, "barrier", "open")], []),
    ([plate(0, STRANGER, ("visitors", "allow")), sensor(10, "barrier", "open")], []),
    ([plate(0, STRANGER, ("contractors", "allow")), sensor(10, "barrier", "open")],
     [unauthorised(STRANGER)]),  # an allow list, but not one of this site's
    ([sensor(0, "barrier", "open"), ("tick", 120)], []),  # unread: not this rule
    ([plate(0, STRANGER, camera="yardcam"), sensor(10, "barrier", "open")], []),  # yard
    ([plate(0, STRANGER), sensor(10, "shed", "open")], []),                       # yard gate
    ([plate(0, STRANGER, box=ROADSIDE), sensor(10, "barrier", "open")], []),     # no zone
    ([plate(0, STRANGER, camera="anpr2", site="s2"), sensor(10, "barrier2", "open")],
     []),  # a site without allow lists checks no plates
    # staff car and a stranger behind it: the stranger
    ([plate(0, "AA11AAA", STAFF), plate(10, STRANGER), sensor(15, "barrier", "open")],
     [unauthorised(STRANGER)]),
    # two strangers through one opening: two alerts
    ([sensor(0, "barrier", "open"), plate(5, STRANGER), plate(10, "QQ11QQQ")],
     [unauthorised(STRANGER), unauthorised("QQ11QQQ")]),
    # the same stranger at the next opening within the cool-down: one alert, count 2
    ([plate(0, STRANGER), sensor(5, "barrier", "open"), plate(100, STRANGER),
      sensor(105, "barrier", "open")],
     [unauthorised(STRANGER), unauthorised(STRANGER, 2, "updated")]),
])
def test_unauthorised_vehicle(steps: list[Step], expected: list[tuple[Any, ...]]) -> None:
    changes = run_plates(plate_engine("unauthorised_vehicle"), steps)
    assert brief(changes) == expected
    for change in changes:
        alert = change.alert
        assert (alert.rule, alert.site_id, alert.zone_id, alert.camera_id) == (
            "unauthorised_vehicle", "s1", "gate", "anpr")
        sources = {e.source for e in alert.evidence}
        assert sources == {"sensor", "video"}, alert.evidence


@pytest.mark.parametrize(("steps", "expected"), [
    ([sensor(0, "barrier", "open"), ("tick", 29)], []),            # not decided yet
    ([sensor(0, "barrier", "open"), ("tick", 31)],
     [("opened", "low", "Gate opened with no plate read: barrier (Main gate, Depot)", 1)]),
    ([plate(-50, "AA11AAA", STAFF), sensor(0, "barrier", "open"), ("tick", 31)], []),
    ([sensor(0, "barrier", "open"), plate(25, STRANGER), ("tick", 31)], []),
    ([plate(-61, "AA11AAA", STAFF), sensor(0, "barrier", "open"), ("tick", 31)],
     [("opened", "low", "Gate opened with no plate read: barrier (Main gate, Depot)", 1)]),
    ([sensor(0, "reader", "granted"), ("tick", 31)], []),          # a badge: not a gate
])
def test_gate_unread_plate_opt_in(steps: list[Step], expected: list[tuple[Any, ...]]) -> None:
    assert brief(run_plates(plate_engine("gate_unread_plate", enable=True), steps)) == expected


def test_gate_unread_plate_is_off_by_default() -> None:
    rules = parse_rules(shipped_rule("gate_unread_plate"), "rules.yaml", TOPOLOGY).rules
    assert [r.enabled for r in rules] == [False]


def loitering(text: str = STRANGER, count: int = 1, change: str = "opened",
              site: str = "Depot") -> tuple[Any, ...]:
    return (change, "medium",
            f"Vehicle loitering: {text} (red car) keeps coming back to {site}", count)


@pytest.mark.parametrize(("steps", "expected"), [
    ([plate(0, STRANGER), plate(600, STRANGER), plate(1200, STRANGER)], [loitering()]),
    ([plate(0, STRANGER), plate(600, STRANGER)], []),
    ([plate(0, STRANGER), plate(1800, STRANGER), plate(3600, STRANGER)], [loitering()]),
    ([plate(0, STRANGER), plate(1800, STRANGER), plate(3601, STRANGER)], []),  # over an hour
    # one pass seen by two cameras, a track lost and found: within 60 s counts once
    ([plate(0, STRANGER), plate(20, STRANGER, camera="yardcam"), plate(50, STRANGER),
      plate(600, STRANGER)], []),
    ([plate(0, STRANGER), plate(20, STRANGER, camera="yardcam"), plate(600, STRANGER),
      plate(1200, STRANGER, camera="bare")], [loitering()]),  # any camera of the site
    ([plate(0, STRANGER), plate(600, "QQ11QQQ"), plate(1200, STRANGER)], []),
    ([plate(0, STRANGER, STAFF), plate(600, STRANGER, STAFF), plate(1200, STRANGER, STAFF)],
     []),  # allowed plates are not loitering
    ([plate(0, STRANGER), plate(600, STRANGER), plate(1200, STRANGER), plate(1800, STRANGER)],
     [loitering(), loitering(count=2, change="updated")]),
    ([plate(1200, STRANGER), plate(0, STRANGER), plate(600, STRANGER)], [loitering()]),
    # a site without allow lists: every plate counts
    ([plate(t, STRANGER, camera="anpr2", site="s2") for t in (0, 600, 1200)],
     [loitering(site="Annex")]),
    # the same message three times (a redelivery): one sighting
    ([plate(0, STRANGER, track=7)] * 3, []),
])
def test_vehicle_loitering(steps: list[Step], expected: list[tuple[Any, ...]]) -> None:
    assert brief(run_plates(plate_engine("vehicle_loitering"), steps)) == expected


def test_vehicle_loitering_keeps_every_sighting_as_evidence() -> None:
    steps: list[Step] = [plate(0, STRANGER), plate(600, STRANGER, camera="yardcam"),
                         plate(1200, STRANGER)]
    [change] = run_plates(plate_engine("vehicle_loitering"), steps)
    assert [e.snapshot_ref for e in change.alert.evidence] == [
        "frames.raw/anpr/1000", "frames.raw/yardcam/1600", "frames.raw/anpr/2200"]

