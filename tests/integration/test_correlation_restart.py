"""Correlation state survives a worker restart in the middle of a window (real Kafka, Redis).

The sensor half of ``confirmed_intrusion`` goes to one worker; once its state is in the
changelog and its offset committed, that worker is stopped and a new one started; the
video half then makes exactly one alert (Redis and the ``alerts`` topic, count 1).

The workers here run on topics, a consumer group and a topology of their own (one site,
one camera, one intrusion sensor), so they never see the session worker's events. The
helpers are shared with ``test_commands.py`` and ``test_mqtt_to_alert.py``.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from kafka import KafkaAdminClient, TopicPartition
from kafka.producer.future import RecordMetadata

from argus.kafka import make_producer
from argus.settings import REPO_ROOT, Settings
from argus.stores import alerts as alert_sink
from schemas import Alert, Box, SensorEvent, VideoEvent
from services.sensor_gateway.logic import event_id
from tests.conftest import metric_value, scrape, start_worker
from tests.kafka_utils import consume
from tools import stack as embedded

pytestmark = pytest.mark.integration

TOPOLOGY = """\
sites:
  - id: {site}
    name: Private test site
    lat: 48.85
    lon: 2.35
    zones: [{{id: lobby, name: Lobby}}]
cameras:
  - id: {site}-cam
    site: {site}
    source: "0"   # no grabber: the tests produce the video events
    zones:
      - id: lobby-floor
        site_zone: lobby
        polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]
        classes: [person]
sensors:
  - id: {site}-pir
    site: {site}
    zone: lobby
    type: intrusion
"""


@dataclass
class Private:
    """Settings with topics, consumer group and topology of their own, and the workers
    started on them (stopped at the end)."""

    settings: Settings
    site: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    app_ids: list[str] = field(default_factory=list)

    @property
    def sensor(self) -> str:
        return f"{self.site}-pir"

    @property
    def camera(self) -> str:
        return f"{self.site}-cam"

    @property
    def log_path(self) -> Path:
        return self.settings.stack_dir / f"test-worker-{self.settings.app_id}.log"

    def log_tail(self) -> str:
        return self.log_path.read_text()[-3000:] if self.log_path.exists() else ""

    def start_worker(self, settings: Settings | None = None) -> int:
        """Start ``python -m pipelines`` on these settings (or ``settings``, e.g. another
        consumer group); returns its metrics port."""
        proc, port = start_worker(settings or self.settings, log_path=self.log_path)
        self.procs.append(proc)
        self.app_ids.append((settings or self.settings).app_id)
        self.ports.append(port)
        return port

    def stop_workers(self) -> None:
        """Stop every worker (SIGTERM: faust commits and leaves the group), kill laggards."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.fixture(scope="module")
def private(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Private]:
    yield from private_env(stack, tmp_path_factory, "rs")


def private_env(stack: Settings, tmp_path_factory: pytest.TempPathFactory, tag: str,
                topology: str = TOPOLOGY) -> Iterator[Private]:
    """A :class:`Private` environment (site ``<tag>-<hex>``, on ``topology`` with ``{site}``
    filled in); stops its workers and removes their Faust data at the end (``app_ids``:
    other consumer groups the test used)."""
    run = uuid.uuid4().hex[:8]
    site = f"{tag}-{run}"
    path = tmp_path_factory.mktemp(tag) / "topology.yaml"
    path.write_text(topology.format(site=site))
    # the session's Redis database: every key here is unique to this run (site, alert and
    # command ids) and expires within an hour
    settings = stack.model_copy(update={"topic_prefix": f"{tag}{run}.",
                                        "app_id": f"argus-{tag}-{run}", "topology": path,
                                        "alert_ttl_s": 3600})
    embedded.create_topics(settings)
    env = Private(settings, site)
    try:
        yield env
    finally:
        env.stop_workers()
        with contextlib.suppress(Exception):
            embedded.delete_topics(settings, env.app_ids)
        for app_id in {settings.app_id, *env.app_ids}:
            for folder in (settings.stack_dir / "faust" / f"{app_id}-data",
                           REPO_ROOT / f"{app_id}-data"):
                shutil.rmtree(folder, ignore_errors=True)


def sensor_event(env: Private, ts: float, state: str = "active") -> SensorEvent:
    return SensorEvent(event_id=event_id(env.sensor, ts, state), sensor_id=env.sensor,
                       site_id=env.site, zone_id="lobby", type="intrusion", state=state, ts=ts)


