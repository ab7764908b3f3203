"""The plate stage's per-frame work (:class:`PlateAgent.handle`) with the model, the frame
cache and the stores faked: which regions of a ``tracks`` message go to the reader, and a
still with no vehicle to read read whole (``plates.whole_photo``) and published under the
stills rule; and the camera setting itself."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from pydantic import ValidationError

from argus.topology import CameraPlates, Topology
from pipelines.stages.plates.agent import PlateAgent
from pipelines.stages.plates.tracks import PlateTrackConfig, plate_event_id
from schemas.detections import Box
from schemas.plates import WHOLE_PHOTO_TRACK_ID, PlateEvent
from schemas.tracks import Track, Tracks

T0 = 1_800_000_000.0
TOPOLOGY = Topology.model_validate({
    "sites": [{"id": "s1", "lat": 52.0, "lon": 4.0, "plates": {
        "formats": [{"id": "us", "pattern": "[A-Z0-9]{5,8}", "fold": {"O": "0"}}]}}],
    "cameras": [
        {"id": "anpr", "site": "s1", "source": "0", "plates": {"mode": "stills"}},
        {"id": "anpr-boxed", "site": "s1", "source": "0",
         "plates": {"mode": "stills", "whole_photo": False}},
        {"id": "gate", "site": "s1", "source": "0", "plates": {}},
    ],
})


@pytest.mark.parametrize(("plates", "whole"), [
    ({"mode": "stills"}, True),                       # the default on stills
    ({"mode": "stills", "whole_photo": False}, False),
    ({"mode": "stills", "whole_photo": True}, True),
    ({}, False),                                      # video: vehicle tracks only
    ({"whole_photo": False}, False),
])
def test_whole_photo_setting(plates: dict[str, object], whole: bool) -> None:
    assert CameraPlates.model_validate(plates).reads_whole_photo is whole


def test_whole_photo_needs_stills() -> None:
    with pytest.raises(ValidationError, match="whole_photo needs mode: stills"):
        CameraPlates.model_validate({"whole_photo": True})


def read(text: str, conf: float = 0.95, box: Sequence[float] = (0.4, 0.6, 0.6, 0.7),
         ) -> dict[str, Any]:
    return {"text": text, "confidence": conf, "confidences": [conf] * len(text),
            "alternatives": [""] * len(text), "box": list(box), "det_score": 0.9,
            "score": 0.8}


class FakeModel:
    """The Triton ``plates`` client: the reads per region (None: the whole image)."""

    def __init__(self, reads: dict[tuple[float, ...] | None, list[dict[str, Any]]]) -> None:
        self.reads = reads
        self.calls: list[tuple[float, ...] | None] = []

    async def infer(self, jpeg: bytes, box: Box | None) -> tuple[list[dict[str, Any]], float]:
        key = None if box is None else (box.x1, box.y1, box.x2, box.y2)
        self.calls.append(key)
        return self.reads.get(key, []), 5.0


class FakeCache:
    async def get(self, camera_id: str, seq: int) -> bytes | None:
        return b"jpeg"  # never decoded: the colour of a whole photo is not asked

    async def keep(self, camera_id: str, seq: int, ref: str) -> str | None:
        return ref


class NoLists:
    def list_ids(self) -> list[str]:
        return []


class Sightings:
    def __init__(self) -> None:
        self.added: list[PlateEvent] = []

    def add(self, event: PlateEvent) -> None:
        self.added.append(event)


def agent(model: FakeModel) -> PlateAgent:
    """The agent without Triton or Redis behind it."""
    made = PlateAgent.__new__(PlateAgent)
    made.topology, made.config, made.books = TOPOLOGY, PlateTrackConfig(), {}
    made.cache, made.model = FakeCache(), model  # type: ignore[assignment]
    made.lists, made.sightings = NoLists(), Sightings()  # type: ignore[assignment]
    return made


CAR = Box(x1=0.1, y1=0.2, x2=0.6, y2=0.9)


def frame(camera: str, seq: int, *tracks: tuple[str, str]) -> Tracks:
    """A ``tracks`` message of one 1280x720 photo; tracks as (class, state), seen now."""
    ts = T0 + seq
    return Tracks(camera_id=camera, seq=seq, capture_ts=ts, width=1280, height=720, tracks=[
        Track.model_validate({
            "track_id": i + 1, "class_id": 2, "class_name": cls, "box": CAR,
            "velocity": {"vx": 0.0, "vy": 0.0}, "age": 1, "state": state,
            "first_seen": ts, "last_seen": ts, "score": 0.8})
        for i, (cls, state) in enumerate(tracks)])


CAR_KEY = (CAR.x1, CAR.y1, CAR.x2, CAR.y2)


@pytest.mark.parametrize(("camera", "tracks", "reads", "calls", "published"), [
    # a close-up: no vehicle box, the photo read whole and its plate published
    ("anpr", (), {None: [read("CC2881")]}, [None], ["CC2881"]),
    ("anpr", (("person", "confirmed"),), {None: [read("CC2881")]}, [None], ["CC2881"]),
    # the stills rule holds for a whole photo too: an unsure character, nothing published
    ("anpr", (), {None: [read("CC2881", conf=0.5)]}, [None], []),
    ("anpr", (), {None: [read("WASHINGTONDC")]}, [None], []),     # fits no format
    # a car is boxed: its box is read, and a failed read is not retried on the whole photo
    ("anpr", (("car", "tentative"),), {CAR_KEY: [read("520MRK")]}, [CAR_KEY], ["520MRK"]),
    ("anpr", (("car", "confirmed"),), {None: [read("CC2881")]}, [CAR_KEY], []),
    # whole_photo off, or a video camera: nothing to read
    ("anpr-boxed", (), {None: [read("CC2881")]}, [], []),
    ("gate", (), {None: [read("CC2881")]}, [], []),
])
def test_what_a_photo_reads(camera: str, tracks: tuple[tuple[str, str], ...],
                            reads: dict[tuple[float, ...] | None, list[dict[str, Any]]],
                            calls: list[tuple[float, ...] | None], published: list[str]) -> None:
    model = FakeModel(reads)
    events = asyncio.run(agent(model).handle(frame(camera, 7, *tracks)))
    assert model.calls == calls
    assert [e.text for e in events] == published


def test_a_whole_photo_plate_event() -> None:
    """Track 0, class unknown, the whole image as the vehicle, no colour or heading, and an
    id of its own per photo; the next photo with the same plate is published again (each
    still is its own vehicle), a replay of a photo with the same id."""
    plates = agent(FakeModel({None: [read("CC2881")]}))
    [first] = asyncio.run(plates.handle(frame("anpr", 7)))
    assert (first.track_id, first.vehicle_class, first.colour, first.direction_deg,
            first.speed, first.reads) == (WHOLE_PHOTO_TRACK_ID, "unknown", "unknown", None,
                                          0.0, 1)
    assert first.vehicle_box == Box(x1=0.0, y1=0.0, x2=1.0, y2=1.0)
    assert first.plate_box == Box(x1=0.4, y1=0.6, x2=0.6, y2=0.7)
    assert first.event_id == plate_event_id("anpr", 0, "CC2881", seq=7)
    assert first.seq == 7 and first.snapshot_ref is not None
    [second] = asyncio.run(plates.handle(frame("anpr", 8)))
    assert second.text == "CC2881" and second.event_id != first.event_id
    [replay] = asyncio.run(plates.handle(frame("anpr", 7)))
    assert replay.event_id == first.event_id
    assert [e.event_id for e in plates.sightings.added] == [  # type: ignore[attr-defined]
        first.event_id, second.event_id, first.event_id]
