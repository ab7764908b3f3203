"""Turn request bytes into ``sensors.events`` records: the one path every input takes.

:class:`SensorPublisher` validates a body (one JSON reading or a list), enriches each
reading from the topology, dead-letters every rejected reading with its original bytes,
drops duplicates (counted), tracks each sensor's last-seen time and battery, sends the
rest keyed by site id and waits for Kafka's acknowledgements. HTTP, MQTT and replay call
the same methods, so validation, dead letters, debouncing and metrics are identical.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer
from pydantic import ValidationError

from argus.kafka import dead_letter, send_dead_letter
from argus.log import get_logger
from argus.metrics import SENSOR_EVENTS, SENSOR_REJECTED
from argus.settings import Settings
from argus.topology import Topology
from schemas.sensors import SensorEvent, SensorReading
from services.sensor_gateway.logic import (
    DEFAULT_MAX_AGE_S,
    DEFAULT_MAX_FUTURE_S,
    Debouncer,
    LastSeen,
    Origin,
    RejectedReading,
    apply_origin,
    check_origin_site,
    to_event,
)
from services.sensor_gateway.metrics import SENSOR_BATTERY, SENSOR_LAST_SEEN

log = get_logger(__name__)

STAGE = "sensor_gateway"
EVENTS_TOPIC = "sensors.events"
ACK_TIMEOUT_S = 10.0
"""How long a publish waits for Kafka to acknowledge its records."""


@dataclass
class Rejection:
    """One rejected reading of a request: its index in a list (None for a single reading)."""

    index: int | None
    error: RejectedReading

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reason": self.error.reason, "detail": self.error.message}
        if self.index is not None:
            out["index"] = self.index
        if self.error.fields:
            out["fields"] = self.error.fields
        return out


class BatchRejected(Exception):
    """A request with at least one rejected reading; nothing of it was published."""

    def __init__(self, rejections: list[Rejection]) -> None:
        self.rejections = rejections
        first = rejections[0]
        where = f"item [{first.index}]: " if first.index is not None else ""
        more = f" (and {len(rejections) - 1} more)" if len(rejections) > 1 else ""
        super().__init__(f"{where}{first.error.message}{more}")
        self.reason = first.error.reason


class PublishError(Exception):
    """Kafka did not acknowledge the records in time; the client should retry."""


@dataclass
class Submission:
    """Records handed to the producer, not yet acknowledged."""

    events: list[SensorEvent] = field(default_factory=list)
    duplicates: list[SensorEvent] = field(default_factory=list)
    futures: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class Published:
    """The outcome of an acknowledged request."""

    event_ids: list[str]
    duplicate_ids: list[str]


def _reject_nan(token: str) -> float:
    raise ValueError(f"{token} is not valid JSON")


def _schema_error(exc: ValidationError) -> RejectedReading:
    fields: list[str] = []
    parts: list[str] = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]) or "(reading)"
        fields.append(name)
        parts.append(f"{name}: {err['msg']}")
    return RejectedReading("schema", "; ".join(parts), fields)


class SensorPublisher:
    """Validates readings and publishes ``SensorEvent`` JSON to ``sensors.events``.

    ``publish(body)`` is synchronous (call it from a thread in async code). ``origin``
    (MQTT: the site and sensor the topic names) fills in a missing sensor id and rejects
    readings that contradict it.
    """

    def __init__(
        self,
        settings: Settings,
        topology: Topology,
        producer: KafkaProducer,
        *,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        max_future_s: float = DEFAULT_MAX_FUTURE_S,
        debouncer: Debouncer | None = None,
        clock: Callable[[], float] = time.time,
        ack_timeout_s: float = ACK_TIMEOUT_S,
    ) -> None:
        self.settings = settings
        self.topology = topology
        self.producer = producer
        self.max_age_s = max_age_s
        self.max_future_s = max_future_s
        self.debouncer = debouncer or Debouncer()
        self.last_seen = LastSeen()
        self.clock = clock
        self.ack_timeout_s = ack_timeout_s
        self.topic = settings.topic(EVENTS_TOPIC)

    # the steps, public so that replay and MQTT can pipeline submits and confirms
    def validate(self, body: bytes, origin: Origin | None = None) -> list[SensorEvent]:
        """Parse and validate a request body; raises ``BatchRejected`` (after dead-lettering)."""
        try:
            data = json.loads(body, parse_constant=_reject_nan)
        except ValueError as exc:
            error = RejectedReading("malformed", f"the body is not valid JSON: {exc}")
            self.reject(error, body, origin=origin)
            raise BatchRejected([Rejection(None, error)]) from None
        if isinstance(data, list):
            if not data:
                error = RejectedReading("schema", "the list of readings is empty")
                self.reject(error, body, origin=origin)
                raise BatchRejected([Rejection(None, error)])
            items: list[tuple[int | None, Any]] = list(enumerate(data))
        else:
            items = [(None, data)]
        now = self.clock()
        events: list[SensorEvent] = []
        rejections: list[Rejection] = []
        for index, item in items:
            try:
                try:
                    reading = SensorReading.model_validate(apply_origin(item, origin))
                except ValidationError as exc:
                    raise _schema_error(exc) from None
                event = to_event(reading, self.topology, now, self.max_age_s, self.max_future_s)
                check_origin_site(event, origin)
                events.append(event)
            except RejectedReading as error:
                rejections.append(Rejection(index, error))
                payload = body if index is None else json.dumps(item).encode()
                self.reject(error, payload, index, origin)
        if rejections:
            raise BatchRejected(rejections)
        return events

    def submit(self, body: bytes, origin: Origin | None = None) -> Submission:
        """Validate a request and hand its new events to the producer (no waiting)."""
        submission = Submission()
        for event in self.validate(body, origin):
            self._seen(event)
            if not self.debouncer.accept(event):
                SENSOR_REJECTED.labels("duplicate").inc()
                log.debug("sensor.duplicate", extra={"sensor": event.sensor_id,
                                                     "event_id": event.event_id})
                submission.duplicates.append(event)
                continue
            try:
                future = self.producer.send(
                    self.topic, key=event.site_id.encode(), value=event.to_bytes()
                )
            except Exception as exc:
                self.rollback([*submission.events, event])
                raise PublishError(f"cannot send to {self.topic}: {exc}") from exc
            submission.events.append(event)
            submission.futures.append(future)
        return submission

    def confirm(self, submission: Submission) -> Published:
        """Wait for Kafka to acknowledge a submission; raises ``PublishError``."""
        try:
            for future in submission.futures:
                future.get(timeout=self.ack_timeout_s)
        except Exception as exc:
            self.rollback(submission.events)
            log.error("sensor.publish_failed", extra={"topic": self.topic, "error": str(exc),
                                                      "events": len(submission.events)})
            raise PublishError(f"Kafka did not acknowledge the events: {exc}") from exc
        for event in submission.events:
            SENSOR_EVENTS.labels(event.type.value).inc()
            log.debug("sensor.event", extra={"sensor": event.sensor_id, "site": event.site_id,
                                             "state": event.state, "event_id": event.event_id})
        return Published(
            event_ids=[e.event_id for e in submission.events],
            duplicate_ids=[e.event_id for e in submission.duplicates],
        )

    def publish(self, body: bytes, origin: Origin | None = None) -> Published:
        """Validate, publish and wait for the acknowledgements (blocking)."""
        return self.confirm(self.submit(body, origin))

    def rollback(self, events: list[SensorEvent]) -> None:
        """Forget events that were not acknowledged, so that a retry is not a duplicate."""
        for event in events:
            self.debouncer.forget(event)

    def reject(self, error: RejectedReading, payload: bytes, index: int | None = None,
               origin: Origin | None = None) -> None:
        """Count a rejected reading and dead-letter it with its original bytes."""
        SENSOR_REJECTED.labels(error.reason).inc()
        detail = error.message if index is None else f"item [{index}]: {error.message}"
        headers: Mapping[str, str] = {"origin": origin.channel} if origin else {}
        letter = dead_letter(stage=STAGE, reason=error.reason, error=detail, payload=payload,
                             headers=dict(headers))
        try:
            send_dead_letter(self.producer, self.settings, letter)
        except Exception as exc:  # the client still gets its 4xx; the loss is logged
            log.error("sensor.dead_letter_failed", extra={"reason": error.reason,
                                                          "error": str(exc)})

    def _seen(self, event: SensorEvent) -> None:
        SENSOR_LAST_SEEN.labels(event.sensor_id).set(
            self.last_seen.update(event.sensor_id, event.ts))
        if event.battery is not None:
            SENSOR_BATTERY.labels(event.sensor_id).set(event.battery)
