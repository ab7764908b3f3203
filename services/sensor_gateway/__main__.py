"""Command line of the sensor gateway.

::

    python -m services.sensor_gateway serve [--host H] [--port 29103]
    python -m services.sensor_gateway mqtt [--host 127.0.0.1] [--port 21883]
        [--topic 'argus/sensors/{site}/{sensor_id}'] [--client-id ID] [--share-group G]
    python -m services.sensor_gateway replay --file F [--format csv|kasteren|placelab|uci]
        [--speed S] [--loop [--period P]] [--start UNIX_TS] [--map 24=door-lobby-1 ...]
        [--keep-unmapped]

``serve`` answers ``POST /v1/sensors/events`` and serves ``/metrics``, ``/healthz`` and
``/readyz`` on the same port. ``mqtt`` subscribes to the broker (``--port`` defaults to the
``mqtt_port`` setting) and serves the metrics on ``--metrics-port`` (29108); ``replay``
on ``--metrics-port`` (29104). All stop cleanly on SIGINT/SIGTERM (pending Kafka sends are
flushed).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import signal
import threading
from pathlib import Path
from types import FrameType

from argus.kafka import make_producer, stop_producer
from argus.log import get_logger, setup_logging
from argus.metrics import serve as serve_metrics
from argus.settings import get_settings
from argus.topology import TopologyError, load_topology
from services.sensor_gateway.gateway import (
    DEFAULT_DEBOUNCE_S,
    Debouncer,
    PublishError,
    SensorPublisher,
    kafka_reachable,
    run_http,
)
from services.sensor_gateway.logs import FORMATS, detect_format, read_log
from services.sensor_gateway.mqtt import DEFAULT_TOPIC, MqttOptions, run_mqtt
from services.sensor_gateway.replay import replay

log = get_logger("services.sensor_gateway")

SERVE_PORT = 29103
REPLAY_METRICS_PORT = 29104
MQTT_METRICS_PORT = 29108


def _sensor_mapping(text: str) -> tuple[str, str]:
    key, sep, name = text.partition("=")
    if not sep or not key.strip() or not name.strip():
        raise argparse.ArgumentTypeError(f"expected LOG_ID=SENSOR_ID (e.g. 24=door-lobby-1 or "
                                         f"co2=gas-lobby-1), got {text!r}")
    return key.strip(), name.strip()


def _speed(text: str) -> float:
    try:
        speed = float(text)
    except ValueError:
        speed = math.nan
    if not (speed > 0 and math.isfinite(speed)):
        raise argparse.ArgumentTypeError(f"the speed must be a positive number, got {text!r}")
    return speed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.sensor_gateway",
                                     description="Argus sensor gateway: HTTP, MQTT and replay")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="accept readings over HTTP")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (0.0.0.0 in a container)")
    serve.add_argument("--port", type=int, default=SERVE_PORT)
    serve.add_argument("--metrics-port", type=int, default=None,
                       help="extra metrics/health port (default: /metrics on --port)")

    mq = commands.add_parser("mqtt", help="subscribe to sensor readings on an MQTT broker")
    mq.add_argument("--host", default="127.0.0.1", help="the broker's address")
    mq.add_argument("--port", type=int, default=None,
                    help="the broker's port (default: the mqtt_port setting, 21883)")
    mq.add_argument("--topic", default=DEFAULT_TOPIC,
                    help="topic pattern with {site} and {sensor_id} levels")
    mq.add_argument("--client-id", default="argus-sensor-gateway",
                    help="stable id: the broker keeps this session's messages while away")
    mq.add_argument("--share-group", default=None,
                    help="shared subscription group: gateways of one group split the load")
    mq.add_argument("--metrics-port", type=int, default=MQTT_METRICS_PORT)

    rep = commands.add_parser("replay", help="replay a sensor log on a compressed clock")
    rep.add_argument("--file", type=Path, required=True,
                     help="a log file (a PlaceLab subject folder for placelab)")
    rep.add_argument("--format", choices=FORMATS, default=None,
                     help="log format (default: guessed from the name and header)")
    rep.add_argument("--speed", type=_speed, default=1.0,
                     help="log seconds per wall second (3600 = an hour per second)")
    rep.add_argument("--start", type=float, default=None,
                     help="wall-clock Unix time of offset 0 (default: now)")
    rep.add_argument("--loop", action="store_true", help="repeat the log until stopped")
    rep.add_argument("--period", type=float, default=None,
                     help="loop length in log seconds (default: last offset + 1)")
    rep.add_argument("--map", dest="mapping", type=_sensor_mapping, nargs="+", default=None,
                     metavar="ID=SENSOR",
                     help="map log sensors (kasteren/placelab ids, uci channels) to topology ids")
    rep.add_argument("--keep-unmapped", action="store_true",
                     help="with --map: also replay unmapped sensors under their log names")
    rep.add_argument("--metrics-port", type=int, default=REPLAY_METRICS_PORT)
    return parser


def _serve(args: argparse.Namespace) -> int:
    settings = get_settings()
    topology = load_topology(settings.topology, settings.shared)
    if args.metrics_port is not None and args.metrics_port != args.port:
        serve_metrics(args.metrics_port)
    asyncio.run(run_http(settings, topology, args.host, args.port))
    return 0


def _replay(args: argparse.Namespace) -> int:
    settings = get_settings()
    topology = load_topology(settings.topology, settings.shared)
    fmt = args.format or detect_format(args.file)
    events = read_log(args.file, fmt, dict(args.mapping) if args.mapping else None,
                      args.keep_unmapped)
    unknown = sorted({e.sensor_id for e in events if topology.sensor(e.sensor_id) is None})
    log.info("replay.loaded", extra={"file": str(args.file), "format": fmt,
                                     "events": len(events), "unknown_sensors": unknown})
    if events and len(unknown) == len({e.sensor_id for e in events}):
        raise ValueError(f"no sensor of {args.file} is in the topology {settings.topology} "
                         f"(map log ids with --map 24=door-lobby-1 ...)")
    if unknown:
        log.warning("replay.unknown_sensors", extra={
            "sensors": unknown, "detail": "their events will be dead-lettered (unknown_sensor)"})
    producer = make_producer(settings, client_id="argus-sensor-replay", max_block_ms=10000)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("replay.signal", extra={"signal": signal.Signals(signum).name})
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = serve_metrics(args.metrics_port, ready=lambda: kafka_reachable(settings))
    try:
        # debounce in log time: at speed S, readings a minute apart in the log arrive
        # 60/S s apart and must not be taken for repeats
        debouncer = Debouncer(DEFAULT_DEBOUNCE_S / args.speed)
        publisher = SensorPublisher(settings, topology, producer, debouncer=debouncer)
        replay(events, publisher, speed=args.speed,
               start=args.start, loop=args.loop, period_s=args.period, stop=stop)
    finally:
        server.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop_producer(producer)
    return 0


def _mqtt(args: argparse.Namespace) -> int:
    settings = get_settings()
    topology = load_topology(settings.topology, settings.shared)
    options = MqttOptions(host=args.host, port=args.port or settings.mqtt_port,
                          topic=args.topic, client_id=args.client_id,
                          share_group=args.share_group)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("mqtt.signal", extra={"signal": signal.Signals(signum).name})
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        run_mqtt(settings, topology, options, stop, args.metrics_port)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the gateway CLI; returns the process exit status."""
    args = _parser().parse_args(argv)
    setup_logging()
    try:
        command = {"serve": _serve, "mqtt": _mqtt, "replay": _replay}[args.command]
        return command(args)
    except TopologyError as exc:
        log.error("sensor_gateway.topology", extra={"error": str(exc)})
    except (OSError, ValueError) as exc:
        log.error("sensor_gateway.failed", extra={"error": str(exc)})
    except PublishError as exc:
        log.error("sensor_gateway.kafka", extra={"error": str(exc)})
    except Exception as exc:  # e.g. NoBrokersAvailable when the producer starts
        log.error("sensor_gateway.failed", extra={"error": f"{type(exc).__name__}: {exc}"})
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
