"""Observability against the running stack: metrics move with the frames, consumer lag
appears and drains, the camera-offline alert expression fires in Prometheus, and every
metric the dashboards and alert rules name is really exported.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
import redis.asyncio as aioredis
import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from prometheus_client import REGISTRY

from argus.metrics import ALL_CAMERAS, serve
from argus.settings import REPO_ROOT, Settings
from argus.stores import alerts as alert_sink
from argus.topology import Camera
from schemas import Alert, Evidence, Severity
from services.frame_grabber.grabber import FrameGrabber
from tests.conftest import free_port, metric_value, scrape
from tests.unit.test_grafana_dashboards import (
    DASHBOARD_FILES,
    PROMETHEUS_BUILTINS,
    exported_names,
    expressions,
    grafana_to_promql,
    load,
    metric_names,
    recorded_names,
)
from tools import stack as embedded

pytestmark = pytest.mark.integration

RULES = REPO_ROOT / "ops" / "prometheus" / "rules" / "argus.rules.yml"
GRABBER_JOB_PORT = 29101
"""The grabber port the embedded Prometheus scrapes (ops/prometheus/prometheus.yml)."""


# --- helpers ----------------------------------------------------------------------------
def wait_for(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def prom_query(settings: Settings, expr: str) -> list[dict[str, object]]:
    """Evaluate an instant query in the embedded Prometheus (asserts it succeeded)."""
    url = (f"http://127.0.0.1:{settings.prometheus_port}/api/v1/query?"
           + urllib.parse.urlencode({"query": expr}))
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    result: list[dict[str, object]] = body["data"]["result"]
    return result


def camera_value(result: list[dict[str, object]], camera: str) -> float | None:
    for series in result:
        if series["metric"].get("camera") == camera:  # type: ignore[attr-defined]
            return float(series["value"][1])  # type: ignore[index]
    return None


def write_clip(path: Path, frames: int, fps: float = 12.0) -> Path:
    """A small synthetic video (a bar moving over a gradient): nothing a detector sees."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (320, 240))
    gradient = np.tile(np.linspace(40, 200, 320, dtype=np.uint8), (240, 1))
    for i in range(frames):
        image = cv2.cvtColor(gradient, cv2.COLOR_GRAY2BGR)
        x = (i * 20) % 300
        image[:, x:x + 20] = (30, 90, 160)
        writer.write(image)
    writer.release()
    return path


def write_topology(path: Path, camera_id: str, source: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "sites": [{"id": "obs-site", "lat": 0.0, "lon": 0.0, "zones": [{"id": "z"}]}],
        "cameras": [{"id": camera_id, "site": "obs-site", "source": str(source), "fps": 5,
                     "loop": True, "realtime": True}],
    }))
    return path


@contextmanager
def grabber_process(settings: Settings, topology: Path, port: int) -> Iterator[int]:
    """``python -m services.frame_grabber`` serving metrics on ``port`` (waits for it)."""
    env = {**os.environ, **settings.to_env(), "ARGUS_TOPOLOGY": str(topology)}
    log_path = settings.stack_dir / f"test-obs-grabber-{port}.log"
    with open(log_path, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.frame_grabber",
                                 "--metrics-port", str(port)], cwd=REPO_ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        up = wait_for(lambda: proc.poll() is None
                      and http_status(f"http://127.0.0.1:{port}/healthz") == 200, 30)
        assert up, f"grabber did not start: {log_path.read_text()[-2000:]}"
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stable_worker_scrape(port: int) -> str:
    """A worker scrape once the detect and zones counters stopped moving (previous
    tests' frames are processed), so the deltas measured next are ours alone."""
    previous = scrape(port)
    for _ in range(40):
        time.sleep(1.0)
        current = scrape(port)
        keys = [("argus_stage_messages_in_total", "detect"),
                ("argus_stage_messages_in_total", "zones")]
        if all(metric_value(current, n, stage=s) == metric_value(previous, n, stage=s)
               for n, s in keys):
            return current
        previous = current
    raise AssertionError("the worker never became idle")


def dlq_total(text: str, stages: tuple[str, ...] | None = None) -> float:
    """Dead letters written, by every stage or by ``stages`` only."""
    return sum(float(line.rpartition(" ")[2]) for line in text.splitlines()
               if line.startswith("argus_dlq_messages_total{")
               and (stages is None or any(f'stage="{s}"' in line for s in stages)))


# --- fixtures ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def obs(stack: Settings) -> Settings:
    """Session settings with a topic sub-prefix of our own (topics created): frames
    published here never reach the session's workers."""
    own = stack.model_copy(update={"topic_prefix": f"{stack.topic_prefix}obs."})
    embedded.create_topics(own)
    return own


