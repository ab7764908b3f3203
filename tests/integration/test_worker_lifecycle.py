"""Workers as separate processes on the real stack: bounded, lossless shutdown (backlog,
Triton down, Redis down, faces on), stale frames shed by policy, and stages scaled out with
``--stages`` (two detect workers, one of them killed mid-clip)."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from argus.kafka import make_producer
from argus.settings import Settings
from pipelines.app import group_id
from pipelines.worker import EXIT_STOP_DEADLINE
from schemas import Detections, Tracks
from schemas.detections import Box
from schemas.tracks import Track, Velocity
from tests.conftest import free_port, metric_value, scrape, start_worker
from tests.integration.test_detect_stage import pets_frames
from tests.integration.test_track_stage import send_frames
from tests.kafka_utils import committed_behind, consume_until, latest_alerts
from tests.tcp_proxy import TcpProxy
from tools import stack as embedded
from tools.servers import Kafka

pytestmark = pytest.mark.integration

STOP_WITHIN_S = 10.0


class Workers:
    """Worker processes on topics of their own; every one is killed at the end."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, stages: str = "", **env: str) -> tuple[subprocess.Popen[bytes], int]:
        proc, port = start_worker(self.settings, *(["--stages", stages] if stages else []),
                                  env=env)
        self.procs.append(proc)
        return proc, port

    def log_tail(self) -> str:
        path = self.settings.stack_dir / f"test-worker-{self.settings.app_id}.log"
        return path.read_text()[-3000:] if path.exists() else ""


@pytest.fixture()
def workers(stack: Settings) -> Iterator[Workers]:
    tag = uuid.uuid4().hex[:8]
    settings = stack.model_copy(update={"topic_prefix": f"w{tag}.",
                                        "app_id": f"argus-life-{tag}"})
    pool = Workers(settings)
    with embedded.own_topics(settings):
        yield pool
        for proc in pool.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def stop_time(proc: subprocess.Popen[bytes]) -> float:
    """Seconds from SIGTERM to exit (killed after 30 s: the assertion then fails)."""
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    return time.monotonic() - started


def detections_for(settings: Settings, camera: str, seqs: set[int],
                   timeout_s: float = 120) -> set[int]:
    records = consume_until(
        settings, "detections",
        lambda rs: seqs <= {Detections.model_validate_json(r.value).seq for r in rs},
        timeout_s, where=lambda r: r.key == camera.encode())
    return {Detections.model_validate_json(r.value).seq for r in records}


def detect_backlog(workers: Workers, frames: int) -> tuple[subprocess.Popen[bytes], list[int]]:
    """A detect worker with ``frames`` frames of cam-test sent at once, a few of them
    already detected (the rest in flight or queued); returns it and the frames' seqs."""
    settings = workers.settings
    seqs = list(range(frames))
    proc, _ = workers.start("detect")
    send_frames(settings, "cam-test", pets_frames(settings, frames), seqs, time.time())
    consume_until(settings, "detections", lambda rs: len(rs) >= 3, 60)
    return proc, seqs


def test_stop_under_backlog_is_bounded_and_loses_nothing(workers: Workers) -> None:
    """SIGTERM with a frames backlog in flight: the worker exits within seconds, and a new
    worker detects every frame (what was in flight was not committed)."""
    settings = workers.settings
    proc, seqs = detect_backlog(workers, 60)
    assert stop_time(proc) <= STOP_WITHIN_S, workers.log_tail()
    workers.start("detect")
    assert detections_for(settings, "cam-test", set(seqs)) >= set(seqs), workers.log_tail()


def test_stop_while_triton_is_unreachable(workers: Workers) -> None:
    """Triton down: the stage retries (nothing dead-lettered), SIGTERM still stops it within
    seconds, and the frames are detected once a worker reaches Triton again."""
    settings = workers.settings
    jpegs = pets_frames(settings, 5)
    proc, port = workers.start("detect", ARGUS_TRITON_GRPC_PORT=str(free_port()))
    send_frames(settings, "cam-test", jpegs, list(range(5)), time.time())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not metric_value(
            scrape(port), "argus_stage_errors_total", stage="detect", kind="triton"):
        time.sleep(0.5)
    assert metric_value(scrape(port), "argus_stage_errors_total", stage="detect", kind="triton")
    assert metric_value(scrape(port), "argus_stage_in_flight", stage="detect") >= 1
    assert stop_time(proc) <= STOP_WITHIN_S, workers.log_tail()
    workers.start("detect")
    assert detections_for(settings, "cam-test", set(range(5))) >= set(range(5))


