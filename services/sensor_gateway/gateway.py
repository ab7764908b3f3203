"""The sensor gateway: validate sensor readings, enrich them from the topology, publish.

Three layers, from pure to I/O:

* :func:`to_event` and :class:`Debouncer` are pure logic (unit-tested with tables).
* :class:`SensorPublisher` turns request bytes into ``sensors.events`` records (key = site
  id) and dead-letters every rejected reading (except duplicates, which are only counted).
* :func:`create_app` / :func:`run_http` expose it over HTTP (aiohttp)::

      POST /v1/sensors/events   one JSON reading or a JSON list of readings
      GET  /healthz             the process is alive
      GET  /readyz              Kafka is reachable and ``sensors.events`` has partitions
      GET  /metrics             Prometheus metrics

A request is all-or-nothing: if any reading of a list is rejected, nothing of it is
published, the response names every rejected item, and each rejected item is
dead-lettered. The response comes only after Kafka acknowledged every record.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from kafka import KafkaProducer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from argus.kafka import dead_letter, make_producer, send_dead_letter
from argus.log import get_logger
from argus.metrics import SENSOR_EVENTS, SENSOR_REJECTED
from argus.settings import Settings
from argus.topology import Topology
from schemas.sensors import SensorEvent, SensorReading

log = get_logger(__name__)

STAGE = "sensor_gateway"
EVENTS_TOPIC = "sensors.events"
DEFAULT_MAX_AGE_S = 24 * 3600.0
"""Readings older than this are ``stale`` (replays re-stamp times, so a day is plenty)."""
DEFAULT_MAX_FUTURE_S = 300.0
"""Readings further ahead of the gateway's clock than this are ``future`` (clock skew)."""
DEFAULT_DEBOUNCE_S = 2.0
MAX_BODY_BYTES = 1024 * 1024
ACK_TIMEOUT_S = 10.0
"""How long a publish waits for Kafka to acknowledge its records."""


# --- pure logic -------------------------------------------------------------------


class RejectedReading(Exception):
    """A reading the gateway will not publish; ``reason`` is a short machine-readable cause.

    Reasons: ``malformed`` (not JSON), ``schema`` (not a valid reading), ``unknown_sensor``,
    ``stale``, ``future``. ``fields`` names the offending fields for ``schema``.
    """

    def __init__(self, reason: str, message: str, fields: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.fields = list(fields)


def event_id(sensor_id: str, ts: float, state: str | None) -> str:
    """The deterministic id of a sensor event: the same reading always gets the same id.

    >>> event_id("pir-1", 1700000000.0, "active") == event_id("pir-1", 1700000000.0004, "active")
    True
    """
    key = f"{sensor_id}:{ts:.3f}:{state or ''}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def to_event(
    reading: SensorReading,
    topology: Topology,
    now: float,
    max_age_s: float = DEFAULT_MAX_AGE_S,
    max_future_s: float = DEFAULT_MAX_FUTURE_S,
) -> SensorEvent:
    """Enrich a reading with its sensor's site, zone and type; raise ``RejectedReading``.

    A reading exactly ``max_age_s`` old or exactly ``max_future_s`` ahead is accepted.
    """
    sensor = topology.sensor(reading.sensor_id)
    if sensor is None:
        raise RejectedReading(
            "unknown_sensor", f"unknown sensor {reading.sensor_id!r}: it is not in the topology"
        )
    age = now - reading.ts
    if age > max_age_s:
        raise RejectedReading(
            "stale",
            f"reading of sensor {reading.sensor_id!r} at ts={reading.ts:.3f} is {age:.0f} s old "
            f"(limit {max_age_s:.0f} s)",
        )
    if -age > max_future_s:
        raise RejectedReading(
            "future",
            f"reading of sensor {reading.sensor_id!r} at ts={reading.ts:.3f} is {-age:.0f} s "
            f"in the future (limit {max_future_s:.0f} s; check the sensor's clock)",
        )
    return SensorEvent(
        event_id=event_id(reading.sensor_id, reading.ts, reading.state),
        sensor_id=reading.sensor_id,
        site_id=sensor.site,
        zone_id=sensor.zone,
        type=sensor.type,
        state=reading.state,
        value=reading.value,
        ts=reading.ts,
        battery=reading.battery,
    )