@pytest.fixture(scope="module")
def lag_exporter(stack: Settings) -> Iterator[int]:
    """``python -m services.lag_exporter`` polling every second; yields its port."""
    port = free_port()
    log_path = stack.stack_dir / f"test-lag-exporter-{port}.log"
    env = {**os.environ, **stack.to_env()}
    with open(log_path, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.lag_exporter", "--port", str(port),
                                 "--interval", "1"], cwd=REPO_ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        ready = wait_for(lambda: http_status(f"http://127.0.0.1:{port}/readyz") == 200, 30)
        assert ready, f"lag exporter not ready: {log_path.read_text()[-2000:]}"
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- tests ------------------------------------------------------------------------------
def test_metrics_count_every_frame_from_grabber_to_stages(
        stack: Settings, worker: int, lag_exporter: int, tmp_path: Path) -> None:
    frames = 12
    clip = write_clip(tmp_path / "clip.mp4", frames, fps=12.0)
    # cam-e2e is a camera of the session topology, so the detect stage accepts its frames
    camera = Camera(id="cam-e2e", site="site-test", source=str(clip), fps=30, realtime=True)
    before = stable_worker_scrape(worker)
    port = free_port()
    server = serve(port)  # this process is the grabber: scrape it like Prometheus would
    grabber = FrameGrabber([camera], stack)
    try:
        grabber_before = scrape(port)
        grabber.start()
        assert wait_for(lambda: metric_value(scrape(port), "argus_frames_captured_total",
                                             camera="cam-e2e")
                        >= metric_value(grabber_before, "argus_frames_captured_total",
                                        camera="cam-e2e") + 4, 10)
        live = scrape(port)
        assert metric_value(live, "argus_camera_capture_fps", camera="cam-e2e") > 0
        assert metric_value(live, "argus_camera_seconds_since_last_frame", camera="cam-e2e") < 1
        assert grabber.wait(timeout=30), "the clip did not finish"
        grabber.stop()
        after = scrape(port)
    finally:
        grabber.stop()
        server.shutdown()
        server.server_close()

    def grew(name: str, text_before: str, text_after: str, **labels: str) -> float:
        return metric_value(text_after, name, **labels) - metric_value(text_before, name,
                                                                       **labels)

    assert grabber.stats()["cam-e2e"]["published"] == frames
    assert grew("argus_frames_captured_total", grabber_before, after, camera="cam-e2e") == frames
    assert grew("argus_frames_published_total", grabber_before, after, camera="cam-e2e") == frames
    # a camera whose file ended is done: its liveness series go away (no false offline)
    assert 'argus_camera_seconds_since_last_frame{camera="cam-e2e"}' not in after

    assert wait_for(lambda: metric_value(scrape(worker), "argus_stage_messages_in_total",
                                         stage="zones")
                    >= metric_value(before, "argus_stage_messages_in_total", stage="zones")
                    + frames, 60), "the stages did not process every frame"
    time.sleep(1.0)
    now = scrape(worker)
    assert grew("argus_stage_messages_in_total", before, now, stage="detect") == frames
    assert grew("argus_stage_messages_out_total", before, now, stage="detect") == frames
    assert grew("argus_stage_latency_seconds_count", before, now, stage="detect") == frames
    assert grew("argus_stage_latency_seconds_sum", before, now, stage="detect") > 0
    assert grew("argus_stage_batch_size_sum", before, now, stage="detect") == frames
    assert grew("argus_triton_request_seconds_count", before, now, model="detector") == frames
    assert grew("argus_triton_request_seconds_bucket", before, now, model="detector",
                le="+Inf") == frames
    assert grew("argus_stage_messages_in_total", before, now, stage="zones") == frames
    # none of our frames was dead-lettered on its way (other stages may still be finishing
    # earlier tests' records: the session worker is shared)
    frame_path = ("detect", "track", "zones")
    assert dlq_total(now, frame_path) == dlq_total(before, frame_path)

    # the exporter sees the session workers' group caught up on frames.raw
    def caught_up() -> bool:
        return metric_value(scrape(lag_exporter), "argus_kafka_consumer_group_lag",
                            group=stack.app_id, topic=stack.topic("frames.raw")) == 0

    assert f'group="{stack.app_id}"' in scrape(lag_exporter)
    assert wait_for(caught_up, 20)


