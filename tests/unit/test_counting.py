"""People and vehicle counting as tables: foot points in → entries, exits, occupancy and
windows out (``pipelines/stages/counting/counter.py``), the stage's Redis writes, state and
metrics with a fake Redis, and the ``over_occupancy`` rule on the events made of counts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest
from prometheus_client import REGISTRY
from redis.exceptions import ConnectionError as RedisConnectionError

from argus.settings import REPO_ROOT
from argus.stores import counts as store
from argus.topology import Camera, Topology, load_topology, parse_topology
from pipelines.stages.correlate.rules import RuleEngine, load_rules
from pipelines.stages.correlate.writer import counts_to_video_events, observe
from pipelines.stages.counting.counter import DEFAULT_GROUPS, CameraCounter
from pipelines.stages.counting.stage import Counting, CountingSettings
from schemas.counts import Counts, GroupCounts
from schemas.tracks import Track, Tracks, TrackStateName
from tests.unit.test_behaviour_support import T0, H, W, obj

# ``floor``: the bottom half of the image; ``door``: a vertical line at x = 0.5 drawn
# downwards (side A is right of it: moving right to left is a_to_b = in); ``short``: a
# line at x = 0.2 from y = 0.6 to 0.8 only (the tests' tracks walk at y = 0.2).
TOPOLOGY = parse_topology("""
sites: [{id: s, lat: 0, lon: 0, zones: [{id: hall}]}]
cameras:
  - id: cam
    site: s
    source: x
    zones:
      - {id: floor, site_zone: hall, polygon: [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}
    lines:
      - {id: door, points: [[0.5, 0.0], [0.5, 1.0]]}
      - {id: short, points: [[0.2, 0.6], [0.2, 0.8]]}
""", "t.yaml")
CAMERA = TOPOLOGY.cameras[0]
FPS = 5.0

Frame = list[Track]


def frames(points: Sequence[tuple[float, float] | None], tid: int = 1, cls: str = "person",
           state: TrackStateName = "confirmed") -> list[Frame]:
    """One track at these foot points, frame by frame (None: not in that frame)."""
    return [[] if p is None else [obj(tid, p[0], p[1], cls=cls, state=state)] for p in points]


def run(script: Sequence[Frame], counter: CameraCounter | None = None, t0: float = T0,
        seq0: int = 0, fps: float = FPS) -> tuple[CameraCounter, list[Counts]]:
    counter = counter or CameraCounter(CAMERA, "s", DEFAULT_GROUPS)
    closed: list[Counts] = []
    for i, tracks in enumerate(script):
        result = counter.update(Tracks(camera_id="cam", seq=seq0 + i, capture_ts=t0 + i / fps,
                                       width=W, height=H, tracks=tracks))
        assert result is not None
        closed += result.closed
    return counter, closed


def now(counter: CameraCounter, area: str, group: str = "people") -> tuple[Any, ...]:
    """(entries, exits, occupancy, max occupancy) of the current window."""
    counts = next(c for c in counter.close() if c.area_id == area).groups[group]
    return counts.entries, counts.exits, counts.occupancy, counts.max_occupancy


@pytest.mark.parametrize(("ys", "appearances", "expected"), [
    ([0.3, 0.4, 0.6, 0.7], True, (1, 0, 1, 1)),           # walks in
    ([0.3, 0.7, 0.3], True, (1, 1, 0, 1)),                # in and out again
    ([0.3, 0.7, 0.3, 0.7], True, (2, 1, 1, 1)),
    ([0.7, 0.8], True, (1, 0, 1, 1)),                     # appears inside: came in
    ([0.7, 0.8], False, (0, 0, 1, 1)),                    # ... or only moves seen
    ([0.7, 0.3], False, (0, 1, 0, 1)),
    ([0.3, 0.505, 0.495, 0.505, 0.3], True, (0, 0, 0, 0)),  # jitter on the edge
    ([0.3, 0.505, 0.6], True, (1, 0, 1, 1)),              # decided past the margin
    ([0.6, 0.495, 0.3], False, (0, 1, 0, 1)),
])
def test_zone_entries_exits_and_occupancy(ys: list[float], appearances: bool,
                                          expected: tuple[int, ...]) -> None:
    counter = CameraCounter(CAMERA, "s", DEFAULT_GROUPS, appearances=appearances)
    counter, _ = run(frames([(0.3, y) for y in ys]), counter)
    assert now(counter, "floor") == expected
    assert now(counter, "floor", "vehicles") == (0, 0, 0, 0)


@pytest.mark.parametrize(("xs", "area", "expected"), [
    ([0.75, 0.6, 0.45], "door", (1, 0)),           # right to left: a_to_b = in
    ([0.45, 0.75], "door", (0, 1)),                 # b_to_a = out
    ([0.75, 0.45, 0.75], "door", (1, 1)),
    ([0.75, 0.505, 0.75], "door", (0, 0)),          # onto the line and back: nothing
    ([0.75, 0.505, 0.45], "door", (1, 0)),
    ([0.1, 0.3], "short", (0, 0)),                  # past the end of the segment
    ([0.1, 0.3], "door", (0, 0)),
])
def test_line_directions(xs: list[float], area: str, expected: tuple[int, int]) -> None:
    counter, _ = run(frames([(x, 0.2) for x in xs]))
    entries, exits, occupancy, most = now(counter, area)
    assert (entries, exits) == expected
    assert occupancy is None and most is None  # a line has no occupancy


@pytest.mark.parametrize(("cls", "state", "group", "expected"), [
    ("person", "confirmed", "people", (1, 0, 1, 1)),
    ("car", "confirmed", "vehicles", (1, 0, 1, 1)),
    ("bicycle", "confirmed", "vehicles", (1, 0, 1, 1)),
    ("dog", "confirmed", "people", (0, 0, 0, 0)),     # in no group
    ("person", "tentative", "people", (0, 0, 0, 0)),  # not confirmed
    ("person", "lost", "people", (0, 0, 0, 0)),
])
def test_class_groups_and_track_states(cls: str, state: TrackStateName, group: str,
                                       expected: tuple[int, ...]) -> None:
    counter, _ = run(frames([(0.3, 0.3), (0.3, 0.7)], cls=cls, state=state))
    assert now(counter, "floor", group) == expected


def test_occupancy_and_max_over_several_tracks() -> None:
    script = [[obj(1, 0.2, 0.7), obj(2, 0.4, 0.7), obj(3, 0.6, 0.7, cls="truck")],
              [obj(1, 0.2, 0.7), obj(2, 0.4, 0.3), obj(3, 0.6, 0.7, cls="truck")],
              [obj(1, 0.2, 0.7)]]
    counter, _ = run(script)
    assert now(counter, "floor") == (2, 1, 1, 2)
    assert now(counter, "floor", "vehicles") == (1, 0, 0, 1)  # truck not seen: not inside


@pytest.mark.parametrize(("appearances", "expected"), [(True, (1, 1, 0, 1)),
                                                        (False, (0, 0, 0, 1))])
def test_a_track_lost_inside_is_counted_out_when_forgotten(appearances: bool,
                                                           expected: tuple[int, ...]) -> None:
    counter = CameraCounter(CAMERA, "s", DEFAULT_GROUPS, forget_s=10.0,
                            appearances=appearances)
    counter, _ = run(frames([(0.3, 0.7)]), counter)
    run([[]], counter, t0=T0 + 5, seq0=1)
    assert now(counter, "floor")[:2] == (1 if appearances else 0, 0)
    result = counter.update(Tracks(camera_id="cam", seq=2, capture_ts=T0 + 10.5, width=W,
                                   height=H, tracks=[]))
    assert result is not None
    assert [(c.area, c.direction) for c in result.crossings] == (
        [("floor", "out")] if appearances else [])
    assert now(counter, "floor") == expected


@pytest.mark.parametrize(("times", "windows"), [
    ([0.0, 30.0, 59.9], []),                                # one minute: nothing closed
    ([0.0, 30.0, 60.0], [(T0, 2)]),                         # the next minute's first frame
    ([10.0, 200.0], [(T0, 1)]),                             # a gap: one window, no empties
    ([0.0, 61.0, 125.0], [(T0, 1), (T0 + 60, 1)]),
])
def test_windows_close_on_the_first_frame_of_a_later_minute(
        times: list[float], windows: list[tuple[float, int]]) -> None:
    counter = CameraCounter(CAMERA, "s", DEFAULT_GROUPS)
    closed: list[Counts] = []
    for i, t in enumerate(times):
        result = counter.update(Tracks(camera_id="cam", seq=i, capture_ts=T0 + t, width=W,
                                       height=H, tracks=[]))
        assert result is not None
        closed += result.closed
    got = sorted({(c.window_start, c.frames) for c in closed})
    assert got == windows
    assert len(closed) == 3 * len(windows)  # one per area: floor, door, short
    assert all(c.window_end - c.window_start == 60.0 for c in closed)


def test_a_window_holds_what_happened_in_it() -> None:
    # walks into the floor in minute 0, stays into minute 1, leaves in minute 1
    script = frames([(0.3, 0.3), (0.3, 0.7), (0.3, 0.7), (0.3, 0.3)])
    counter = CameraCounter(CAMERA, "s", DEFAULT_GROUPS, forget_s=100.0)
    _, closed = run(script[:2], counter, t0=T0 + 59.0, fps=1.0)  # 59 s, 60 s
    floor = next(c for c in closed if c.area_id == "floor")
    assert (floor.window_start, floor.last_ts, floor.last_seq, floor.site_zone_id) == (
        T0, T0 + 59.0, 0, "hall")
    assert floor.groups["people"] == GroupCounts(entries=0, exits=0, occupancy=0,
                                                 max_occupancy=0)
    assert now(counter, "floor") == (1, 0, 1, 1)  # entered in the new window
    _, closed = run(script[2:], counter, t0=T0 + 119.0, seq0=2, fps=1.0)  # 119 s, 120 s
    floor = next(c for c in closed if c.area_id == "floor")
    assert floor.window_start == T0 + 60
    assert floor.groups["people"] == GroupCounts(entries=1, exits=0, occupancy=1,
                                                 max_occupancy=1)
    assert now(counter, "floor") == (0, 1, 0, 0)  # the new window's max: its own frames


def test_replayed_frames_change_nothing() -> None:
    counter, _ = run(frames([(0.3, 0.3), (0.3, 0.7)]))
    before = counter.to_dict()
    assert counter.update(Tracks(camera_id="cam", seq=1, capture_ts=T0 + 1 / FPS, width=W,
                                 height=H, tracks=frames([(0.3, 0.3)])[0])) is None
    assert counter.to_dict() == before


def test_state_survives_a_json_round_trip() -> None:
    script = frames([(0.75, 0.7), (0.45, 0.7), (0.45, 0.3), (0.75, 0.3), (0.75, 0.8)])
    whole, closed_whole = run(script, fps=0.05)  # 20 s apart: windows close on the way
    half, closed_half = run(script[:2], fps=0.05)
    resumed = CameraCounter(CAMERA, "s", DEFAULT_GROUPS)
    resumed.load(json.loads(json.dumps(half.to_dict())))
    _, closed_rest = run(script[2:], resumed, t0=T0 + 40, seq0=2, fps=0.05)
    assert closed_half + closed_rest == closed_whole
    assert resumed.to_dict() == whole.to_dict()


# --- the stage, with a fake Redis and a dict for its table ---------------------------


class FakePipeline:
    def __init__(self, redis: FakeRedis) -> None:
        self.redis = redis
        self.ops: list[tuple[str, tuple[Any, ...]]] = []

    def set(self, key: str, value: str, ex: int) -> None:
        self.ops.append(("set", (key, value, ex)))

    def hset(self, key: str, field: str, value: str) -> None:
        self.ops.append(("hset", (key, field, value)))

    async def execute(self) -> None:
        if self.redis.failures:
            self.redis.failures -= 1
            raise RedisConnectionError("down")
        for op, args in self.ops:
            if op == "set":
                self.redis.data[args[0]] = args[1]
                self.redis.ttl[args[0]] = args[2]
            else:
                self.redis.hashes.setdefault(args[0], {})[args[1]] = args[2]


class FakeRedis:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.data: dict[str, str] = {}
        self.ttl: dict[str, int] = {}
        self.hashes: dict[str, dict[str, str]] = {}

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self)


def stage_for(camera: Camera, redis: FakeRedis, table: dict[str, Any],
              per_camera: bool = True) -> Counting:
    topology = Topology(sites=TOPOLOGY.sites, cameras=[camera])
    return Counting(topology, redis, table, CountingSettings(), per_camera)  # type: ignore[arg-type]


def feed(stage: Counting, camera: Camera, script: Sequence[Frame], t0: float,
         seq0: int = 0) -> list[Counts]:
    out: list[Counts] = []
    for i, tracks in enumerate(script):
        frame = Tracks(camera_id=camera.id, seq=seq0 + i, capture_ts=t0 + i * 10.0, width=W,
                       height=H, tracks=tracks)
        out += asyncio.run(stage.handle_one((frame, camera)))
    return out


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_stage_writes_closed_windows_to_redis_and_its_table() -> None:
    camera = CAMERA.model_copy(update={"id": "cam-stage"})
    redis, table = FakeRedis(), dict[str, Any]()
    stage = stage_for(camera, redis, table)
    before = sample("argus_counted_total", camera="cam-stage", area="floor", group="people",
                    direction="in")
    # 0 s outside, 10 s inside, ..., 60 s: the window [T0, T0 + 60) closes
    out = feed(stage, camera, frames([(0.3, 0.3), (0.3, 0.7), (0.3, 0.7), (0.3, 0.7),
                                      (0.3, 0.7), (0.3, 0.7), (0.3, 0.7)]), T0)
    assert sorted(c.area_id for c in out) == ["door", "floor", "short"]
    floor = next(c for c in out if c.area_id == "floor")
    assert floor.groups["people"].entries == 1 and floor.groups["people"].max_occupancy == 1
    assert stage.key(floor) == b"s"
    latest = redis.hashes[store.latest_key("s")]
    assert Counts.model_validate_json(latest["cam-stage/floor"]) == floor
    key = store.window_key("s", "cam-stage", "floor", T0)
    assert Counts.model_validate_json(redis.data[key]) == floor
    assert redis.ttl[key] == CountingSettings().redis_ttl_s
    assert table["cam-stage"]["last_ts"] == T0 + 60
    assert sample("argus_counted_total", camera="cam-stage", area="floor", group="people",
                  direction="in") == before + 1
    assert sample("argus_zone_occupancy", camera="cam-stage", zone="floor",
                  group="people") == 1


def test_a_redis_failure_leaves_the_state_as_it_was_for_the_retry() -> None:
    camera = CAMERA.model_copy(update={"id": "cam-retry"})
    redis, table = FakeRedis(failures=1), dict[str, Any]()
    stage = stage_for(camera, redis, table)
    feed(stage, camera, frames([(0.3, 0.3), (0.3, 0.7)]), T0)
    state = json.dumps(table["cam-retry"])
    closing = Tracks(camera_id=camera.id, seq=2, capture_ts=T0 + 61, width=W, height=H,
                     tracks=frames([(0.3, 0.7)])[0])
    with pytest.raises(RedisConnectionError):
        asyncio.run(stage.handle_one((closing, camera)))
    assert json.dumps(table["cam-retry"]) == state
    assert json.dumps(stage.counters["cam-retry"].to_dict()) == state
    out = asyncio.run(stage.handle_one((closing, camera)))  # the runner's retry
    assert next(c for c in out if c.area_id == "floor").groups["people"].entries == 1


def test_the_stage_resumes_from_its_table_after_a_rebalance() -> None:
    camera = CAMERA.model_copy(update={"id": "cam-moved"})
    table: dict[str, Any] = {}
    first = stage_for(camera, FakeRedis(), table)
    feed(first, camera, frames([(0.3, 0.3), (0.3, 0.7)]), T0)
    second = stage_for(camera, FakeRedis(), table)  # another worker took the partition
    out = feed(second, camera, frames([(0.3, 0.3)]), T0 + 60, seq0=2)
    floor = next(c for c in out if c.area_id == "floor").groups["people"]
    assert (floor.entries, floor.max_occupancy) == (1, 1)
    assert now(second.counters["cam-moved"], "floor") == (0, 1, 0, 0)


def test_per_camera_metrics_off_sums_occupancy() -> None:
    redis, table = FakeRedis(), dict[str, Any]()
    cams = [CAMERA.model_copy(update={"id": f"cam-sum-{i}"}) for i in range(2)]
    topology = Topology(sites=TOPOLOGY.sites, cameras=cams)
    stage = Counting(topology, redis, table, CountingSettings(),  # type: ignore[arg-type]
                     per_camera=False)
    for camera in cams:
        feed(stage, camera, [[obj(1, 0.2, 0.7), obj(2, 0.4, 0.7)]], T0)
    assert sample("argus_zone_occupancy", camera="_all", zone="_all", group="people") == 4


# --- the over_occupancy rule on counts ---------------------------------------------


def lobby_counts(max_people: int, window_start: float = T0) -> Counts:
    return Counts(camera_id="cam-lobby", site_id="depot-north", area_type="zone",
                  area_id="lobby-floor", site_zone_id="lobby", window_start=window_start,
                  window_end=window_start + 60, frames=300, last_seq=299,
                  last_ts=window_start + 59.8,
                  groups={"people": GroupCounts(entries=max_people, exits=1, occupancy=2,
                                                max_occupancy=max_people),
                          "vehicles": GroupCounts(entries=0, exits=0, occupancy=0,
                                                  max_occupancy=0)})


@pytest.mark.parametrize(("max_people", "rules"), [(25, ["over_occupancy"]), (19, [])])
def test_the_shipped_over_occupancy_rule(max_people: int, rules: list[str]) -> None:
    topology = load_topology(REPO_ROOT / "config/topology.yaml", REPO_ROOT)
    engine = RuleEngine(load_rules(REPO_ROOT / "config/rules.yaml", topology), topology)
    state: dict[str, Any] = {}
    events = counts_to_video_events(lobby_counts(max_people))
    assert [(e.kind, e.class_name, e.count) for e in events] == [
        ("occupancy", "people", max_people)]
    changes = observe(engine, state, events[0])
    assert changes is not None
    assert [c.alert.rule for c in changes] == rules
    if rules:
        assert changes[0].alert.zone_id == "lobby"
        assert f"{max_people} people at once" in changes[0].alert.title
    assert observe(engine, state, events[0]) is None  # a redelivered window: nothing


def test_lines_and_empty_zones_make_no_occupancy_events() -> None:
    line = lobby_counts(3).model_copy(update={"area_type": "line", "area_id": "lobby-exit"})
    assert counts_to_video_events(line) == []
    assert counts_to_video_events(lobby_counts(0)) == []
