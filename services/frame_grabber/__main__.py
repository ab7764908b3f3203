"""``python -m services.frame_grabber``: publish the topology's cameras to ``frames.raw``.

    python -m services.frame_grabber [--topology PATH] [--camera ID ...]
                                     [--metrics-port 29101] [--once]

Runs until SIGINT/SIGTERM (then stops cleanly: buffered frames are published and the
producer is flushed) or until every source has ended (non-looping files). ``--once``
plays every file source a single time even if the topology says ``loop: true``.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path
from types import FrameType

import cv2

from argus.log import get_logger, setup_logging
from argus.metrics import reachable, serve
from argus.settings import get_settings
from argus.sources import source_kind
from argus.topology import TopologyError, load_topology
from services.frame_grabber.grabber import FrameGrabber
from services.frame_grabber.worker import DEFAULT_BUFFER_SIZE, DEFAULT_MAX_IN_FLIGHT

log = get_logger("services.frame_grabber")

DEFAULT_METRICS_PORT = 29101


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of the frame grabber."""
    parser = argparse.ArgumentParser(
        prog="python -m services.frame_grabber",
        description="Read cameras (files, RTSP/HTTP streams, webcams) and publish JPEG frames "
                    "to Kafka (frames.raw, key = camera id).",
    )
    parser.add_argument("--topology", type=Path, default=None,
                        help="topology YAML (default: ARGUS_TOPOLOGY or config/topology.yaml)")
    parser.add_argument("--camera", action="append", default=[], metavar="ID",
                        help="only these cameras (repeatable; default: all)")
    parser.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT,
                        help=f"port of /metrics and /healthz (default {DEFAULT_METRICS_PORT}; "
                             "0 disables)")
    parser.add_argument("--once", action="store_true",
                        help="play file sources once (ignore loop: true) and exit when they end")
    parser.add_argument("--buffer-size", type=int, default=DEFAULT_BUFFER_SIZE,
                        help="frames queued per camera before dropping the oldest")
    parser.add_argument("--max-in-flight", type=int, default=DEFAULT_MAX_IN_FLIGHT,
                        help="unacknowledged Kafka sends per camera")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the frame grabber; returns the process exit status."""
    args = build_parser().parse_args(argv)
    setup_logging()
    # OpenCV and FFmpeg print unstructured warnings for every failed (re)open; the grabber
    # logs each failure itself (JSON, naming the camera), so keep theirs to real errors.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "8")  # AV_LOG_FATAL
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    settings = get_settings()
    topology_path: Path = args.topology or settings.topology
    try:
        topology = load_topology(topology_path, settings.shared)
    except TopologyError as exc:
        log.error("invalid topology", extra={"error": str(exc)})
        return 2

    cameras = list(topology.cameras)
    if args.camera:
        known = {c.id for c in cameras}
        unknown = [c for c in args.camera if c not in known]
        if unknown:
            log.error("unknown camera ids", extra={"unknown": unknown,
                                                    "known": sorted(known),
                                                    "topology": str(topology_path)})
            return 2
        cameras = [c for c in cameras if c.id in set(args.camera)]
    if not cameras:
        log.error("no cameras to grab", extra={"topology": str(topology_path)})
        return 2
    if args.once:
        cameras = [c.model_copy(update={"loop": False}) for c in cameras]
        live = [c.id for c in cameras if source_kind(c.source).live]
        if live:
            log.warning("--once: live cameras never end; stop with SIGINT/SIGTERM",
                        extra={"cameras": live})

    grabber = FrameGrabber(cameras, settings, buffer_size=args.buffer_size,
                           max_in_flight=args.max_in_flight)

    def ready() -> bool:
        """``/readyz``: some camera is active and the Kafka bootstrap server answers."""
        return grabber.running and reachable(settings.kafka_bootstrap)

    server = serve(args.metrics_port, ready=ready) if args.metrics_port else None

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received; stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        grabber.start()
        while not stop.is_set():
            if grabber.wait(timeout=0.5):
                log.info("all camera sources ended")
                break
    except Exception:
        log.exception("frame grabber failed")
        return 1
    finally:
        grabber.stop()
        if server is not None:
            server.shutdown()
            server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("frame grabber exiting", extra={"stats": grabber.stats()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