def person_event(env: Private, ts: float, seq: int) -> VideoEvent:
    return VideoEvent(event_id=f"{env.camera}:lobby-floor:zone_intrusion:{seq}",
                      kind="zone_intrusion", camera_id=env.camera, site_id=env.site,
                      zone_id="lobby-floor", site_zone_id="lobby", ts=ts, seq=seq,
                      class_name="person", score=0.9,
                      box=Box(x1=0.4, y1=0.4, x2=0.5, y2=0.8), count=1)


def send(settings: Settings, topic: str, event: SensorEvent | VideoEvent) -> RecordMetadata:
    """Produce one event keyed by its site and wait for the broker's ack."""
    producer = make_producer(settings)
    try:
        return producer.send(settings.topic(topic), key=event.site_id.encode(),
                             value=event.to_bytes()).get(timeout=10)
    finally:
        producer.close(5)


def wait_for(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.3
             ) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


def active_alerts(settings: Settings, site: str) -> list[Alert]:
    db = redis.Redis.from_url(settings.redis_url)
    ids = [i.decode() if isinstance(i, bytes) else str(i)
           for i in db.zrange(alert_sink.site_active_key(site), 0, -1)]
    return [Alert.model_validate_json(db.hget(alert_sink.alert_key(i), "json") or b"")
            for i in ids]


def on_topic(settings: Settings, topic: str, key: bytes, min_count: int = 1,
             timeout_s: float = 10.0) -> list[bytes]:
    """The values of ``topic`` under ``key`` (waits for ``min_count``, then returns all)."""
    return [r.value for r in consume(settings, topic, min_count, timeout_s,
                                     where=lambda r: r.key == key)]


def committed_past(settings: Settings, topic: str, meta: RecordMetadata) -> bool:
    """Whether the workers' consumer group committed an offset past ``meta``'s record."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        offsets = admin.list_group_offsets(settings.app_id).get(settings.app_id, {})
    finally:
        admin.close()
    committed = offsets.get(TopicPartition(settings.topic(topic), meta.partition))
    return committed is not None and committed.offset > meta.offset


def in_changelog(settings: Settings, needle: str) -> bool:
    """Whether the correlation table's changelog holds a state that mentions ``needle``."""
    topic = f"{settings.app_id}-correlation-state-changelog"
    records = consume(settings.model_copy(update={"topic_prefix": ""}), topic, 10**6,
                      timeout_s=2)
    return any(needle.encode() in (r.value or b"") for r in records)


@pytest.mark.timeout(180)
def test_a_restart_mid_window_still_makes_the_alert_once(private: Private) -> None:
    settings, site = private.settings, private.site
    private.start_worker()
    fired = time.time()
    sensor = sensor_event(private, fired)
    meta = send(settings, "sensors.events", sensor)
    # the sensor half is in the table's changelog and its offset is committed: the next
    # worker cannot get it from sensors.events again, only from the changelog
    assert wait_for(lambda: in_changelog(settings, sensor.event_id), 60), private.log_tail()
    assert wait_for(lambda: committed_past(settings, "sensors.events", meta), 30)
    assert active_alerts(settings, site) == []

    private.stop_workers()
    assert private.procs[0].returncode is not None
    port = private.start_worker()
    # 12 s of event time later, within the rule's 30 s window
    person = person_event(private, fired + 12.0, seq=7)
    send(settings, "events.video", person)

    assert wait_for(lambda: len(active_alerts(settings, site)) >= 1, 60), private.log_tail()
    time.sleep(1.5)  # a second alert would land now
    [alert] = active_alerts(settings, site)
    assert (alert.rule, alert.zone_id, alert.count, alert.version) == (
        "confirmed_intrusion", "lobby", 1, 1)
    assert [(e.source, e.event_id) for e in alert.evidence] == [
        ("sensor", sensor.event_id), ("video", person.event_id)]
    [value] = on_topic(settings, "alerts", alert.alert_id.encode())
    published = Alert.model_validate_json(value)
    assert (published.alert_id, published.count, published.change.value) == (
        alert.alert_id, 1, "created")
    # the new worker never saw the sensor event again (it came from the changelog)
    assert metric_value(scrape(port), "argus_correlation_duplicate_events_total",
                        source="sensors.events") == 0
    assert metric_value(scrape(port), "argus_alerts_total", rule="confirmed_intrusion",
                        severity="high") == 1
