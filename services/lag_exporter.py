"""Kafka consumer lag and broker disk, computed from the broker, served to Prometheus.

    python -m services.lag_exporter [--port 29105] [--interval 10] [--groups REGEX]

Every ``--interval`` seconds it asks the broker (kafka-python's admin API) for every
consumer group and its committed offsets, and for the end offsets of those partitions,
and exports (see ``argus.metrics``):

- ``argus_kafka_consumer_lag{group,topic,partition}`` — end offset minus committed offset,
  on every partition of each topic the group has committed on (a partition it has not
  committed on yet counts from its start offset: Argus consumers begin at the earliest);
- ``argus_kafka_consumer_group_lag{group,topic}`` — the same summed over partitions;
- ``argus_kafka_log_dir_bytes`` / ``_total_bytes`` / ``_usable_bytes{broker,log_dir}`` and
  ``argus_kafka_topic_bytes{topic}`` — from ``DescribeLogDirs``: data size and free space;
- ``argus_alerts_active{site}`` and ``argus_alerts_active_by_severity{severity}`` — the
  sizes of the alert sink's active sets in Redis (``argus.stores.alert_gauges``), cluster state
  that no single worker owns;
- its own health: ``argus_lag_exporter_errors_total``,
  ``argus_lag_exporter_last_success_timestamp_seconds``, ``argus_lag_exporter_poll_seconds``.

Series are bounded by groups times partitions (plus log dirs and topics); series of groups
or partitions that disappear are removed. ``/readyz`` is 200 while the last successful
poll is younger than three intervals.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import redis
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient
from prometheus_client import REGISTRY

from argus.log import get_logger, setup_logging
from argus.metrics import (
    ALERTS_ACTIVE,
    ALERTS_ACTIVE_SEVERITY,
    KAFKA_CONSUMER_LAG,
    KAFKA_GROUP_LAG,
    KAFKA_LOG_DIR_BYTES,
    KAFKA_LOG_DIR_TOTAL,
    KAFKA_LOG_DIR_USABLE,
    KAFKA_TOPIC_BYTES,
    LAG_EXPORTER_ERRORS,
    LAG_EXPORTER_LAST_SUCCESS,
    LAG_EXPORTER_METRICS,
    LAG_EXPORTER_POLL_SECONDS,
    serve,
)
from argus.settings import Settings, get_settings
from argus.stores.alert_gauges import ActiveAlerts, count_active

log = get_logger(__name__)

DEFAULT_PORT = 29105
DEFAULT_INTERVAL_S = 10.0


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """One group's position on one partition."""

    group: str
    topic: str
    partition: int
    committed: int
    end: int

    @property
    def lag(self) -> int:
        """Messages not yet consumed (never negative: the end is read after the commit)."""
        return max(0, self.end - self.committed)


@dataclass(frozen=True, slots=True)
class LogDir:
    """A broker log directory: partition data size and the volume's size and free space
    (``None`` when the broker does not report them)."""

    broker: str
    path: str
    data_bytes: int
    total_bytes: int | None
    usable_bytes: int | None


@dataclass(slots=True)
class Snapshot:
    """What one poll found."""

    lags: list[PartitionLag] = field(default_factory=list)
    log_dirs: list[LogDir] = field(default_factory=list)
    topic_bytes: dict[str, int] = field(default_factory=dict)
    alerts: ActiveAlerts | None = None
    """Active alerts in Redis (None: Redis could not be read this time)."""


def compute_lags(committed: Mapping[str, Mapping[TopicPartition, int]],
                 ends: Mapping[TopicPartition, int],
                 starts: Mapping[TopicPartition, int] | None = None) -> list[PartitionLag]:
    """Join committed offsets (group → partition → offset) with end offsets.

    A group is reported on every partition of each topic it has committed on. A partition
    it has not committed on yet (offset < 0, or missing) counts from the partition's
    start offset when ``starts`` is given — Argus consumers begin at the earliest offset —
    and is skipped otherwise. Partitions without a known end (deleted topic) are skipped.
    Sorted by group, topic, partition.

    >>> tp0, tp1 = TopicPartition("frames.raw", 0), TopicPartition("frames.raw", 1)
    >>> ends, starts = {tp0: 100, tp1: 30}, {tp0: 0, tp1: 10}
    >>> [(p.partition, p.lag) for p in compute_lags({"g": {tp0: 90}}, ends, starts)]
    [(0, 10), (1, 20)]
    >>> [(p.partition, p.lag) for p in compute_lags({"g": {tp0: 90}}, ends)]
    [(0, 10)]
    """
    out: list[PartitionLag] = []
    for group, offsets in committed.items():
        topics = {tp.topic for tp, offset in offsets.items() if offset >= 0}
        for tp, end in ends.items():
            if tp.topic not in topics:
                continue
            offset = offsets.get(tp, -1)
            if offset < 0:
                if starts is None or tp not in starts:
                    continue
                offset = starts[tp]
            out.append(PartitionLag(group, tp.topic, tp.partition, offset, end))
    return sorted(out, key=lambda p: (p.group, p.topic, p.partition))


