"""Every Prometheus metric Argus exports, in one place, and the metrics/health server.

Naming follows Prometheus conventions (``argus_<what>_<unit>``, counters end in
``_total``, durations in seconds, sizes in bytes). Labels are bounded: camera, stage,
reason, kind, rule, severity, model, site, command, Kafka group/topic/partition — never
a track, a frame or an alert id. ``docs/operations.md`` has the table of every metric,
the alert rules built on them and the PromQL that answers the usual questions.

Cameras are the only label that grows with the city: set ``ARGUS_METRICS_PER_CAMERA=false``
and every per-camera metric carries ``camera="_all"`` instead (see :func:`camera_label`).

Every process serves ``/metrics``, ``/healthz`` (alive) and ``/readyz`` (its
dependencies are reachable) with :func:`serve`.
"""

from __future__ import annotations

import platform
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, Info, generate_latest

from argus import __version__

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REDIS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
CAPTURE_TO_ALERT_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
"""5 s is a bucket bound on purpose: the capture-to-alert SLO counts alerts within 5 s."""

ALL_CAMERAS = "_all"
"""The camera label of every per-camera metric when per-camera metrics are switched off."""

BUILD_INFO = Info("argus_build", "Argus build information (version, Python)")
BUILD_INFO.info({"version": __version__, "python": platform.python_version()})

# --- frame grabber (label camera, or "_all") --------------------------------------
FRAMES_CAPTURED = Counter("argus_frames_captured_total", "Frames read from a source", ["camera"])
FRAMES_PUBLISHED = Counter("argus_frames_published_total", "Frames sent to Kafka", ["camera"])
FRAMES_DROPPED = Counter(
    "argus_frames_dropped_total", "Frames dropped before Kafka", ["camera", "reason"]
)
SOURCE_RECONNECTS = Counter(
    "argus_source_reconnects_total", "Attempts to (re)open a camera source", ["camera"]
)
FRAME_QUEUE_DEPTH = Gauge("argus_frame_queue_depth", "Frames waiting to be published", ["camera"])
FRAME_SENDS_IN_FLIGHT = Gauge(
    "argus_frame_sends_in_flight", "Frames sent to Kafka and not yet acknowledged", ["camera"]
)
CAMERA_SECONDS_SINCE_FRAME = Gauge(
    "argus_camera_seconds_since_last_frame",
    "Seconds since the camera's last captured frame (since start if none yet; with "
    "camera=\"_all\": the most silent camera)",
    ["camera"],
)
CAMERA_CAPTURE_FPS = Gauge(
    "argus_camera_capture_fps",
    "Frames captured per second over the last 10 s (with camera=\"_all\": summed)",
    ["camera"],
)

# --- Kafka producers --------------------------------------------------------------
KAFKA_PRODUCE_ERRORS = Counter(
    "argus_kafka_produce_errors_total",
    "Kafka sends that failed after the client's retries (topic is the logical name)",
    ["component", "topic"],
)