class Debouncer:
    """Drops repeats: the same sensor reporting the same state and value within ``window_s``.

    The window is measured in event time from the last *accepted* event of the sensor, so a
    sensor that keeps repeating itself still gets one event through per window. A change of
    state (or value) always passes. Thread-safe; memory is one entry per known sensor.
    """

    def __init__(self, window_s: float = DEFAULT_DEBOUNCE_S) -> None:
        self.window_s = window_s
        self._last: dict[str, tuple[str | None, float | None, float]] = {}
        self._lock = threading.Lock()

    def accept(self, event: SensorEvent) -> bool:
        """True (and remember the event) if it is new; False if it is a duplicate."""
        with self._lock:
            last = self._last.get(event.sensor_id)
            if last is not None:
                state, value, ts = last
                if (state, value) == (event.state, event.value) and abs(
                    event.ts - ts
                ) < self.window_s:
                    return False
            self._last[event.sensor_id] = (event.state, event.value, event.ts)
            return True

    def forget(self, event: SensorEvent) -> None:
        """Undo ``accept`` for an event that could not be published (so a retry passes)."""
        with self._lock:
            if self._last.get(event.sensor_id) == (event.state, event.value, event.ts):
                del self._last[event.sensor_id]


# --- publishing -------------------------------------------------------------------


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


def _schema_error(exc: ValidationError, prefix: str = "") -> RejectedReading:
    fields: list[str] = []
    parts: list[str] = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]) or "(reading)"
        fields.append(name)
        parts.append(f"{prefix}{name}: {err['msg']}")
    return RejectedReading("schema", "; ".join(parts), fields)


class SensorPublisher:
    """Validates readings and publishes ``SensorEvent`` JSON to ``sensors.events``.

    ``publish(body)`` is synchronous (call it from a thread in async code): it validates the
    whole request, dead-letters rejected readings, drops duplicates, sends the rest keyed
    by site id and waits for Kafka's acknowledgements.
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
        self.clock = clock
        self.ack_timeout_s = ack_timeout_s
        self.topic = settings.topic(EVENTS_TOPIC)

    # the steps, public so that replay can pipeline submits and confirms
    def validate(self, body: bytes) -> list[SensorEvent]:
        """Parse and validate a request body; raises ``BatchRejected`` (after dead-lettering)."""
        try:
            data = json.loads(body, parse_constant=_reject_nan)
        except ValueError as exc:
            error = RejectedReading("malformed", f"the body is not valid JSON: {exc}")
            self._dead_letter(error, body)
            raise BatchRejected([Rejection(None, error)]) from None
        if isinstance(data, list):
            if not data:
                error = RejectedReading("schema", "the list of readings is empty")
                self._dead_letter(error, body)
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
                    reading = SensorReading.model_validate(item)
                except ValidationError as exc:
                    raise _schema_error(exc) from None
                events.append(
                    to_event(reading, self.topology, now, self.max_age_s, self.max_future_s)
                )
            except RejectedReading as error:
                rejections.append(Rejection(index, error))
                payload = body if index is None else json.dumps(item).encode()
                self._dead_letter(error, payload, index)
        if rejections:
            raise BatchRejected(rejections)
        return events

    def submit(self, body: bytes) -> Submission:
        """Validate a request and hand its new events to the producer (no waiting)."""
        submission = Submission()
        for event in self.validate(body):
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
                self._rollback([*submission.events, event])
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
            self._rollback(submission.events)
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

    def publish(self, body: bytes) -> Published:
        """Validate, publish and wait for the acknowledgements (blocking)."""
        return self.confirm(self.submit(body))

    def _rollback(self, events: list[SensorEvent]) -> None:
        for event in events:
            self.debouncer.forget(event)

    def _dead_letter(self, error: RejectedReading, payload: bytes, index: int | None = None
                     ) -> None:
        SENSOR_REJECTED.labels(error.reason).inc()
        detail = error.message if index is None else f"item [{index}]: {error.message}"
        letter = dead_letter(stage=STAGE, reason=error.reason, error=detail, payload=payload)
        try:
            send_dead_letter(self.producer, self.settings, letter)
        except Exception as exc:  # the client still gets its 4xx; the loss is logged
            log.error("sensor.dead_letter_failed", extra={"reason": error.reason,
                                                          "error": str(exc)})


# --- HTTP -------------------------------------------------------------------------

PUBLISHER: web.AppKey[SensorPublisher] = web.AppKey("publisher", SensorPublisher)


def _error(status: int, reason: str, detail: str, **extra: Any) -> web.Response:
    return web.json_response({"error": reason, "detail": detail, **extra}, status=status)


async def _post_events(request: web.Request) -> web.Response:
    publisher = request.app[PUBLISHER]
    too_large = (
        f"the body is larger than {MAX_BODY_BYTES} bytes; send fewer readings per request"
    )
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        SENSOR_REJECTED.labels("too_large").inc()
        return _error(413, "too_large", too_large)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        SENSOR_REJECTED.labels("too_large").inc()
        return _error(413, "too_large", too_large)
    try:
        published = await asyncio.to_thread(publisher.publish, body)
    except BatchRejected as exc:
        status = 400 if exc.reason == "malformed" else 422
        log.info("sensor.rejected", extra={"reason": exc.reason, "detail": str(exc),
                                           "status": status})
        return _error(status, exc.reason, str(exc),
                      errors=[r.as_json() for r in exc.rejections])
    except PublishError as exc:
        return _error(503, "kafka_unavailable", str(exc))
    return web.json_response(
        {"accepted": len(published.event_ids), "event_ids": published.event_ids,
         "duplicates": published.duplicate_ids},
        status=202,
    )


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def _bootstrap_addresses(settings: Settings) -> list[tuple[str, int]]:
    addresses = []
    for server in settings.kafka_bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        if port.isdigit():
            addresses.append((host.strip("[]") or "127.0.0.1", int(port)))
    return addresses


def kafka_reachable(settings: Settings, timeout_s: float = 1.0) -> bool:
    """True if any Kafka bootstrap server accepts a TCP connection (blocking)."""
    for address in _bootstrap_addresses(settings):
        try:
            socket.create_connection(address, timeout=timeout_s).close()
        except OSError:
            continue
        return True
    return False


async def _kafka_reachable(settings: Settings, timeout_s: float = 1.0) -> bool:
    for host, port in _bootstrap_addresses(settings):
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
        except (OSError, TimeoutError):
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False


async def _readyz(request: web.Request) -> web.Response:
    publisher = request.app[PUBLISHER]
    if not await _kafka_reachable(publisher.settings):
        return _error(503, "kafka_unreachable",
                      f"no Kafka bootstrap server answers at {publisher.settings.kafka_bootstrap}")
    try:
        partitions = await asyncio.wait_for(
            asyncio.to_thread(publisher.producer.partitions_for, publisher.topic), 3.0
        )
    except Exception as exc:
        return _error(503, "topic_unavailable",
                      f"no metadata for topic {publisher.topic}: {exc or type(exc).__name__}")
    return web.json_response({"status": "ready", "topic": publisher.topic,
                              "partitions": len(partitions or ())})


async def _metrics(request: web.Request) -> web.Response:
    response = web.Response(body=generate_latest())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Any]
) -> web.StreamResponse:
    """Turn aiohttp's own 4xx (404, 405, ...) into the gateway's JSON error bodies."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        if exc.status >= 400:
            reason = (exc.reason or "error").lower().replace(" ", "_")
            return _error(exc.status, reason, f"{request.method} {request.path}: {exc.reason}")
        raise


