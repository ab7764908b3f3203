"""Helpers for tests that read and write the real Kafka broker."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from argus.settings import Settings


def consume(settings: Settings, topic: str, min_count: int, timeout_s: float = 30.0,
            where: Callable[[ConsumerRecord], bool] | None = None) -> list[ConsumerRecord]:
    """Read a logical topic (prefix applied) from the beginning until ``min_count`` records
    (that satisfy ``where``, if given) arrived or ``timeout_s`` passed; returns them (maybe
    fewer: assert on it)."""
    return consume_until(settings, topic, lambda records: len(records) >= min_count,
                         timeout_s, where)


def consume_until(settings: Settings, topic: str,
                  done: Callable[[list[ConsumerRecord]], bool], timeout_s: float = 30.0,
                  where: Callable[[ConsumerRecord], bool] | None = None,
                  ) -> list[ConsumerRecord]:
    """Read a logical topic (prefix applied) from the beginning, one consumer polling on,
    until ``done(records so far)`` (those that satisfy ``where``, if given) or ``timeout_s``
    passed; returns the records (``done`` may not hold: assert on it). One poll may return
    only part of what is there, so a test waiting for several records must say which."""
    consumer = KafkaConsumer(
        settings.topic(topic),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=500,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout_s
    try:
        while not done(records) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(r for r in batch if where is None or where(r))
    finally:
        consumer.close()
    return records


def committed_behind(settings: Settings, group: str, topic: str,
                     timeout_s: float = 30.0) -> dict[int, int]:
    """Wait until consumer group ``group`` has committed the end offset of every partition
    of a logical topic (or ``timeout_s`` passed); returns partition → messages not yet
    committed (all zero when it caught up: assert on it)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    name = settings.topic(topic)
    try:
        parts = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name)]
        ends = consumer.end_offsets(parts)
        deadline = time.monotonic() + timeout_s
        behind: dict[int, int] = {}
        while True:
            committed = admin.list_group_offsets([group]).get(group, {})
            behind = {tp.partition: ends[tp] - (committed[tp].offset if tp in committed else 0)
                      for tp in parts if ends[tp]}
            if not any(behind.values()) or time.monotonic() > deadline:
                return behind
            time.sleep(1)
    finally:
        admin.close()
        consumer.close()


def latest_alerts(records: list[ConsumerRecord]) -> dict[str, dict[str, Any]]:
    """The newest version of each alert on records of the ``alerts`` topic, by alert id."""
    out: dict[str, dict[str, Any]] = {}
    for record in records:
        alert = json.loads(record.value)
        if alert["alert_id"] not in out or alert["version"] >= out[alert["alert_id"]]["version"]:
            out[alert["alert_id"]] = alert
    return out