def group_totals(lags: Iterable[PartitionLag]) -> dict[tuple[str, str], int]:
    """Lag summed per (group, topic).

    >>> a, b = PartitionLag("g", "t", 0, 5, 7), PartitionLag("g", "t", 1, 0, 3)
    >>> group_totals([a, b])
    {('g', 't'): 5}
    """
    totals: dict[tuple[str, str], int] = {}
    for p in lags:
        totals[(p.group, p.topic)] = totals.get((p.group, p.topic), 0) + p.lag
    return totals


def parse_log_dirs(responses: Iterable[Mapping[str, Any]]) -> tuple[list[LogDir], dict[str, int]]:
    """Log directories and per-topic bytes from ``KafkaAdminClient.describe_log_dirs()``.

    >>> resp = [{"broker": 1, "log_dirs": [{"error_code": 0, "log_dir": "/d",
    ...     "total_bytes": 100, "usable_bytes": 40, "topics": [{"name": "t", "partitions": [
    ...     {"partition_size": 7}, {"partition_size": 3}]}]}]}]
    >>> parse_log_dirs(resp)
    ([LogDir(broker='1', path='/d', data_bytes=10, total_bytes=100, usable_bytes=40)], {'t': 10})
    """
    dirs: list[LogDir] = []
    topics: dict[str, int] = {}
    for response in responses:
        for entry in response.get("log_dirs", []):
            if entry.get("error_code", 0) != 0:
                continue
            data = 0
            for topic in entry.get("topics", []):
                size = sum(int(p.get("partition_size", 0)) for p in topic.get("partitions", []))
                topics[topic["name"]] = topics.get(topic["name"], 0) + size
                data += size
            total, usable = entry.get("total_bytes", -1), entry.get("usable_bytes", -1)
            dirs.append(LogDir(str(response["broker"]), str(entry["log_dir"]), data,
                               total if total is not None and total >= 0 else None,
                               usable if usable is not None and usable >= 0 else None))
    return dirs, topics


class Publisher:
    """Sets the gauges from snapshots and removes the series that are gone."""

    def __init__(self) -> None:
        self._previous: dict[Any, set[tuple[str, ...]]] = {}

    def publish(self, snapshot: Snapshot) -> None:
        """Export ``snapshot`` (values overwritten in place: no gap for scrapes)."""
        series: dict[Any, dict[tuple[str, ...], float]] = {
            KAFKA_CONSUMER_LAG: {(p.group, p.topic, str(p.partition)): p.lag
                                 for p in snapshot.lags},
            KAFKA_GROUP_LAG: {k: float(v) for k, v in group_totals(snapshot.lags).items()},
            KAFKA_LOG_DIR_BYTES: {(d.broker, d.path): d.data_bytes for d in snapshot.log_dirs},
            KAFKA_LOG_DIR_TOTAL: {(d.broker, d.path): d.total_bytes for d in snapshot.log_dirs
                                  if d.total_bytes is not None},
            KAFKA_LOG_DIR_USABLE: {(d.broker, d.path): d.usable_bytes for d in snapshot.log_dirs
                                   if d.usable_bytes is not None},
            KAFKA_TOPIC_BYTES: {(t,): size for t, size in snapshot.topic_bytes.items()},
        }
        if snapshot.alerts is not None:  # unreadable Redis: keep the last values
            series[ALERTS_ACTIVE] = {(site,): n for site, n in snapshot.alerts.by_site.items()}
            series[ALERTS_ACTIVE_SEVERITY] = {(sev,): n for sev, n
                                              in snapshot.alerts.by_severity.items()}
        for gauge, values in series.items():
            for labels, value in values.items():
                gauge.labels(*labels).set(value)
            for gone in self._previous.get(gauge, set()) - set(values):
                gauge.remove(*gone)
            self._previous[gauge] = set(values)


