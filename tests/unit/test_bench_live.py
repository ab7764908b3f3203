"""``argus bench live``: the measurement logic (no servers) and the command-line wiring."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition

from argus.settings import Settings
from argus.topology import parse_topology
from tools import bench_lag, bench_live
from tools import bench_measure as m
from tools.bench_table import format_table
from tools.cli import main as cli_main

WORKER_0 = ('argus_stage_messages_in_total{stage="detect"} 10.0\n'
            'argus_stage_messages_out_total{stage="detect"} 10.0\n')
WORKER_1 = ('argus_stage_messages_in_total{stage="detect"} 110.0\n'
            'argus_stage_messages_out_total{stage="detect"} 108.0\n'
            'argus_track_frames_skipped_total{reason="stale"} 2.0\n')
GRABBER_0 = 'argus_frames_published_total{camera="c0"} 5.0\n'
GRABBER_1 = ('argus_frames_published_total{camera="c0"} 105.0\n'
             'argus_frames_dropped_total{camera="c0",reason="buffer_full"} 3.0\n')


def snapshot(t: float, lag: int, worker: str, grabber: str, ticks: int) -> dict[str, Any]:
    return {"t": t, "procs": {"worker": (ticks, 1024 * 100)}, "cpu": (ticks, ticks * 2),
            "lag": {"frames.raw": lag, "total": lag}, "worker": worker, "grabber": grabber}


def test_percentiles_nearest_rank() -> None:
    values = [i / 100 for i in range(1, 101)]  # 10 ms .. 1000 ms
    got = m.percentiles(values)
    assert got == {"n": 100, "p50_ms": 500.0, "p95_ms": 950.0, "p99_ms": 990.0,
                   "max_ms": 1000.0}


@pytest.mark.parametrize(("points", "expected"), [
    ([(0, 5), (10, 5), (20, 5)], 0.0),
    ([(0, 0), (1, 3), (2, 6), (3, 9)], 3.0),
    ([(0, 10), (2, 6)], -2.0),
    ([], 0.0),
])
def test_slope(points: list[tuple[float, float]], expected: float) -> None:
    assert m.slope(points) == pytest.approx(expected)


def test_prom_sum_skips_other_metrics_and_comments() -> None:
    text = ("# TYPE argus_frames_dropped_total counter\n"
            'argus_frames_dropped_total{camera="a",reason="full"} 4.0\n'
            'argus_frames_dropped_total_created{camera="a",reason="full"} 1.7e9\n'
            "argus_other 9\n")
    assert m.prom_sum(text, "argus_frames_dropped_total", "reason") == {"full": 4.0}
    assert m.prom_sum(text, "argus_missing") == {}


def test_verdict_thresholds() -> None:
    assert m.verdict(0.49, 40, 10.0, 1000.0, 0.01) == (True, [])
    ok, reasons = m.verdict(0.5, 41, 10.0, 1000.1, 0.011)
    assert not ok and len(reasons) == 4


def test_topology_is_valid_and_cycles_sources() -> None:
    text = m.topology_yaml("r", 3, 5, ["/v/a.mp4", "/v/b.avi"])
    topology = parse_topology(text, "bench.yaml", {})
    assert [c.source for c in topology.cameras] == ["/v/a.mp4", "/v/b.avi", "/v/a.mp4"]
    assert all(c.realtime and c.loop and c.fps == 5 for c in topology.cameras)
    assert all(z.intrusion and z.site_zone == f"zone-{i}"
               for i, c in enumerate(topology.cameras) for z in c.zones)
    sensor = topology.sensors[0]
    assert (sensor.id, sensor.type, sensor.zone) == ("r-pir-0", "intrusion", "zone-0")


def test_sample_processes_sums_children_but_not_other_roots(tmp_path: Path) -> None:
    def proc(pid: int, ppid: int, ticks: int, rss_kb: int) -> None:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(
            f"{pid} (p) S {ppid} 0 0 0 -1 0 0 0 0 0 {ticks} 0 0 0\n")
        (tmp_path / str(pid) / "status").write_text(f"Name: p\nVmRSS:\t{rss_kb} kB\n")

    proc(10, 1, 100, 1000)   # bench
    proc(11, 10, 50, 2000)   # worker, a child of the bench
    proc(12, 11, 5, 10)      # the worker's own child
    proc(20, 1, 300, 4000)   # triton
    proc(21, 20, 700, 500)   # its backend stub
    got = m.sample_processes({"bench": 10, "worker": 11, "triton": 20, "gone": 99}, tmp_path)
    assert got == {"bench": (100, 1000), "worker": (55, 2010), "triton": (1000, 4500),
                   "gone": (0, 0)}


def test_sample_processes_reads_this_process() -> None:
    got = m.sample_processes({"me": os.getpid()})
    assert got["me"][1] > 0


def test_report_counts_only_the_window() -> None:
    first = snapshot(100.0, 20, WORKER_0, GRABBER_0, 1000)
    last = snapshot(110.0, 20, WORKER_1, GRABBER_1, 1500)
    samples = {"detections": [(99.0, 9.0), (101.0, 0.2), (109.0, 0.4)],
               "tracks": [(102.0, 0.3)], "events.video": [(105.0, 0.5)]}
    posted = {"a": 98.0, "b": 103.0, "c": 108.0}
    alerted = {"a": 98.5, "b": 103.25}
    run = m.report(first, last, [(100.0, 20.0), (105.0, 22.0), (110.0, 20.0)], samples,
                   posted, alerted, group="g")
    assert run["window_s"] == 10.0 and run["input_fps"] == 10.0
    assert run["frames_published"] == 100
    assert run["frames_dropped"] == {"total": 5.0, "by_reason": {
        "buffer_full": 3.0, "track_skipped:stale": 2.0}}
    assert run["stages"] == {"detect": {"in_per_s": 10.0, "out_per_s": 9.8}}
    assert run["latency"]["detections"]["n"] == 2  # the one before the window is dropped
    assert run["latency"]["detections"]["max_ms"] == 400.0
    assert run["latency"]["sensor_to_alert"] == {"n": 1, "p50_ms": 250.0, "p95_ms": 250.0,
                                                 "p99_ms": 250.0, "max_ms": 250.0}
    assert run["sensor"] == {"posted": 2, "alerted": 1}
    assert run["lag"]["slope_per_s"] == 0.0 and run["lag"]["end"]["total"] == 20
    assert run["processes"]["worker"]["rss_mib"] == 100.0
    assert set(run["processes"]) == {"worker", "other processes", "machine (all cores)"}
    # lag flat, latencies small, but 5 of 100 frames dropped or skipped: behind
    assert run["verdict"] == "falls behind" and not run["keeps_up"]
    assert run["verdict_reasons"] == ["5% of frames dropped"]
    table = format_table({**run, "parameters": {"cameras": 1, "fps": 5.0, "warmup_s": 15},
                          "alert_changes": {"confirmed_intrusion:created": 1}})
    for text in ("falls behind (5% of frames dropped)", "sensor_to_alert", "detect", "worker",
                 "buffer_full", "first 15 s after the first detection discarded"):
        assert text in table


def test_cli_routes_bench_live(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main(["bench", "live", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--cameras" in out and "--find-max" in out and "--frames" not in out


def test_cli_bench_live_rejects_a_missing_video(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main(["bench", "live", "--cameras", "1", "--sources", "/nonexistent/x.mp4"])
    assert exc.value.code == 2
    assert "no such video" in capsys.readouterr().err


@pytest.mark.parametrize(("limit", "start", "ran", "best"), [
    (5, 2, [2, 4, 6, 5], 5),             # steps until 6 falls behind, then 5 between 4 and 6
    (11, 2, [2, 4, 6, 8, 12, 10, 11], 11),
    (9, 8, [8, 12, 10, 9], 9),           # --start-cameras 8
    (3, 8, [8, 4, 2, 3], 3),             # the first step fails: halve down from it
    (0, 2, [2, 1], 0),                   # nothing keeps up
    (64, 48, [48, 64], 64),              # every step keeps up
])
def test_find_max_steps_then_halves_the_interval(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, limit: int, start: int,
        ran: list[int], best: int) -> None:
    def fake_run(base: object, cameras: int, *args: object) -> dict[str, Any]:
        done.append(cameras)
        return {"parameters": {"cameras": cameras}, "keeps_up": cameras <= limit}

    done: list[int] = []
    monkeypatch.setattr(bench_live.stack, "up", lambda settings: [])
    monkeypatch.setattr(bench_live, "run_live", fake_run)
    monkeypatch.setattr(bench_live, "format_table", lambda run: "table")
    out = tmp_path / "max.json"
    assert bench_live.main(["--find-max", "--start-cameras", str(start), "--fps", "5",
                            "--sources", __file__, "--json", str(out)]) == 0
    assert done == ran
    assert json.loads(out.read_text())["max_cameras_keeping_up"] == best


class _Meta:
    def __init__(self, offset: int) -> None:
        self.offset = offset


class _Kafka:
    """The Kafka calls ``group_lag`` makes (admin and consumer), on one partition ``tp`` of
    ``frames.raw``: end offset ``end``, committed offset ``committed``."""

    def __init__(self, tp: TopicPartition, end: int, committed: int) -> None:
        self.tp, self.end, self.committed = tp, end, committed

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {self.tp.partition} if topic == self.tp.topic else set()

    def end_offsets(self, parts: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.end for tp in parts}

    def beginning_offsets(self, parts: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 0 for tp in parts}

    def list_group_offsets(self, groups: list[str]) -> dict[str, dict[TopicPartition, _Meta]]:
        return {g: {self.tp: _Meta(self.committed)} for g in groups}


@pytest.mark.parametrize(("end_before", "end", "committed", "lag", "settled"), [
    (100, 140, 100, 40, 0),   # a second of input since the last commit: not behind
    (100, 140, 139, 1, 0),    # just committed
    (100, 140, 90, 50, 10),   # ten records that were there two seconds ago still waiting
])
def test_settled_lag_ignores_what_arrived_since_the_last_commit(
        end_before: int, end: int, committed: int, lag: int, settled: int) -> None:
    settings = Settings(topic_prefix="t.")
    tp = TopicPartition("t.frames.raw", 0)
    kafka: Any = _Kafka(tp, end, committed)
    out = bench_lag.group_lag(kafka, kafka, settings, ["g"], ends_before={tp: end_before})
    assert out["frames.raw"] == lag and out["total"] == lag and out["settled"] == settled
