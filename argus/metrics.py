"""Every Prometheus metric Argus exports, in one place, and the metrics/health server.

Naming follows Prometheus conventions (``argus_<what>_<unit>``, counters end in
``_total``). Labels are bounded: camera, stage, reason, rule, severity, model —
never a track or an alert id.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, Info, generate_latest

from argus import __version__

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

BUILD_INFO = Info("argus_build", "Argus build information")
BUILD_INFO.info({"version": __version__})

# --- frame grabber --------------------------------------------------------------
FRAMES_CAPTURED = Counter("argus_frames_captured_total", "Frames read from a source", ["camera"])
FRAMES_PUBLISHED = Counter("argus_frames_published_total", "Frames sent to Kafka", ["camera"])
FRAMES_DROPPED = Counter(
    "argus_frames_dropped_total", "Frames dropped before Kafka", ["camera", "reason"]
)
SOURCE_RECONNECTS = Counter(
    "argus_source_reconnects_total", "Attempts to (re)open a camera source", ["camera"]
)
FRAME_QUEUE_DEPTH = Gauge("argus_frame_queue_depth", "Frames waiting to be published", ["camera"])

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
DLQ_WRITES = Counter("argus_dlq_messages_total", "Messages sent to the dead-letter topic",
                     ["stage", "reason"])
TRITON_LATENCY = Histogram(
    "argus_triton_request_seconds", "Triton inference call latency (client side)", ["model"],
    buckets=LATENCY_BUCKETS,
)
CAPTURE_TO_ALERT = Histogram(
    "argus_capture_to_alert_seconds", "From frame capture to the alert it produced",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)

# --- events and alerts ----------------------------------------------------------
VIDEO_EVENTS = Counter("argus_video_events_total", "Video events emitted", ["kind"])
SENSOR_EVENTS = Counter("argus_sensor_events_total", "Sensor events accepted", ["type"])
SENSOR_REJECTED = Counter("argus_sensor_events_rejected_total", "Sensor events rejected",
                          ["reason"])
ALERTS = Counter("argus_alerts_total", "Alerts opened", ["rule", "severity"])
ALERTS_DUPLICATE = Counter("argus_alerts_duplicate_total",
                           "Alerts suppressed because the same id was already written", ["rule"])


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