def create_app(settings: Settings, topology: Topology, producer: KafkaProducer,
               publisher: SensorPublisher | None = None) -> web.Application:
    """The gateway's aiohttp application (the caller owns the producer)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[_json_errors])
    app[PUBLISHER] = publisher or SensorPublisher(settings, topology, producer)
    app.router.add_post("/v1/sensors/events", _post_events)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    return app


async def run_http(settings: Settings, topology: Topology, host: str, port: int,
                   stop: asyncio.Event | None = None) -> None:
    """Serve the gateway until SIGINT/SIGTERM (or ``stop`` is set), then flush and close."""
    producer = await asyncio.to_thread(make_producer, settings, client_id="argus-sensor-gateway",
                                       max_block_ms=5000)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    runner = web.AppRunner(create_app(settings, topology, producer), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        log.info("sensor_gateway.listening", extra={"host": host, "port": port,
                                                    "topic": settings.topic(EVENTS_TOPIC)})
        await stop.wait()
        log.info("sensor_gateway.stopping")
    finally:
        await runner.cleanup()
        for sig in installed:
            loop.remove_signal_handler(sig)
        await asyncio.to_thread(producer.flush, 10)
        await asyncio.to_thread(producer.close, 10)


__all__ = [
    "BatchRejected",
    "Debouncer",
    "PublishError",
    "Published",
    "RejectedReading",
    "SensorPublisher",
    "Submission",
    "create_app",
    "event_id",
    "kafka_reachable",
    "run_http",
    "to_event",
]
