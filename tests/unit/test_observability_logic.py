"""Pure logic of the observability pieces: lag arithmetic, log-dir parsing, camera
liveness (per camera and aggregated under ``_all``), the metric helpers."""

from __future__ import annotations

import asyncio
import socket
import uuid

import pytest
from kafka import TopicPartition
from prometheus_client import REGISTRY

from argus.metrics import ALL_CAMERAS, camera_label, in_flight, reachable, redis_command
from services.frame_grabber.liveness import CameraClock, Liveness
from services.lag_exporter import PartitionLag, compute_lags, group_totals, parse_log_dirs

T0, T1, T2 = (TopicPartition("frames.raw", p) for p in range(3))
OTHER = TopicPartition("detections", 0)


@pytest.mark.parametrize(
    ("committed", "ends", "starts", "expected"),
    [
        # committed on every partition: end - committed, never negative
        ({"g": {T0: 5, T1: 10}}, {T0: 8, T1: 10}, None, [("g", 0, 3), ("g", 1, 0)]),
        ({"g": {T0: 9}}, {T0: 8}, None, [("g", 0, 0)]),
        # a partition without a commit counts from its start offset, or is skipped
        ({"g": {T0: 5}}, {T0: 8, T1: 30, T2: 4}, {T0: 0, T1: 10, T2: 4},
         [("g", 0, 3), ("g", 1, 20), ("g", 2, 0)]),
        ({"g": {T0: 5, T1: -1}}, {T0: 8, T1: 30}, None, [("g", 0, 3)]),
        # only topics the group committed on; unknown ends (deleted topic) are skipped
        ({"g": {T0: 5}}, {T0: 8, OTHER: 100}, {T0: 0, OTHER: 0}, [("g", 0, 3)]),
        ({"g": {T0: 5}}, {}, None, []),
        # a group that never committed anything is not reported
        ({"g": {T0: -1}}, {T0: 8}, {T0: 0}, []),
        # several groups on one topic, sorted
        ({"b": {T0: 1}, "a": {T0: 7}}, {T0: 8}, None, [("a", 0, 1), ("b", 0, 7)]),
    ],
)
def test_compute_lags(committed: dict[str, dict[TopicPartition, int]],
                      ends: dict[TopicPartition, int], starts: dict[TopicPartition, int] | None,
                      expected: list[tuple[str, int, int]]) -> None:
    got = compute_lags(committed, ends, starts)
    assert [(p.group, p.partition, p.lag) for p in got] == expected


@pytest.mark.parametrize(
    ("lags", "totals"),
    [
        ([], {}),
        ([PartitionLag("g", "t", 0, 0, 4), PartitionLag("g", "t", 1, 2, 3)], {("g", "t"): 5}),
        ([PartitionLag("g", "t", 0, 0, 4), PartitionLag("g", "u", 0, 0, 1),
          PartitionLag("h", "t", 0, 4, 4)], {("g", "t"): 4, ("g", "u"): 1, ("h", "t"): 0}),
    ],
)
def test_group_totals(lags: list[PartitionLag], totals: dict[tuple[str, str], int]) -> None:
    assert group_totals(lags) == totals


def test_parse_log_dirs_sums_partitions_and_skips_errors() -> None:
    responses = [
        {"broker": 1, "log_dirs": [
            {"error_code": 0, "log_dir": "/a", "total_bytes": 1000, "usable_bytes": 250,
             "topics": [{"name": "t", "partitions": [{"partition_size": 10},
                                                     {"partition_size": 5}]},
                        {"name": "u", "partitions": [{"partition_size": 1}]}]},
            {"error_code": 57, "log_dir": "/broken", "topics": []},
        ]},
        {"broker": 2, "log_dirs": [
            {"error_code": 0, "log_dir": "/a", "total_bytes": -1, "usable_bytes": -1,
             "topics": [{"name": "t", "partitions": [{"partition_size": 7}]}]},
        ]},
    ]
    dirs, topics = parse_log_dirs(responses)
    assert [(d.broker, d.path, d.data_bytes, d.total_bytes, d.usable_bytes) for d in dirs] == [
        ("1", "/a", 16, 1000, 250), ("2", "/a", 7, None, None)]
    assert topics == {"t": 22, "u": 1}


