"""The shipped rule ``hotlist_vehicle`` on plate events: a hotlist hit alerts (high, one alert
per plate per site within the cool-down), an allow-list hit or a plate on no list does not."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from argus.plates.events import plate_to_video_events
from argus.settings import REPO_ROOT
from schemas.detections import Box
from schemas.plates import PlateEvent, PlateHit
from tests.unit.test_rule_engine import T, engine_for, play

BOX = Box(x1=0.1, y1=0.3, x2=0.3, y2=0.6)


def shipped_rule(rule_id: str) -> str:
    """One rule of config/rules.yaml as a rules file of its own."""
    rules = yaml.safe_load((REPO_ROOT / "config" / "rules.yaml").read_text())["rules"]
    return yaml.safe_dump({"rules": [r for r in rules if r["id"] == rule_id]})


def plate(t: float, text: str, *hits: tuple[str, str, int]) -> PlateEvent:
    return PlateEvent(
        event_id=f"plate-c1-{int(t)}-{text}", camera_id="c1", site_id="s1", ts=T + t,
        seq=int(t), track_id=int(t) + 1, text=text, format_id="us", confidence=0.9,
        confidences=[0.9] * len(text), reads=3, fixes=0, vehicle_class="car", colour="red",
        speed=0.05, vehicle_box=BOX, plate_box=BOX, snapshot_ref=f"frames.raw/c1/{int(t)}",
        hits=[PlateHit(list_id=list_id, list_kind=kind, entry_id=f"e-{list_id}",
                       distance=distance) for list_id, kind, distance in hits])


@pytest.mark.parametrize(("plates", "expected"), [
    ([plate(0, "YG9X2G", ("stolen", "hotlist", 0))],
     [("opened", "high", "Hotlisted vehicle: YG9X2G (stolen) on c1 (Depot)", 1)]),
    # the same plate again within the cool-down: the alert counts it, no second alert
    ([plate(0, "YG9X2G", ("stolen", "hotlist", 1)), plate(60, "YG9X2G", ("stolen", "hotlist", 0))],
     [("opened", "high", "Hotlisted vehicle: YG9X2G (stolen) on c1 (Depot)", 1),
      ("updated", "high", "Hotlisted vehicle: YG9X2G (stolen) on c1 (Depot)", 2)]),
    # two plates: two alerts
    ([plate(0, "YG9X2G", ("stolen", "hotlist", 0)), plate(5, "4639520", ("wanted", "hotlist", 0))],
     [("opened", "high", "Hotlisted vehicle: YG9X2G (stolen) on c1 (Depot)", 1),
      ("opened", "high", "Hotlisted vehicle: 4639520 (wanted) on c1 (Depot)", 1)]),
    ([plate(0, "YG9X2G", ("staff", "allow", 0))], []),
    ([plate(0, "YG9X2G")], []),
])
def test_hotlist_vehicle(plates: list[PlateEvent], expected: list[tuple[Any, ...]]) -> None:
    engine = engine_for(shipped_rule("hotlist_vehicle"), "hotlist_vehicle")
    events = [e for p in plates for e in plate_to_video_events(p)]
    changes = play(engine, list(events))
    got = [(c.change.value, c.alert.severity.value, c.alert.title, c.alert.count)
           for c in changes]
    assert got == expected
    for change in changes:
        assert change.alert.rule == "hotlist_vehicle" and change.alert.site_id == "s1"
        assert change.alert.evidence[-1].snapshot_ref is not None
