"""When the counting stage writes a camera's state to its ``counting-state`` table
(``save_due``: a closed window, changed counts, else every ``state_every_s`` of capture
time), and that a restart from the throttled table counts what an uninterrupted run
counts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from argus.topology import Camera, Topology
from pipelines.stages.counting.counter import Saved, save_due
from pipelines.stages.counting.stage import Counting, CountingSettings
from schemas.counts import Counts
from schemas.tracks import Tracks
from tests.unit.test_behaviour_support import T0, H, W
from tests.unit.test_counting import CAMERA, TOPOLOGY, FakeRedis, Frame, frames

SAVED = Saved(100.0, ((1, 0, 1), (0, 0, 0)))


@pytest.mark.parametrize(("saved", "now", "closed", "every_s", "due"), [
    (None, Saved(100.0, ((0, 0, 0),)), False, 5.0, True),          # nothing written yet
    (SAVED, Saved(100.2, SAVED.tallies), False, 5.0, False),        # only positions moved
    (SAVED, Saved(104.9, SAVED.tallies), False, 5.0, False),
    (SAVED, Saved(105.0, SAVED.tallies), False, 5.0, True),         # every 5 s
    (SAVED, Saved(100.2, ((2, 0, 1), (0, 0, 0))), False, 5.0, True),   # an entry
    (SAVED, Saved(100.2, ((1, 0, 2), (0, 0, 0))), False, 5.0, True),   # max occupancy
    (SAVED, Saved(100.2, ((0, 0, 0), (0, 0, 0))), True, 5.0, True),    # a window closed
    (SAVED, Saved(100.2, SAVED.tallies), True, 5.0, True),
    (SAVED, Saved(100.2, SAVED.tallies), False, 0.0, True),         # 0: every frame
    (Saved(None, SAVED.tallies), Saved(100.2, SAVED.tallies), False, 5.0, True),
])
def test_when_the_state_is_written(saved: Saved | None, now: Saved, closed: bool,
                                   every_s: float, due: bool) -> None:
    assert save_due(saved, now, closed, every_s) is due


class CountingTable(dict[str, Any]):
    """The stage's table, counting writes (each is a changelog message)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[float] = []

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes.append(value["last_ts"] - T0)
        super().__setitem__(key, value)


def stage_on(table: dict[str, Any], camera: Camera, every_s: float = 5.0) -> Counting:
    topology = Topology(sites=TOPOLOGY.sites, cameras=[camera])
    settings = CountingSettings(state_every_s=every_s)
    return Counting(topology, FakeRedis(), table, settings)  # type: ignore[arg-type]


# outside for 0-3 s, in at 4 s, standing inside (jitter) to 20 s; the frame at 60 s closes
# the window [T0, T0 + 60)
SCRIPT = frames([(0.3, 0.3)] * 4 + [(0.3, 0.7 + 0.001 * (i % 2)) for i in range(17)]
                + [(0.3, 0.7)])
TIMES = [*range(21), 60]


def play(stage: Counting, camera: Camera, start: int = 0, stop: int = len(SCRIPT),
         script: list[Frame] = SCRIPT) -> list[Counts]:
    """Frames ``start`` to ``stop`` (excluded) of ``script``."""
    out: list[Counts] = []
    for i in range(start, stop):
        frame = Tracks(camera_id=camera.id, seq=i, capture_ts=T0 + TIMES[i], width=W,
                       height=H, tracks=script[i])
        out += asyncio.run(stage.handle_one((frame, camera)))
    return out


@pytest.mark.parametrize(("every_s", "writes"), [
    (5.0, [0, 4, 9, 14, 19, 60]),   # first, the entry, every 5 s, the closed window
    (30.0, [0, 4, 60]),
    (0.0, [*range(21), 60]),        # every frame
])
def test_the_stage_writes_on_changes_and_every_state_every_s(every_s: float,
                                                             writes: list[float]) -> None:
    camera = CAMERA.model_copy(update={"id": f"cam-throttle-{every_s:g}"})
    table = CountingTable()
    stage = stage_on(table, camera, every_s)
    play(stage, camera, stop=21)
    counter = stage.counters[camera.id]
    assert counter.last_ts == T0 + 20 and table[camera.id]["last_ts"] <= T0 + 20
    play(stage, camera, start=21)
    assert stage.counters[camera.id] is counter  # the table lagging is no rebalance
    assert table.writes == writes


@pytest.mark.parametrize(("replayed_from", "lost"), [
    (17, 2),   # none: frames 15 and 16 are lost, only to the window's frame count
    (12, 0),   # from a commit before the last write: 12-14 are stale, 15-16 counted again
])
def test_a_restart_from_the_throttled_table_counts_the_same(replayed_from: int,
                                                            lost: int) -> None:
    camera = CAMERA.model_copy(update={"id": f"cam-crash-{replayed_from}"})
    whole = play(stage_on({}, camera), camera)
    table = CountingTable()
    play(stage_on(table, camera), camera, stop=17)  # last write at 14 s, crash at 16 s
    assert table.writes[-1] == 14
    out = play(stage_on(table, camera), camera, start=replayed_from)
    assert [c.model_copy(update={"frames": c.frames + lost}) for c in out] == whole


def test_a_camera_coming_back_after_a_rebalance_resumes_from_the_table() -> None:
    camera = CAMERA.model_copy(update={"id": "cam-back"})
    table: dict[str, Any] = {}
    # while the other worker has the camera (3-5 s), track 2 walks in and out again
    script = [*SCRIPT[:3], *(a + b for a, b in zip(SCRIPT[3:6], frames(
        [(0.6, 0.3), (0.6, 0.7), (0.6, 0.3)], tid=2), strict=True)), *SCRIPT[6:]]
    first, second = stage_on(table, camera), stage_on(table, camera)
    play(first, camera, stop=3, script=script)
    play(second, camera, 3, 6, script=script)
    out = play(first, camera, 6, script=script)  # back: its own counter is stale
    floor = next(c for c in out if c.area_id == "floor").groups["people"]
    assert (floor.entries, floor.exits, floor.max_occupancy) == (2, 1, 2)
    assert first.counters[camera.id].to_dict() == table[camera.id]


def test_a_counter_read_from_the_table_is_not_written_back_unchanged() -> None:
    camera = CAMERA.model_copy(update={"id": "cam-reread"})
    table = CountingTable()
    play(stage_on(table, camera), camera, stop=2)  # written at 0 s only
    restarted = stage_on(table, camera)
    play(restarted, camera, 2, 3)
    counter = restarted.counters[camera.id]
    play(restarted, camera, 3, 4)
    assert restarted.counters[camera.id] is counter
    assert table.writes == [0]