def test_stop_while_redis_is_unreachable(workers: Workers) -> None:
    """Redis down under the correlate stage: the alert write is retried, SIGTERM stops the
    worker within seconds, and a worker with Redis back writes the alert (not lost)."""
    settings = workers.settings
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    proc, port = workers.start("correlate", ARGUS_REDIS_URL=dead_redis)
    producer = make_producer(settings)
    now = time.time()
    # the shipped rule `panic_button` (config/rules.yaml) fires on one panic event
    reading = {"schema_version": 1, "event_id": f"panic-{uuid.uuid4().hex[:8]}",
               "sensor_id": "panic-lobby-test", "site_id": "site-test", "zone_id": "lobby",
               "type": "panic", "state": "pressed", "ts": now}
    producer.send(settings.topic("sensors.events"), key=b"site-test",
                  value=json.dumps(reading).encode())
    producer.flush()
    producer.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not metric_value(
            scrape(port), "argus_stage_errors_total", stage="correlate", kind="redis"):
        time.sleep(0.5)
    assert metric_value(scrape(port), "argus_stage_errors_total", stage="correlate",
                        kind="redis"), workers.log_tail()
    assert stop_time(proc) <= STOP_WITHIN_S, workers.log_tail()
    workers.start("correlate")
    alerts = consume_until(settings, "alerts", lambda rs: len(rs) >= 1, 60)
    assert alerts, workers.log_tail()


def test_stop_with_the_faces_stage_on(workers: Workers) -> None:
    """The faces stage on (a watchlist key set; its watchlist follower is a thread) and a
    person track in flight: SIGTERM still stops the worker within seconds."""
    settings = workers.settings
    key = base64.b64encode(os.urandom(32)).decode()
    proc, port = workers.start("faces", ARGUS_FACE_KEY=key, ARGUS_FACES_TRACK_INTERVAL_S="0")
    now = time.time()
    person = Track(track_id=1, class_id=0, class_name="person",
                   box=Box(x1=0.4, y1=0.2, x2=0.6, y2=0.9), velocity=Velocity(vx=0, vy=0),
                   age=5, state="confirmed", first_seen=now - 1, last_seen=now, score=0.9)
    producer = make_producer(settings)
    for seq in range(5):
        message = Tracks(camera_id="cam-faces", seq=seq, capture_ts=now + seq * 0.2,
                         width=640, height=480, tracks=[person])
        producer.send(settings.topic("tracks"), key=b"cam-faces", value=message.to_bytes())
    producer.flush()
    producer.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not metric_value(
            scrape(port), "argus_stage_messages_in_total", stage="faces"):
        time.sleep(0.3)
    assert metric_value(scrape(port), "argus_stage_messages_in_total", stage="faces")
    assert stop_time(proc) <= STOP_WITHIN_S, workers.log_tail()


def test_stale_frames_are_skipped_and_counted(workers: Workers) -> None:
    """A frame older than ARGUS_DETECT_MAX_AGE_S is not detected; it is counted per camera
    and the worker goes on with current frames."""
    settings = workers.settings
    jpegs = pets_frames(settings, 4)
    _, port = workers.start("detect", ARGUS_DETECT_MAX_AGE_S="5")
    send_frames(settings, "cam-test", jpegs[:2], [0, 1], time.time() - 120)  # two minutes old
    send_frames(settings, "cam-test", jpegs[2:], [2, 3], time.time())
    assert detections_for(settings, "cam-test", {2, 3}) == {2, 3}
    assert metric_value(scrape(port), "argus_frames_skipped_total", camera="cam-test",
                        reason="stale") == 2
    assert metric_value(scrape(port), "argus_stage_skipped_total", stage="detect",
                        reason="stale") == 2