@pytest.mark.parametrize(
    ("ticks", "now", "since", "fps"),
    [
        ([], 3.0, 3.0, 0.0),                                  # nothing yet: since start
        ([0.5], 0.8, 0.3, 1.0),                               # young clock: rate over >= 1 s
        ([i * 0.25 for i in range(40)], 10.0, 0.25, 3.9),     # 4 fps; window (0, 10]
        ([i * 0.25 for i in range(40)], 15.0, 5.25, 1.9),     # silent for 5 s: rate decays
        ([i * 0.25 for i in range(40)], 30.0, 20.25, 0.0),    # window empty
    ],
)
def test_camera_clock(ticks: list[float], now: float, since: float, fps: float) -> None:
    t = [0.0]
    clock = CameraClock(window_s=10.0, now=lambda: t[0])
    for at in ticks:
        clock.tick(at)
    t[0] = now
    assert clock.seconds_since_last() == pytest.approx(since)
    assert clock.fps() == pytest.approx(fps)


def test_liveness_aggregates_cameras_sharing_a_label_and_removes_series() -> None:
    t = [0.0]
    label = f"unit-{uuid.uuid4().hex[:6]}"
    fast, silent = (CameraClock(now=lambda: t[0]) for _ in range(2))
    liveness = Liveness()
    liveness.track(label, "cam-a", fast)
    liveness.track(label, "cam-b", silent)
    for i in range(20):
        fast.tick(i * 0.5)
    t[0] = 10.0
    silent.tick(1.0)  # one frame, 9 s ago

    def sample(name: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"camera": label})

    assert sample("argus_camera_seconds_since_last_frame") == pytest.approx(9.0)  # most silent
    assert sample("argus_camera_capture_fps") == pytest.approx(2.0)  # 19 in window + 1 = 20/10
    liveness.untrack(label, "cam-b")
    assert sample("argus_camera_seconds_since_last_frame") == pytest.approx(0.5)
    liveness.untrack(label, "cam-a")
    liveness.untrack(label, "cam-a")  # twice is harmless
    assert sample("argus_camera_seconds_since_last_frame") is None
    assert sample("argus_camera_capture_fps") is None


@pytest.mark.parametrize(("per_camera", "label"), [(True, "cam-7"), (False, ALL_CAMERAS)])
def test_camera_label(per_camera: bool, label: str) -> None:
    assert camera_label("cam-7", per_camera) == label


def test_redis_command_times_async_calls_and_counts_errors() -> None:
    command = f"unit_{uuid.uuid4().hex[:6]}"

    async def ok() -> None:
        with redis_command(command):
            await asyncio.sleep(0.01)

    async def fails() -> None:
        with redis_command(command):
            raise ConnectionError("down")

    asyncio.run(ok())
    with pytest.raises(ConnectionError):
        asyncio.run(fails())
    count = REGISTRY.get_sample_value("argus_redis_command_seconds_count", {"command": command})
    total = REGISTRY.get_sample_value("argus_redis_command_seconds_sum", {"command": command})
    errors = REGISTRY.get_sample_value("argus_redis_errors_total",
                                       {"command": command, "error": "ConnectionError"})
    assert (count, errors) == (2.0, 1.0)
    assert total is not None and total >= 0.01


def test_in_flight_counts_while_the_block_runs() -> None:
    stage = f"unit-{uuid.uuid4().hex[:6]}"

    def value() -> float | None:
        return REGISTRY.get_sample_value("argus_stage_in_flight", {"stage": stage})

    with in_flight(stage, 8):
        assert value() == 8
        with pytest.raises(RuntimeError), in_flight(stage):
            assert value() == 9
            raise RuntimeError
        assert value() == 8
    assert value() == 0


def test_reachable() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert reachable(f"127.0.0.1:{port}")
        assert reachable(f"127.0.0.1:{port},other:9092")
    assert not reachable(f"127.0.0.1:{port}", timeout_s=0.2)
    assert not reachable("no-port-here")
