"""The plate stage's pure logic (``pipelines/stages/plates/tracks.py``) as tables: which
tracks are read when, when a still is read whole, voting a track's reads into one published
plate, heading and speed, the vehicle colour palette; and the ``events.plate`` contract."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from pipelines.stages.plates.tracks import (
    PlateTrackConfig,
    TrackPlates,
    heading,
    plate_event_id,
    vehicle_colour,
)
from schemas.detections import Box
from schemas.plates import WHOLE_PHOTO_CLASS, WHOLE_PHOTO_TRACK_ID, PlateEvent
from schemas.tracks import Track, Velocity

T0 = 1_800_000_000.0


def track(track_id: int = 1, cls: str = "car", state: str = "confirmed",
          width: float = 0.2, last_seen: float = T0) -> Track:
    return Track.model_validate({
        "track_id": track_id, "class_id": 2, "class_name": cls,
        "box": {"x1": 0.1, "y1": 0.3, "x2": 0.1 + width, "y2": 0.6},
        "velocity": {"vx": 0.0, "vy": 0.0}, "age": 5, "state": state,
        "first_seen": T0 - 1, "last_seen": last_seen, "score": 0.8})


@pytest.mark.parametrize(("kwargs", "frame_width", "due"), [
    ({}, 1280, True),
    ({"cls": "person"}, 1280, False),
    ({"cls": "truck"}, 1280, True),
    ({"state": "lost"}, 1280, False),
    ({"state": "tentative"}, 1280, False),
    ({"width": 0.04}, 1280, False),          # 51 px < 60 px
    ({"width": 0.04}, 1920, True),           # 77 px
])
def test_which_tracks_are_read(kwargs: dict[str, object], frame_width: int, due: bool) -> None:
    assert TrackPlates().due(track(**kwargs), T0, frame_width) is due  # type: ignore[arg-type]


STILLS = PlateTrackConfig(stills=True)


@pytest.mark.parametrize(("kwargs", "due"), [
    ({}, True),
    ({"state": "tentative"}, True),           # one photo: never confirmed, still read
    ({"state": "lost"}, False),
    ({"last_seen": T0 - 1.0}, False),         # not in this photo
    ({"cls": "person"}, False),
    ({"width": 0.04}, False),
])
def test_which_tracks_are_read_on_stills(kwargs: dict[str, object], due: bool) -> None:
    book = TrackPlates(STILLS)
    t = track(**kwargs)  # type: ignore[arg-type]
    assert book.due(t, T0, 1280) is due
    book.attempted(t.track_id, T0)
    assert book.due(t, T0, 1280) is due  # every photo, however close in time


WHOLE = PlateTrackConfig(stills=True, whole_photo=True)


@pytest.mark.parametrize(("tracks", "config", "whole"), [
    ([], WHOLE, True),                                           # nothing detected
    ([track(cls="person")], WHOLE, True),                        # no vehicle
    ([track(state="lost")], WHOLE, True),                        # the last photo's car
    ([track(last_seen=T0 - 1.0)], WHOLE, True),                  # not in this photo
    ([track(width=0.04)], WHOLE, True),                          # too narrow to read
    ([track()], WHOLE, False),                                   # a car to read
    ([track(state="tentative")], WHOLE, False),                  # read on stills too
    ([track(cls="person"), track(2, cls="truck")], WHOLE, False),
    ([], STILLS, False),                                         # whole_photo off
    ([], PlateTrackConfig(whole_photo=True), False),             # video: tracks only
])
def test_whole_photo_only_without_a_vehicle_to_read(tracks: list[Track],
                                                    config: PlateTrackConfig,
                                                    whole: bool) -> None:
    book = TrackPlates(config)
    assert book.whole_photo_due(tracks, T0, 1280) is whole
    # the decision is the photo's: a vehicle read that found no plate does not change it
    for t in tracks:
        book.attempted(t.track_id, T0)
    assert book.whole_photo_due(tracks, T0, 1280) is whole


@pytest.mark.parametrize(("reads", "published"), [
    # each photo's read stands alone: confident reads publish at once, once per plate
    ([("AB12CDE", 0.9), ("AB12CDE", 0.9), ("XY34ZZZ", 0.9)], ["AB12CDE", None, "XY34ZZZ"]),
    # an unsure character holds a read back, and is not voted with the next photo's
    ([("AB12CDE", 0.5), ("XY34ZZZ", 0.9)], [None, "XY34ZZZ"]),
])
def test_stills_publish_each_confident_read(reads: list[tuple[str, float]],
                                            published: list[str | None]) -> None:
    book = TrackPlates(STILLS)
    got = []
    for seq, (text, conf) in enumerate(reads):
        known = book.add(3, text, [conf] * len(text), 0.8, seq, best={"seq": seq})
        got.append(None if known is None else known.vote.text)
        if known is not None:
            assert known.best == {"seq": seq} and known.vote.reads == 1
            book.published(3, known.vote.text)  # what the stage does once the event is out
    assert got == published


def test_reads_are_spaced_and_bounded() -> None:
    book = TrackPlates(PlateTrackConfig(interval_s=0.5, max_reads=3))
    t = track()
    times = [T0 + i * 0.2 for i in range(20)]
    done = []
    for ts in times:
        if book.due(t, ts, 1280):
            book.attempted(t.track_id, ts)
            done.append(round(ts - T0, 1))
    assert done == [0.0, 0.6, 1.2]  # every >= 0.5 s, at most 3


@pytest.mark.parametrize(("reads", "published"), [
    # (text, confidence per character, score, seq) per frame -> what add() returns per frame
    ([("AB12CDE", 0.9, 0.8, 1), ("AB12CDE", 0.9, 0.9, 2)], [None, "AB12CDE"]),
    # a confident one-character slip holds the vote until a third read outvotes it
    ([("AB12CDE", 0.9, 0.8, 1), ("A812CDE", 0.8, 0.5, 2), ("AB12CDE", 0.9, 0.7, 3)],
     [None, None, "AB12CDE"]),
    # an unsure slip does not (B has 0.9 / 1.4 = 64 % of position 2)
    ([("AB12CDE", 0.9, 0.8, 1), ("A812CDE", 0.5, 0.5, 2)], [None, "AB12CDE"]),
    # published once per (track, plate), even as more reads agree
    ([("AB12CDE", 0.9, 0.8, 1), ("AB12CDE", 0.9, 0.8, 2), ("AB12CDE", 0.9, 0.8, 3)],
     [None, "AB12CDE", None]),
    # two different plates never settle
    ([("AB12CDE", 0.9, 0.8, 1), ("XY34ZZZ", 0.9, 0.8, 2)], [None, None]),
])
def test_votes_publish_a_stable_plate_once(
        reads: list[tuple[str, float, float, int]], published: list[str | None]) -> None:
    book = TrackPlates()
    got = []
    for text, conf, score, seq in reads:
        known = book.add(7, text, [conf] * len(text), score, seq)
        got.append(None if known is None else known.vote.text)
        if known is not None:
            book.published(7, known.vote.text)  # what the stage does once the event is out
            assert known.track_id == 7
            assert known.best_seq == max(reads[:len(got)], key=lambda r: r[2])[3]
            assert known.best is None  # nothing passed with the reads
    assert got == published


def test_a_plate_whose_publish_failed_is_offered_again() -> None:
    """The stage records a plate as published only once its event is out: a publish that
    failed (Redis down, retried by the runner) gets the plate again, a done one does not."""
    book = TrackPlates()
    book.add(7, "AB12CDE", [0.9] * 7, 0.8, 1)
    first = book.add(7, "AB12CDE", [0.9] * 7, 0.8, 2)
    retried = book.add(7, "AB12CDE", [0.9] * 7, 0.8, 2)  # the same frame, redelivered
    assert first is not None and retried is not None and retried.vote.text == "AB12CDE"
    book.published(7, "AB12CDE")
    assert book.add(7, "AB12CDE", [0.9] * 7, 0.8, 3) is None


def test_ended_tracks_are_forgotten() -> None:
    book = TrackPlates()
    book.add(1, "AB12CDE", [0.9] * 7, 0.8, 1)
    book.add(2, "XY34ZZZ", [0.9] * 7, 0.8, 1)
    book.keep_only({2})
    assert set(book.tracks) == {2}


@pytest.mark.parametrize(("vx", "vy", "aspect", "direction", "speed"), [
    (0.0, -0.1, 1.0, 0.0, 0.1),          # up
    (0.1, 0.0, 1.0, 90.0, 0.1),          # right
    (0.0, 0.1, 1.0, 180.0, 0.1),         # down
    (-0.1, 0.0, 1.0, 270.0, 0.1),        # left
    (0.1, 0.1, 2.0, 116.6, 0.1414),      # a wide frame: x counts double in pixels
    (0.005, 0.0, 1.0, None, 0.005),      # standing
])
def test_heading(vx: float, vy: float, aspect: float, direction: float | None,
                 speed: float) -> None:
    assert heading(Velocity(vx=vx, vy=vy), aspect) == (direction, speed)


@pytest.mark.parametrize(("bgr", "name"), [
    ((250, 250, 250), "white"),
    ((170, 170, 170), "silver"),
    ((100, 100, 100), "grey"),
    ((20, 20, 20), "black"),
    ((30, 30, 200), "red"),
    ((200, 60, 20), "blue"),
    ((40, 160, 40), "green"),
    ((20, 210, 230), "yellow"),
    ((20, 120, 240), "orange"),
    ((20, 40, 90), "brown"),
])
def test_vehicle_colour(bgr: tuple[int, int, int], name: str) -> None:
    crop = np.zeros((60, 90, 3), dtype=np.uint8)
    crop[:, :] = bgr
    crop[:10] = (255, 255, 255)  # the edges (sky, road) do not count
    assert vehicle_colour(crop) == name


def test_vehicle_colour_of_a_tiny_crop() -> None:
    assert vehicle_colour(np.zeros((2, 2, 3), dtype=np.uint8)) == "unknown"


def _event(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "event_id": plate_event_id("cam-1", 7, "AB12CDE"), "camera_id": "cam-1",
        "site_id": "depot", "ts": T0, "seq": 12, "track_id": 7, "text": "AB12CDE",
        "format_id": "uk", "confidence": 0.8, "confidences": [0.8] * 7, "reads": 3,
        "fixes": 0, "vehicle_class": "car", "colour": "blue", "direction_deg": 90.0,
        "speed": 0.1, "vehicle_box": Box(x1=0.1, y1=0.3, x2=0.3, y2=0.6),
        "plate_box": Box(x1=0.15, y1=0.5, x2=0.2, y2=0.55),
        "snapshot_ref": "frames.raw/cam-1/12"}
    base.update(changes)
    return base


def test_whole_photo_events_are_one_per_photo() -> None:
    """A still read whole has the pseudo track 0 on every photo: the seq keeps the ids of two
    photos apart (each photo is its own vehicle) and a replay of one photo the same."""
    first = plate_event_id("cam-1", WHOLE_PHOTO_TRACK_ID, "AB12CDE", seq=12)
    assert first == plate_event_id("cam-1", WHOLE_PHOTO_TRACK_ID, "AB12CDE", seq=12)
    assert first != plate_event_id("cam-1", WHOLE_PHOTO_TRACK_ID, "AB12CDE", seq=13)
    assert first != plate_event_id("cam-1", WHOLE_PHOTO_TRACK_ID, "AB12CDE")
    event = PlateEvent.model_validate(_event(
        event_id=first, track_id=WHOLE_PHOTO_TRACK_ID, vehicle_class=WHOLE_PHOTO_CLASS,
        colour="unknown", direction_deg=None, speed=0.0,
        vehicle_box=Box(x1=0.0, y1=0.0, x2=1.0, y2=1.0)))
    assert PlateEvent.model_validate_json(event.to_bytes()) == event


def test_plate_event_round_trip() -> None:
    event = PlateEvent.model_validate(_event())
    assert PlateEvent.model_validate_json(event.to_bytes()) == event
    assert event.event_id == plate_event_id("cam-1", 7, "AB12CDE") != \
        plate_event_id("cam-1", 8, "AB12CDE")


@pytest.mark.parametrize(("changes", "message"), [
    ({"confidences": [0.8] * 6}, "6 confidences for 7 characters"),
    ({"confidences": [0.8] * 6 + [1.5]}, "0..1"),
    ({"text": "ab12cde"}, "pattern"),
    ({"colour": "purple"}, "colour"),
    ({"direction_deg": 360.0}, "direction_deg"),
    ({"track_id": -1}, "track_id"),
])
def test_plate_event_rejects(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PlateEvent.model_validate(_event(**changes))