def test_two_detect_workers_one_killed_mid_clip(workers: Workers) -> None:
    """Two ``--stages detect`` workers share the frames; one ``--stages track`` worker
    tracks. ``kill -9`` of a detect worker mid-clip: every frame of both cameras is
    still detected and tracked (its partitions move to the other worker)."""
    settings = workers.settings
    jpegs = pets_frames(settings, 40)
    first, _ = workers.start("detect")
    workers.start("detect")
    workers.start("track")
    cameras = ["cam-test", "cam-pets"]
    start = time.time()
    for camera in cameras:
        send_frames(settings, camera, jpegs[:20], list(range(20)), start)
    consume_until(settings, "detections", lambda rs: len(rs) >= 5, 60)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    for camera in cameras:
        send_frames(settings, camera, jpegs[20:], list(range(20, 40)), start + 2.0)
    for camera in cameras:
        assert detections_for(settings, camera, set(range(40))) >= set(range(40)), camera
    records = consume_until(settings, "tracks", lambda rs: len(
        {(r.key, Tracks.model_validate_json(r.value).seq) for r in rs}) >= 80, 120)
    seen = {(r.key, Tracks.model_validate_json(r.value).seq) for r in records}
    for camera in cameras:
        assert {s for k, s in seen if k == camera.encode()} >= set(range(40)), camera


PANIC_SITES = {"site-test": "lobby", "site-faces": "entrance", "site-behaviour": "walkway",
               "site-counting": "hall"}


def send_panics(settings: Settings, round_: str, ts: float) -> dict[str, str]:
    """One panic event per site (the shipped rule ``panic_button`` alerts on each);
    returns site → event id."""
    producer = make_producer(settings)
    ids = {}
    for site, zone in PANIC_SITES.items():
        ids[site] = f"panic-{round_}-{site}-{uuid.uuid4().hex[:6]}"
        reading = {"schema_version": 1, "event_id": ids[site], "sensor_id": f"panic-{site}",
                   "site_id": site, "zone_id": zone, "type": "panic", "state": "pressed",
                   "ts": ts}
        producer.send(settings.topic("sensors.events"), key=site.encode(),
                      value=json.dumps(reading).encode())
    producer.flush()
    producer.close()
    return ids


def test_two_correlate_workers_one_killed_no_alert_lost_or_duplicated(
        workers: Workers) -> None:
    """Two ``--stages correlate`` workers share four sites; after the first panic of each
    site has made its alert, the worker that handled most of them is killed (``kill -9``),
    then the second panics arrive. The other worker takes its sites over with their state
    (the rule engine's table): every site ends with exactly one alert (one id) holding both
    panics once each, count 2."""
    settings = workers.settings
    first = workers.start("correlate")
    second = workers.start("correlate")
    now = time.time()
    round1 = send_panics(settings, "r1", now)
    created = consume_until(settings, "alerts", lambda rs: {
        json.loads(r.value)["site_id"] for r in rs} >= set(PANIC_SITES), 90)
    assert {json.loads(r.value)["site_id"] for r in created} >= set(PANIC_SITES), \
        workers.log_tail()
    opened = [(metric_value(scrape(port), "argus_alerts_total", rule="panic_button",
                            severity="critical"),
               proc) for proc, port in (first, second)]
    victim = max(opened, key=lambda item: item[0])[1]  # it holds those sites' state
    assert sum(count for count, _ in opened) == len(PANIC_SITES), opened
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    round2 = send_panics(settings, "r2", now + 5.0)

    def both_panics(records: list[Any]) -> bool:
        seen = {e["event_id"] for a in latest_alerts(records).values() for e in a["evidence"]}
        return seen >= set(round1.values()) | set(round2.values())

    records = consume_until(settings, "alerts", both_panics, 120)
    alerts = latest_alerts(records)
    by_site: dict[str, list[str]] = {}
    for alert_id, alert in alerts.items():
        by_site.setdefault(alert["site_id"], []).append(alert_id)
    assert {s: len(ids) for s, ids in by_site.items()} == dict.fromkeys(PANIC_SITES, 1), (
        by_site, workers.log_tail())
    for site, (alert_id,) in by_site.items():
        evidence = [e["event_id"] for e in alerts[alert_id]["evidence"]]
        assert sorted(evidence) == sorted([round1[site], round2[site]]), (site, evidence)
        assert alerts[alert_id]["count"] == 2, (site, alerts[alert_id]["count"])