def test_per_camera_metrics_switch_off_to_one_series(obs: Settings, tmp_path: Path) -> None:
    settings = obs.model_copy(update={"metrics_per_camera": False})
    ids = [f"obs-off-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    cameras = [Camera(id=i, site="site-test", source=str(write_clip(tmp_path / f"{i}.mp4", 6)),
                      fps=30, realtime=False) for i in ids]

    def value(name: str, camera: str) -> float:
        return REGISTRY.get_sample_value(name, {"camera": camera}) or 0.0

    captured, published = (value(n, ALL_CAMERAS) for n in ("argus_frames_captured_total",
                                                           "argus_frames_published_total"))
    grabber = FrameGrabber(cameras, settings)
    grabber.start()
    try:
        assert grabber.wait(timeout=30)
    finally:
        grabber.stop()
    assert value("argus_frames_captured_total", ALL_CAMERAS) - captured == 12
    assert value("argus_frames_published_total", ALL_CAMERAS) - published == 12
    for camera_id in ids:
        assert REGISTRY.get_sample_value("argus_frames_captured_total",
                                         {"camera": camera_id}) is None


def test_consumer_lag_appears_when_a_consumer_stops_and_drains_when_it_restarts(
        stack: Settings, lag_exporter: int) -> None:
    topic = f"{stack.topic_prefix}obs.lag.{uuid.uuid4().hex[:8]}"
    group = f"obs-lag-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap)

    def produce(count: int, start: int) -> None:
        for i in range(start, start + count):
            producer.send(topic, key=f"k{i % 7}".encode(), value=b"x")
        producer.flush()

    def consume_all(expected: int) -> None:
        consumer = KafkaConsumer(topic, bootstrap_servers=stack.kafka_bootstrap, group_id=group,
                                 auto_offset_reset="earliest", enable_auto_commit=False)
        got = 0
        deadline = time.monotonic() + 30
        while got < expected and time.monotonic() < deadline:
            got += sum(len(b) for b in consumer.poll(timeout_ms=500).values())
        consumer.commit()
        consumer.close()
        assert got == expected

    def lag_text() -> str:
        return scrape(lag_exporter)

    def group_lag() -> float:
        return metric_value(lag_text(), "argus_kafka_consumer_group_lag", group=group, topic=topic)

    try:
        produce(30, 0)
        consume_all(30)  # the "stage" runs and keeps up
        assert wait_for(lambda: f'group="{group}"' in lag_text() and group_lag() == 0, 15)

        produce(20, 30)  # the stage is stopped: 20 messages wait
        assert wait_for(lambda: group_lag() == 20, 15), lag_text()
        text = lag_text()
        consumer = KafkaConsumer(bootstrap_servers=stack.kafka_bootstrap)
        partitions = [TopicPartition(topic, p) for p in range(3)]
        ends = consumer.end_offsets(partitions)
        consumer.close()
        committed = admin.list_group_offsets(group)[group]
        per_partition = {tp.partition: metric_value(text, "argus_kafka_consumer_lag", group=group,
                                                    topic=topic, partition=str(tp.partition))
                         for tp in partitions}
        assert per_partition == {tp.partition: ends[tp] - committed[tp].offset
                                 for tp in partitions}
        assert sum(per_partition.values()) == 20

        consume_all(20)  # the stage restarts and drains
        assert wait_for(lambda: group_lag() == 0, 15), lag_text()
    finally:
        producer.close()
        admin.delete_groups([group])
        admin.delete_topics([topic])
        admin.close()
    # the group is gone: its series are removed, not left at their last value
    assert wait_for(lambda: f'group="{group}"' not in lag_text(), 15)


def test_camera_offline_alert_expression_fires_when_the_source_disappears(
        stack: Settings, obs: Settings, tmp_path: Path) -> None:
    if http_status(f"http://127.0.0.1:{GRABBER_JOB_PORT}/healthz"):
        pytest.skip(f"port {GRABBER_JOB_PORT} is in use (a demo grabber is running)")
    rule = next(r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]
                if r.get("alert") == "ArgusCameraOffline")
    match = re.fullmatch(r"(.+>\s*)(\d+)\s*", rule["expr"])
    assert match and int(match.group(2)) == 300, rule["expr"]
    quick = f"{match.group(1)}8"  # the rule's expression with an 8 s threshold
    camera = f"obs-offline-{uuid.uuid4().hex[:8]}"
    clip = write_clip(tmp_path / "clip.mp4", 24)
    topology = write_topology(tmp_path / "topology.yaml", camera, clip)
    selector = f'argus_camera_seconds_since_last_frame{{camera="{camera}"}}'
    with grabber_process(obs, topology, GRABBER_JOB_PORT):
        flowing = wait_for(lambda: (camera_value(prom_query(stack, selector), camera) or 99) < 3,
                           25, 1.0)
        assert flowing, "Prometheus never saw the camera flowing"
        assert camera_value(prom_query(stack, quick), camera) is None
        clip.unlink()  # the source disappears
        fired = wait_for(lambda: camera_value(prom_query(stack, quick), camera) is not None,
                         40, 1.0)
        assert fired, prom_query(stack, selector)
        assert (camera_value(prom_query(stack, quick), camera) or 0) > 8
        assert camera_value(prom_query(stack, rule["expr"]), camera) is None  # not 5 min yet
        reconnects = prom_query(stack, f'argus_source_reconnects_total{{camera="{camera}"}}')
        assert (camera_value(reconnects, camera) or 0) >= 1


