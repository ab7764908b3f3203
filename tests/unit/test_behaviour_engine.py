"""The behaviour engine: state that survives a round trip through JSON (a restart), replays
that repeat nothing, the registry's restore from another worker's state, and the stage's
dead-letter and metric paths."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from argus.metrics import LINE_CROSSINGS
from argus.topology import parse_topology
from pipelines.stages.behaviour import BehaviourRegistry, CameraBehaviours
from pipelines.stages.behaviour.processor import BehaviourStage, UnknownCamera
from schemas.events import VideoEvent
from tests.unit.test_behaviour_support import (
    Script,
    camera,
    message,
    moving,
    obj,
    run,
    still,
    together,
)

EVERYTHING = """    lines:
      - {id: gate, points: [[0.2, 0.5], [0.8, 0.5]]}
    zones:
      - id: hall
        polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]
        behaviours:
          loitering: {dwell_s: 6}
          running: {frames: 3}
          crowd: {count: 3}
          wrong_way: {direction: [0, -1], frames: 3}
          abandoned_object: {still_s: 4}
          vehicle_stopped: {stopped_s: 5}
"""
SCENE: Script = together(
    still(1, 0.1, 0.9, 10),                                            # loiters
    moving(2, (0.5, 0.3), (0.5, 0.7), 10, speed=0.8, heading=(0, 1)),  # crosses, wrong way
    [[]] * 10 + still(3, 0.7, 0.9, 4, speed=3.0),                      # runs
    still(4, 0.3, 0.9, 5), still(5, 0.35, 0.9, 5),                     # a crowd with 1, 2
    still(10, 0.9, 0.95, 10, h=0.05, cls="backpack"),                  # left alone
    still(20, 0.6, 0.2, 10, h=0.2, aspect=2.0, cls="truck"),           # stopped
)
KINDS = ["abandoned_object", "crowd", "line_crossing", "loitering", "running",
         "vehicle_stopped", "wrong_way"]


def test_every_behaviour_fires_once_in_one_scene() -> None:
    cam, site = camera(EVERYTHING)
    events = run(cam, site, SCENE)
    assert sorted(e.kind for _, e in events) == KINDS
    assert len({e.event_id for _, e in events}) == len(KINDS)


@pytest.mark.parametrize("split", [1, 7, 18, 25, 31, 44])
def test_state_round_trip_gives_the_same_events(split: int) -> None:
    cam, site = camera(EVERYTHING)
    whole = run(cam, site, SCENE)
    first = CameraBehaviours(cam)
    got: list[tuple[int, VideoEvent]] = []
    for i, tracks in enumerate(SCENE[:split]):
        result = first.process(message(i, tracks), site)
        assert result is not None
        got.extend((i, e) for e in result.events)
    state = json.loads(json.dumps(first.to_dict()))  # what the Faust table stores
    second = CameraBehaviours.from_dict(cam, state)
    for i, tracks in enumerate(SCENE[split:], start=split):
        result = second.process(message(i, tracks), site)
        assert result is not None
        got.extend((i, e) for e in result.events)
    assert got == whole


def test_a_redelivered_frame_is_skipped() -> None:
    cam, site = camera(EVERYTHING)
    engine = CameraBehaviours(cam)
    events = run(cam, site, SCENE, engine=engine)
    assert events
    for i, tracks in enumerate(SCENE):  # a replay of everything: nothing new
        assert engine.process(message(i, tracks), site) is None


def test_registry_restores_state_written_by_another_worker() -> None:
    cam, site = camera(EVERYTHING)
    store: dict[str, Any] = {}
    a, b = BehaviourRegistry(store, persist_every_s=0.0), BehaviourRegistry(store, 0.0)
    got: list[VideoEvent] = []
    for i, tracks in enumerate(SCENE):
        owner = a if i < 20 else b  # the partition moves to worker b at frame 20
        result = owner.process(message(i, tracks), cam, site)
        assert result is not None
        got.extend(e for e in result.events)
    assert b.restored == 1
    assert [e.event_id for e in got] == [e.event_id for _, e in run(cam, site, SCENE)]
    assert set(store) == {"cam"} and store["cam"]["state"]["version"] == 1


def test_unusable_state_starts_afresh() -> None:
    cam, site = camera(EVERYTHING)
    registry = BehaviourRegistry({"cam": {"revision": "x", "state": {"version": 99}}})
    result = registry.process(message(0, SCENE[0]), cam, site)
    assert result is not None and result.events == []
    assert registry.restored == 0


def test_state_of_a_behaviour_no_longer_configured_is_dropped() -> None:
    cam, site = camera(EVERYTHING)
    engine = CameraBehaviours(cam)
    run(cam, site, SCENE[:5], engine=engine)
    fewer, _ = camera(EVERYTHING.replace("          loitering: {dwell_s: 6}\n", ""))
    restored = CameraBehaviours.from_dict(fewer, engine.to_dict())
    assert "loitering:hall" not in restored.to_dict()["detectors"]
    assert restored.last_seq == 4


def test_a_camera_without_behaviours_keeps_no_state() -> None:
    cam, site = camera("")
    registry = BehaviourRegistry()
    result = registry.process(message(0, [obj(1, 0.5, 0.5)]), cam, site)
    assert result is not None and result.events == [] and registry.store == {}


TOPOLOGY = f"""sites: [{{id: s, lat: 0, lon: 0}}]
cameras:
  - id: cam
    site: s
    source: x
{EVERYTHING}"""


@pytest.mark.parametrize(("per_camera", "labels"),
                         [(True, ("cam", "gate")), (False, ("_all", "_all"))])
def test_stage_counts_crossings_with_bounded_labels(per_camera: bool,
                                                    labels: tuple[str, str]) -> None:
    stage = BehaviourStage(parse_topology(TOPOLOGY), None, per_camera=per_camera)
    counter = LINE_CROSSINGS.labels(*labels, "a_to_b")
    before = counter._value.get()
    events = [e for i, tracks in enumerate(SCENE)
              for e in stage.process(message(i, tracks).to_bytes())]
    assert sorted(e.kind for e in events) == KINDS
    assert counter._value.get() - before == 1


def test_stage_rejects_bad_messages_and_unknown_cameras() -> None:
    stage = BehaviourStage(parse_topology(TOPOLOGY), None)
    with pytest.raises(ValidationError):
        stage.process(b'{"camera_id": "cam"}')
    other = message(0, []).model_copy(update={"camera_id": "cam-x"})
    with pytest.raises(UnknownCamera, match="cam-x"):
        stage.process(other.to_bytes())
