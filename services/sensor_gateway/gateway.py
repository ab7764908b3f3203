"""The sensor gateway's HTTP input (aiohttp), and the gateway's public names.

The layers, from pure to I/O:

* :mod:`~services.sensor_gateway.logic`: :func:`to_event`, :class:`Debouncer`,
  :class:`LastSeen` and the MQTT origin checks, pure logic (unit-tested with tables);
* :mod:`~services.sensor_gateway.publisher`: :class:`SensorPublisher` turns request bytes
  into ``sensors.events`` records (key = site id) and dead-letters every rejected reading
  (except duplicates, which are only counted): HTTP, MQTT and replay all go through it;
* this module exposes it over HTTP (:func:`create_app` / :func:`run_http`)::

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
import signal
import socket
from collections.abc import Callable
from typing import Any

from aiohttp import web
from kafka import KafkaProducer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from argus.kafka import make_producer, stop_producer
from argus.log import get_logger
from argus.metrics import SENSOR_REJECTED
from argus.settings import Settings
from argus.topology import Topology
from services.sensor_gateway.logic import (
    DEFAULT_DEBOUNCE_S,
    DEFAULT_MAX_AGE_S,
    DEFAULT_MAX_FUTURE_S,
    Debouncer,
    LastSeen,
    Origin,
    RejectedReading,
    event_id,
    to_event,
)
from services.sensor_gateway.publisher import (
    EVENTS_TOPIC,
    STAGE,
    BatchRejected,
    Published,
    PublishError,
    Rejection,
    SensorPublisher,
    Submission,
)

log = get_logger(__name__)

MAX_BODY_BYTES = 1024 * 1024


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
        await asyncio.to_thread(stop_producer, producer)


__all__ = [
    "DEFAULT_DEBOUNCE_S",
    "DEFAULT_MAX_AGE_S",
    "DEFAULT_MAX_FUTURE_S",
    "EVENTS_TOPIC",
    "MAX_BODY_BYTES",
    "PUBLISHER",
    "STAGE",
    "BatchRejected",
    "Debouncer",
    "LastSeen",
    "Origin",
    "PublishError",
    "Published",
    "RejectedReading",
    "Rejection",
    "SensorPublisher",
    "Submission",
    "create_app",
    "event_id",
    "kafka_reachable",
    "run_http",
    "to_event",
]