# --- stream stages --------------------------------------------------------------
STAGE_IN = Counter("argus_stage_messages_in_total", "Messages consumed by a stage", ["stage"])
STAGE_OUT = Counter("argus_stage_messages_out_total", "Messages produced by a stage", ["stage"])
STAGE_LATENCY = Histogram(
    "argus_stage_latency_seconds",
    "Time a stage spends on one message (per micro-batch item)",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
STAGE_BATCH = Histogram(
    "argus_stage_batch_size", "Messages per micro-batch", ["stage"], buckets=(1, 2, 4, 8, 16, 32)
)
STAGE_IN_FLIGHT = Gauge(
    "argus_stage_in_flight", "Messages a stage has taken from Kafka and not finished", ["stage"]
)
STAGE_ERRORS = Counter(
    "argus_stage_errors_total",
    "Processing errors by kind: triton, redis, kafka, dlq_send, internal (a message may "
    "also be dead-lettered; infrastructure errors are retried)",
    ["stage", "kind"],
)
STAGE_SKIPPED = Counter(
    "argus_stage_skipped_total",
    "Records a stage left alone on purpose (e.g. stale frames), acknowledged, not errors",
    ["stage", "reason"],
)
FRAMES_SKIPPED = Counter(
    "argus_frames_skipped_total",
    "Frames the detect stage did not run the detector on (stale: older than "
    "ARGUS_DETECT_MAX_AGE_S when taken from Kafka: the pipeline is behind)",
    ["camera", "reason"],
)
FRAME_AGE = Gauge(
    "argus_frame_age_seconds",
    "Age (now - capture time) of the camera's latest frame when the detect stage took it: "
    "how far behind live the pipeline is (with camera=\"_all\": the latest of any camera)",
    ["camera"],
)
FRAMES_CARRIED = Counter(
    "argus_detect_frames_carried_total",
    "Frames the detect stage's motion gate found still (ARGUS_DETECT_MOTION_GATE): not sent "
    "to the detector, they carry the detections of the camera's last detected frame",
    ["camera"],
)
DLQ_WRITES = Counter("argus_dlq_messages_total", "Messages sent to the dead-letter topic",
                     ["stage", "reason"])
TRITON_LATENCY = Histogram(
    "argus_triton_request_seconds", "Triton inference call latency (client side)", ["model"],
    buckets=LATENCY_BUCKETS,
)
CAPTURE_TO_ALERT = Histogram(
    "argus_capture_to_alert_seconds", "From frame capture to the alert it produced",
    buckets=CAPTURE_TO_ALERT_BUCKETS,
)

# --- events and alerts ----------------------------------------------------------
VIDEO_EVENTS = Counter("argus_video_events_total", "Video events emitted", ["kind"])
SENSOR_EVENTS = Counter("argus_sensor_events_total", "Sensor events accepted", ["type"])
SENSOR_REJECTED = Counter("argus_sensor_events_rejected_total", "Sensor events rejected",
                          ["reason"])
FACES = Counter("argus_faces_total", "Faces seen by the faces stage "
                "(matched, unmatched, low_quality, suppressed)", ["outcome"])
PLATES = Counter("argus_plates_total", "Vehicles looked at by the plate stage (read, unread, "
                 "no_plate, no_frame), stills read whole for want of a vehicle "
                 "(whole_photo) and plates published (published, hotlist_hit)",
                 ["outcome"])
CORRELATION_DUPLICATES = Counter(
    "argus_correlation_duplicate_events_total",
    "Events the correlate stage had seen before (at-least-once redelivery), ignored",
    ["source"])
TRACK_FRAMES_SKIPPED = Counter(
    "argus_track_frames_skipped_total",
    "Frames the tracker did not apply (stale: not newer than the camera's last frame)",
    ["reason"])
LINE_CROSSINGS = Counter(
    "argus_line_crossings_total",
    "Tracks crossing a tripwire, by direction (a_to_b, b_to_a); every crossing, inside its "
    "schedule or not. Line ids are per camera: with per-camera metrics off, camera and line "
    "are both \"_all\"",
    ["camera", "line", "direction"])
ZONE_OCCUPANCY = Gauge(
    "argus_zone_occupancy",
    "Confirmed tracks of a class group (people, vehicles) inside a camera zone in the camera's "
    "latest frame (counting stage). Zone ids are per camera: with per-camera metrics off, "
    "camera and zone are \"_all\" and the value is summed over the worker's cameras",
    ["camera", "zone", "group"])
COUNTED = Counter(
    "argus_counted_total",
    "Tracks of a class group counted into (direction=in) or out of (out) a camera zone or "
    "across a line (in = a_to_b) by the counting stage. With per-camera metrics off, camera "
    "and area are \"_all\"",
    ["camera", "area", "group", "direction"])
ALERTS = Counter("argus_alerts_total", "Alerts opened", ["rule", "severity"])
ALERTS_UPDATED = Counter("argus_alerts_updated_total",
                         "Open alerts updated (repeated trigger, escalation)", ["rule", "severity"])
ALERTS_RESOLVED = Counter("argus_alerts_resolved_total", "Alerts resolved", ["rule", "severity"])
ALERTS_DUPLICATE = Counter("argus_alerts_duplicate_total",
                           "Alerts suppressed because the same id was already written", ["rule"])
ALERTS_ACTIVE = Gauge("argus_alerts_active",
                      "Active (open or acknowledged) alerts in Redis per site; exported by the "
                      "lag exporter", ["site"])
ALERTS_ACTIVE_SEVERITY = Gauge("argus_alerts_active_by_severity",
                               "Active alerts in Redis per severity; exported by the lag exporter",
                               ["severity"])

# --- Redis clients --------------------------------------------------------------
REDIS_LATENCY = Histogram(
    "argus_redis_command_seconds", "Redis command (or pipeline) latency, client side",
    ["command"], buckets=REDIS_BUCKETS,
)
REDIS_ERRORS = Counter("argus_redis_errors_total", "Redis commands that raised",
                       ["command", "error"])

# --- Logging ----------------------------------------------------------------------
LOG_REPEATS_SUPPRESSED = Counter(
    "argus_log_repeats_suppressed_total",
    "Log lines of a client library (Kafka, Redis, Triton, MQTT) left out because the same "
    "line was written less than a minute before (argus.log.RepeatLimiter)", ["logger"])

# --- Kafka broker, from the lag exporter (services.lag_exporter) ----------------------
KAFKA_CONSUMER_LAG = Gauge(
    "argus_kafka_consumer_lag",
    "Messages between a group's committed offset and the partition's end offset",
    ["group", "topic", "partition"],
)
KAFKA_GROUP_LAG = Gauge("argus_kafka_consumer_group_lag",
                        "argus_kafka_consumer_lag summed over a topic's partitions",
                        ["group", "topic"])
KAFKA_LOG_DIR_BYTES = Gauge("argus_kafka_log_dir_bytes",
                            "Bytes of partition data in a broker log directory",
                            ["broker", "log_dir"])
KAFKA_LOG_DIR_TOTAL = Gauge("argus_kafka_log_dir_total_bytes",
                            "Size of the volume holding a broker log directory",
                            ["broker", "log_dir"])
KAFKA_LOG_DIR_USABLE = Gauge("argus_kafka_log_dir_usable_bytes",
                             "Free bytes on the volume holding a broker log directory",
                             ["broker", "log_dir"])
KAFKA_TOPIC_BYTES = Gauge("argus_kafka_topic_bytes", "Bytes a topic holds on the brokers",
                          ["topic"])
# The exporter's own health: unregistered here (other processes would export zeros),
# registered by services.lag_exporter when it starts.
LAG_EXPORTER_ERRORS = Counter("argus_lag_exporter_errors_total",
                              "Lag exporter polls that failed", registry=None)
LAG_EXPORTER_LAST_SUCCESS = Gauge("argus_lag_exporter_last_success_timestamp_seconds",
                                  "Unix time of the lag exporter's last successful poll",
                                  registry=None)
LAG_EXPORTER_POLL_SECONDS = Gauge("argus_lag_exporter_poll_seconds",
                                  "Duration of the lag exporter's last poll", registry=None)
LAG_EXPORTER_METRICS = (LAG_EXPORTER_ERRORS, LAG_EXPORTER_LAST_SUCCESS, LAG_EXPORTER_POLL_SECONDS)


def camera_label(camera_id: str, per_camera: bool | None = None) -> str:
    """The ``camera`` label value for ``camera_id``: itself, or ``"_all"`` when per-camera
    metrics are off (``per_camera`` defaults to the ``metrics_per_camera`` setting).

    >>> camera_label("cam-1", True), camera_label("cam-1", False)
    ('cam-1', '_all')
    """
    if per_camera is None:
        from argus.settings import get_settings

        per_camera = get_settings().metrics_per_camera
    return camera_id if per_camera else ALL_CAMERAS


@contextmanager
def redis_command(command: str) -> Iterator[None]:
    """Time one Redis command or pipeline (sync or async code) and count its errors.

    ``command`` is an operation name (``hsetnx``, ``write_alert``), never a key::

        with redis_command("exists"):
            found = await client.exists(key)
    """
    started = time.perf_counter()
    try:
        yield
    except Exception as exc:
        REDIS_ERRORS.labels(command, type(exc).__name__).inc()
        raise
    finally:
        REDIS_LATENCY.labels(command).observe(time.perf_counter() - started)


@contextmanager
def in_flight(stage: str, count: int = 1) -> Iterator[None]:
    """Count ``count`` messages in ``argus_stage_in_flight{stage}`` while the block runs."""
    gauge = STAGE_IN_FLIGHT.labels(stage)
    gauge.inc(count)
    try:
        yield
    finally:
        gauge.dec(count)


def reachable(address: str, timeout_s: float = 1.0) -> bool:
    """Whether a TCP connection to ``host:port`` (or the first of ``a:1,b:2``) opens —
    the cheap dependency check behind ``/readyz``."""
    host, _, port = address.split(",")[0].strip().rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


class _Handler(BaseHTTPRequestHandler):
    ready: Callable[[], bool] = staticmethod(lambda: True)

    def do_GET(self) -> None:
        if self.path.startswith("/metrics"):
            body, ctype, code = generate_latest(), CONTENT_TYPE_LATEST, 200
        elif self.path.startswith("/healthz"):
            body, ctype, code = b"ok\n", "text/plain", 200
        elif self.path.startswith("/readyz"):
            ok = type(self).ready()
            body, ctype, code = (b"ready\n", "text/plain", 200) if ok else (
                b"not ready\n", "text/plain", 503)
        else:
            body, ctype, code = b"not found\n", "text/plain", 404
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def serve(port: int, ready: Callable[[], bool] | None = None, host: str | None = None
          ) -> ThreadingHTTPServer:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on host:port in a daemon thread
    (host defaults to the ``metrics_host`` setting, 127.0.0.1)."""
    from argus.settings import get_settings

    handler = type("Handler", (_Handler,), {"ready": staticmethod(ready or (lambda: True))})
    server = ThreadingHTTPServer((host or get_settings().metrics_host, port), handler)
    threading.Thread(target=server.serve_forever, name=f"metrics:{port}", daemon=True).start()
    return server
