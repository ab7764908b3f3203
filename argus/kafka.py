"""Kafka helpers (kafka-python) shared by the services: a producer and dead letters."""

from __future__ import annotations

import base64
import time
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from argus.log import get_logger
from argus.metrics import DLQ_WRITES
from argus.settings import Settings
from schemas.dlq import MAX_DLQ_PAYLOAD, DeadLetter

log = get_logger(__name__)

class Rejected(Exception):
    """A record a stage refuses; ``reason`` is the dead-letter reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


DLQ_REQUEST_BYTES = 16 * 1024 * 1024
"""Producers must be able to send a dead letter of a maximal frame (``dlq`` topic limit)."""


STOP_FLUSH_S = 6.0
STOP_CLOSE_S = 2.0
"""A service's stop waits at most this long for its producer's flush, then its close (8 s
in all, under the 10 s stop bound even with Kafka down; what is still unsent was never
acknowledged to its sender, who retries): :func:`stop_producer`."""


RECONNECT_BACKOFF_MAX_MS = 5000
"""kafka-python's reconnect delay doubles from 50 ms up to this (its default, 30 s, left a
producer asleep for up to 30 s after the broker was back: docs/reliability.md)."""


def make_producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """A producer sized for frames (idempotent, ``acks=all``, up to ``max_frame_bytes``)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "client_id": "argus",
        "acks": "all",
        "linger_ms": 5,
        "max_request_size": DLQ_REQUEST_BYTES,
        "retries": 5,
        "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
    }
    options.update(overrides)
    return KafkaProducer(**options)


def stop_producer(producer: KafkaProducer) -> None:
    """Flush and close ``producer`` within :data:`STOP_FLUSH_S` + :data:`STOP_CLOSE_S`,
    whether the broker answers or not (a service's stop stays bounded)."""
    try:
        producer.flush(timeout=STOP_FLUSH_S)
    except KafkaError as exc:
        log.warning("producer not flushed at stop: unsent records are dropped",
                    extra={"error": repr(exc), "waited_s": STOP_FLUSH_S})
    producer.close(timeout=STOP_CLOSE_S)


def dead_letter(
    stage: str,
    reason: str,
    error: str,
    payload: bytes,
    *,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    key: bytes | None = None,
    headers: Any = None,
) -> DeadLetter:
    """Build the dead-letter record for a message a stage could not use."""
    pairs = headers.items() if isinstance(headers, dict) else (headers or [])
    return DeadLetter(
        stage=stage,
        reason=reason,
        error=error[:2000],
        source_topic=topic,
        partition=partition,
        offset=offset,
        key_b64=base64.b64encode(key).decode() if key else None,
        headers={
            str(k): (v.decode(errors="replace") if isinstance(v, bytes | bytearray) else str(v))
            for k, v in pairs
        },
        payload_b64=base64.b64encode(payload[:MAX_DLQ_PAYLOAD]).decode(),
        payload_size=len(payload),
        payload_truncated=len(payload) > MAX_DLQ_PAYLOAD,
        ts=time.time(),
    )


def send_dead_letter(producer: KafkaProducer, settings: Settings, letter: DeadLetter) -> None:
    """Publish a dead letter (keyed by stage) and count it."""
    DLQ_WRITES.labels(letter.stage, letter.reason).inc()
    log.warning("dead letter", extra={"stage": letter.stage, "reason": letter.reason,
                                      "error": letter.error, "topic": letter.source_topic})
    producer.send(settings.topic("dlq"), key=letter.stage.encode(), value=letter.to_bytes())