def test_dashboards_and_rules_name_only_exported_metrics(
        stack: Settings, obs: Settings, worker: int, lag_exporter: int, tmp_path: Path) -> None:
    camera = f"obs-dash-{uuid.uuid4().hex[:8]}"
    topology = write_topology(tmp_path / "topology.yaml", camera,
                              write_clip(tmp_path / "clip.mp4", 24))
    with grabber_process(obs, topology, free_port()) as port:
        assert wait_for(lambda: f'camera="{camera}"' in scrape(port), 10)
        grabber_text = scrape(port)
        assert http_status(f"http://127.0.0.1:{port}/readyz") == 200
    exporter_text = scrape(lag_exporter)
    assert metric_value(exporter_text, "argus_lag_exporter_last_success_timestamp_seconds") > 0
    assert http_status(f"http://127.0.0.1:{lag_exporter}/healthz") == 200
    with urllib.request.urlopen(
            f"http://127.0.0.1:{stack.triton_metrics_port}/metrics", timeout=5) as response:
        triton_text = response.read().decode()
    scrapes = {"worker": scrape(worker), "grabber": grabber_text,
               "lag-exporter": exporter_text, "triton": triton_text}
    assert "argus_kafka_consumer_lag{" in exporter_text
    assert "argus_build_info{" in grabber_text
    exported = set().union(*(exported_names(t) for t in scrapes.values()))
    known = exported | PROMETHEUS_BUILTINS | recorded_names()

    dashboard_exprs = {e for path in DASHBOARD_FILES for e in expressions(load(path))}
    rule_exprs = {r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"]
                  for r in g["rules"]}
    used = {n for e in dashboard_exprs | rule_exprs for n in metric_names(e)}
    assert len(used) >= 40
    assert used - known == set(), f"named but not exported: {sorted(used - known)}"
    # and Prometheus itself evaluates every dashboard expression
    for expr in sorted(dashboard_exprs):
        if not expr.startswith("label_values("):
            prom_query(stack, grafana_to_promql(expr))


def test_active_alert_gauges_follow_the_alert_sink(stack: Settings, lag_exporter: int) -> None:
    site = f"obs-site-{uuid.uuid4().hex[:6]}"
    now = time.time()
    alerts = [Alert(alert_id=f"{site}-{i}", rule="confirmed_intrusion", title="t",
                    severity=Severity.CRITICAL, site_id=site, zone_id="lobby", lat=51.5,
                    lon=-0.1, first_seen=now, last_seen=now, created_at=now,
                    evidence=[Evidence(source="sensor", event_id=f"e{i}", ts=now,
                                       sensor_id="pir")]) for i in range(2)]

    async def write_then_resolve(resolve: bool) -> None:
        client = aioredis.Redis.from_url(stack.redis_url)
        try:
            for alert in alerts:
                if resolve:
                    await alert_sink.resolve(client, alert.alert_id, "sre-test")
                else:
                    await alert_sink.write_alert(client, alert, ttl_s=120)
        finally:
            await client.aclose()

    def active() -> float | None:
        text = scrape(lag_exporter)
        return metric_value(text, "argus_alerts_active", site=site) if site in text else None

    def critical() -> float:
        return metric_value(scrape(lag_exporter), "argus_alerts_active_by_severity",
                            severity="critical")

    asyncio.run(write_then_resolve(resolve=False))
    assert wait_for(lambda: active() == 2, 15), scrape(lag_exporter)
    assert critical() >= 2
    before = critical()
    asyncio.run(write_then_resolve(resolve=True))
    # resolved alerts leave the active sets; the empty site's series is removed
    assert wait_for(lambda: active() is None, 15), scrape(lag_exporter)
    assert critical() == before - 2