class LagExporter:
    """Polls the broker; one admin client and one consumer, recreated after a failure."""

    def __init__(self, settings: Settings, groups: str = ".*") -> None:
        self.settings = settings
        self.groups = re.compile(groups)
        self.last_success = 0.0
        """Unix time of the last successful poll (0: none yet)."""
        self._redis = redis.Redis.from_url(settings.redis_url, socket_timeout=5,
                                           socket_connect_timeout=5)
        self._admin: KafkaAdminClient | None = None
        self._consumer: KafkaConsumer | None = None

    def _clients(self) -> tuple[KafkaAdminClient, KafkaConsumer]:
        if self._admin is None:
            self._admin = KafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap,
                                           client_id="argus-lag-exporter",
                                           request_timeout_ms=10_000)
        if self._consumer is None:
            self._consumer = KafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap,
                                           client_id="argus-lag-exporter", group_id=None,
                                           enable_auto_commit=False, request_timeout_ms=10_000)
        return self._admin, self._consumer

    def poll(self) -> Snapshot:
        """Read groups, committed offsets, end offsets and log dirs from the broker."""
        admin, consumer = self._clients()
        groups = sorted(g["group_id"] for g in admin.list_groups()
                        if self.groups.fullmatch(g["group_id"]))
        committed: dict[str, dict[TopicPartition, int]] = {}
        if groups:
            offsets = admin.list_group_offsets(groups)
            committed = {group: {tp: meta.offset for tp, meta in by_tp.items()}
                         for group, by_tp in offsets.items()}
        topics = {tp.topic for by_tp in committed.values() for tp, o in by_tp.items() if o >= 0}
        topics &= consumer.topics()
        partitions = [TopicPartition(topic, p) for topic in sorted(topics)
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends: dict[TopicPartition, int] = {}
        starts: dict[TopicPartition, int] = {}
        if partitions:
            ends = dict(consumer.end_offsets(partitions))
            starts = dict(consumer.beginning_offsets(partitions))
        dirs, topic_bytes = parse_log_dirs(admin.describe_log_dirs())
        return Snapshot(compute_lags(committed, ends, starts), dirs, topic_bytes,
                        self.poll_alerts())

    def poll_alerts(self) -> ActiveAlerts | None:
        """Active-alert counts from Redis; a Redis failure is logged and counted but does
        not fail the Kafka poll."""
        try:
            return count_active(self._redis)
        except redis.RedisError as exc:
            LAG_EXPORTER_ERRORS.inc()
            log.warning("active alert count failed", extra={"error": repr(exc)})
            return None

    def close(self) -> None:
        """Close the clients (they are recreated by the next poll)."""
        for client in (self._consumer, self._admin):
            if client is not None:
                try:
                    client.close()
                except Exception:
                    log.debug("closing a Kafka client failed", exc_info=True)
        self._admin = self._consumer = None


def run(exporter: LagExporter, interval_s: float, stop: threading.Event) -> None:
    """Poll and publish every ``interval_s`` until ``stop`` is set; failures are logged,
    counted and retried with fresh clients."""
    publisher = Publisher()
    while not stop.is_set():
        started = time.monotonic()
        try:
            snapshot = exporter.poll()
            publisher.publish(snapshot)
            exporter.last_success = time.time()
            LAG_EXPORTER_LAST_SUCCESS.set(exporter.last_success)
        except Exception as exc:
            LAG_EXPORTER_ERRORS.inc()
            log.warning("lag poll failed; retrying with new clients",
                        extra={"error": repr(exc), "bootstrap": exporter.settings.kafka_bootstrap})
            exporter.close()
        elapsed = time.monotonic() - started
        LAG_EXPORTER_POLL_SECONDS.set(elapsed)
        stop.wait(max(0.0, interval_s - elapsed))


def build_parser() -> argparse.ArgumentParser:
    """The command line of the lag exporter."""
    parser = argparse.ArgumentParser(prog="argus lag-exporter",
                                     description="Export Kafka consumer lag and broker disk "
                                                 "usage to Prometheus.")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port of /metrics, /healthz, /readyz (default {DEFAULT_PORT})")
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S,
                        help=f"seconds between polls (default {DEFAULT_INTERVAL_S:g})")
    parser.add_argument("--groups", default=".*",
                        help="only consumer groups whose id fully matches this regex")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the exporter until SIGINT/SIGTERM; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.interval <= 0:
        build_parser().error("--interval must be > 0")
    setup_logging()
    settings = get_settings()
    for metric in LAG_EXPORTER_METRICS:
        with contextlib.suppress(ValueError):  # already registered (main() run twice)
            REGISTRY.register(metric)
    exporter = LagExporter(settings, args.groups)
    stale_after = 3 * args.interval + 10

    def ready() -> bool:
        return time.time() - exporter.last_success < stale_after

    server = serve(args.port, ready=ready)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    log.info("lag exporter started", extra={"port": args.port, "interval_s": args.interval,
                                            "bootstrap": settings.kafka_bootstrap})
    try:
        run(exporter, args.interval, stop)
    finally:
        exporter.close()
        server.shutdown()
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("lag exporter stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