def test_triton_outage_mid_stream_leaves_no_partition_stuck(workers: Workers) -> None:
    """Triton cut for 10 s while frames stream (through a proxy, so the shared server stays
    up), then back: every frame is detected, the group's committed offsets on ``frames.raw``
    reach the end offsets and ``in_flight`` returns to 0 (no record left unacknowledged)."""
    settings = workers.settings
    proxy = TcpProxy(settings.triton_grpc_port)
    proxy.up()
    try:
        _, port = workers.start("detect", ARGUS_TRITON_GRPC_PORT=str(proxy.port))
        jpegs = pets_frames(settings, 40)
        start = time.time()
        send_frames(settings, "cam-test", jpegs[:20], list(range(20)), start)
        consume_until(settings, "detections", lambda rs: len(rs) >= 3, 60)
        proxy.cut()
        send_frames(settings, "cam-pets", jpegs[20:], list(range(20, 40)), start + 2.0)
        time.sleep(10)
        assert metric_value(scrape(port), "argus_stage_errors_total", stage="detect",
                            kind="triton"), workers.log_tail()
        proxy.up()
        assert detections_for(settings, "cam-test", set(range(20))) >= set(range(20))
        assert detections_for(settings, "cam-pets", set(range(20, 40))) >= set(range(20, 40))
        behind = committed_behind(settings, group_id(settings, ["detect"]), "frames.raw")
        assert not any(behind.values()), (behind, workers.log_tail())
        assert metric_value(scrape(port), "argus_stage_in_flight", stage="detect") == 0
    finally:
        proxy.cut()


@pytest.fixture()
def private_kafka(workers: Workers, tmp_path: Path) -> Iterator[tuple[Workers, Kafka]]:
    """A Kafka broker of this test's own (the session's broker stays up for the others),
    with the ``workers`` pool pointed at it; stopped at the end."""
    settings = workers.settings.model_copy(update={
        "stack_dir": tmp_path, "kafka_bootstrap": f"127.0.0.1:{free_port()}",
        "kafka_controller_port": free_port()})
    broker = Kafka(settings)
    broker.start()
    try:
        broker.wait_healthy()
        embedded.create_topics(settings)
        workers.settings = settings
        yield workers, broker
    finally:
        for proc in workers.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        broker.stop()


def test_stop_while_kafka_is_down_is_bounded_and_loses_nothing(
        private_kafka: tuple[Workers, Kafka]) -> None:
    """Kafka stopped under a worker with a frames backlog: SIGTERM ends it within the stop
    deadline (pipelines/worker.py) instead of minutes, and once Kafka is back a new worker
    detects every frame (what was in flight was not committed)."""
    workers, broker = private_kafka
    settings = workers.settings
    proc, seqs = detect_backlog(workers, 40)
    broker.stop()
    time.sleep(2)
    assert stop_time(proc) <= STOP_WITHIN_S, workers.log_tail()
    assert proc.returncode in (0, EXIT_STOP_DEADLINE), (proc.returncode, workers.log_tail())
    broker.start()
    broker.wait_healthy()
    workers.start("detect")
    assert detections_for(settings, "cam-test", set(seqs)) >= set(seqs), workers.log_tail()


def some_detected(seqs: set[int]) -> Callable[[list[Any]], bool]:
    """A ``consume_until`` condition: three of ``seqs`` detected."""
    return lambda rs: len({Detections.model_validate_json(r.value).seq for r in rs} & seqs) >= 3


def test_kill_and_restart_under_backlog_commits_to_the_end(workers: Workers) -> None:
    """``kill -9`` with a backlog and an immediate restart as the same static member (what a
    supervisor does), three times: every frame is detected and the group's committed offset
    on ``frames.raw`` reaches the end within seconds each time. Before the worker stopped the
    flow and sought before resuming its partitions (pipelines/recovery.py), records fetched
    during the seek left Faust's offset bookkeeping wrong after about half such restarts: the
    partition's commit crawled or stood still until the next rebalance."""
    settings = workers.settings
    group = settings.app_id  # the whole pipeline, as shipped: its tables make the restart
    jpegs = pets_frames(settings, 40)  # restore changelogs, which widened the window
    proc, _ = workers.start()
    for round_ in range(3):
        seqs = list(range(40 * round_, 40 * (round_ + 1)))
        send_frames(settings, "cam-test", jpegs, seqs, time.time())
        consume_until(settings, "detections", some_detected(set(seqs)), 60)
        proc.kill()
        proc.wait(10)
        proc, _ = workers.start()
        assert detections_for(settings, "cam-test", set(seqs)) >= set(seqs), workers.log_tail()
        behind = committed_behind(settings, group, "frames.raw", timeout_s=15)
        assert not any(behind.values()), (round_, behind, workers.log_tail())
