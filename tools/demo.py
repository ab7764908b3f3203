"""``make demo``: the embedded stack, the workers, a real video and sensor replay, and
each alert printed as it arrives.

Starts (as child processes): the stream workers, the sensor gateway's HTTP endpoint, the
frame grabber (cameras from the topology, real-time), a replay of
``config/demo-sensors.csv``, the Kafka lag exporter and the alert API with its operations
console (a fresh demo operator key each run, printed with the console's URL); then listens
on Redis pub/sub for alerts. Stops after ``--duration`` seconds, or on Ctrl-C, prints the people
and vehicle counts of the latest closed minute of every camera area (from Redis), and
shuts everything down cleanly.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import redis

from argus.log import get_logger
from argus.settings import REPO_ROOT, Settings
from argus.stores import alerts as alert_sink
from argus.stores import counts as count_store
from schemas.counts import Counts
from tools import anomaly_demo, face_demo, plate_demo, stack

log = get_logger(__name__)


def format_alert(alert: dict[str, object]) -> str:
    """One readable line per alert change (created, updated, acknowledged, resolved).

    >>> format_alert({"alert_id": "a1", "rule": "r", "severity": "high", "site_id": "s",
    ...               "zone_id": "z", "camera_id": "c", "last_seen": 0.0, "change": "created",
    ...               "version": 1, "count": 1})
    '1970-01-01T00:00:00Z  HIGH      created  r  site=s zone=z camera=c  id=a1 v1 x1'
    >>> print(format_alert({"alert_id": "a1", "rule": "r", "severity": "low", "site_id": "s",
    ...                     "zone_id": "z", "last_seen": 0.0, "title": "Unusual activity"}))
    1970-01-01T00:00:00Z  LOW       created  r  site=s zone=z camera=-  id=a1 v1 x1
        Unusual activity
    """
    when = datetime.fromtimestamp(float(str(alert["last_seen"])), UTC)
    line = (f"{when.strftime('%Y-%m-%dT%H:%M:%SZ')}  {str(alert['severity']).upper():<8}  "
            f"{alert.get('change', 'created')!s:<7}  {alert['rule']}  "
            f"site={alert['site_id']} zone={alert['zone_id']} "
            f"camera={alert.get('camera_id') or '-'}  id={alert['alert_id']} "
            f"v{alert.get('version', 1)} x{alert.get('count', 1)}")
    return line + (f"\n    {alert['title']}" if alert.get("title") else "")


def format_counts(area: str, counts: Counts) -> str:
    """One line per camera area: its latest closed window, the groups that were seen.

    >>> from schemas.counts import GroupCounts
    >>> format_counts("cam-lobby/lobby-floor", Counts(camera_id="cam-lobby", site_id="s",
    ...     area_type="zone", area_id="lobby-floor", window_start=120.0, window_end=180.0,
    ...     frames=300, last_seq=1, last_ts=179.9, groups={
    ...     "people": GroupCounts(entries=3, exits=2, occupancy=1, max_occupancy=2),
    ...     "vehicles": GroupCounts(entries=0, exits=0, occupancy=0, max_occupancy=0)}))
    'counts: cam-lobby/lobby-floor 00:02Z  people in 3 out 2 max 2'
    """
    when = datetime.fromtimestamp(counts.window_start, UTC).strftime("%H:%MZ")
    seen = {g: c for g, c in counts.groups.items() if c.entries or c.exits or c.max_occupancy}
    parts = [f"{g} in {c.entries} out {c.exits}"
             + (f" max {c.max_occupancy}" if c.max_occupancy is not None else "")
             for g, c in (seen or dict(list(counts.groups.items())[:1])).items()]
    return f"counts: {area} {when}  " + "; ".join(parts)


def print_counts(client: redis.Redis, out: TextIO) -> None:
    """The latest closed window of every counted area (``argus:counts:latest:<site>``)."""
    for key in sorted(client.scan_iter(f"{count_store.PREFIX}latest:*")):
        name = key.decode() if isinstance(key, bytes) else str(key)
        site = name.removeprefix(f"{count_store.PREFIX}latest:")
        for area, counts in count_store.latest(client, site).items():
            out.write(format_counts(area, counts) + "\n")


@dataclass
class Processes:
    """Child processes, stopped in reverse order of start."""

    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, args: list[str], log_dir: str,
              env: dict[str, str] | None = None) -> None:
        out = open(os.path.join(log_dir, f"{name}.log"), "ab")  # noqa: SIM115 - child owns it
        proc = subprocess.Popen([sys.executable, *args], stdout=out, stderr=subprocess.STDOUT,
                                cwd=REPO_ROOT, start_new_session=True,
                                env=None if env is None else {**os.environ, **env})
        self.procs.append((name, proc))

    def check(self) -> list[str]:
        return [name for name, proc in self.procs if proc.poll() not in (None, 0)]

    def stop(self, timeout_s: float = 20.0) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for name, proc in reversed(self.procs):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("process did not stop in time; killing",
                            extra={"service": name, "timeout_s": timeout_s})
                proc.kill()
                proc.wait()


CONSOLE_PORT = 29106
DEMO_OPERATOR = "demo-operator"


def demo_keys(existing: str, key: str) -> str:
    """``ARGUS_API_KEYS`` for the demo's alert API: the configured keys and the demo's.

    >>> demo_keys("", "k" * 16)
    'demo-operator:kkkkkkkkkkkkkkkk:operator'
    >>> demo_keys("wall:" + "r" * 16 + ":read", "k" * 16).split(",")[0]
    'wall:rrrrrrrrrrrrrrrr:read'
    """
    return ",".join(k for k in (existing.strip(), f"{DEMO_OPERATOR}:{key}:operator") if k)


def demo_evidence_key(path: Path) -> str:
    """The demo's snapshot sealing key (``ARGUS_EVIDENCE_KEY``), kept in the stack folder
    (mode 0600) so that a later run still opens the snapshots of the alerts it shows."""
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(base64.b64encode(os.urandom(32)).decode())
    return path.read_text().strip()


def run_demo(settings: Settings, duration: float | None, keep_stack: bool = False) -> int:
    out = sys.stdout
    out.write("Argus demo: starting the embedded stack (Kafka, Redis, Triton, Prometheus)...\n")
    out.flush()
    stack.up(settings)
    log_dir = settings.stack_dir / "demo"
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = Processes()
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(alert_sink.CHANNEL)
    faces: face_demo.FaceDemo | None = None
    plates: plate_demo.PlateDemo | None = None
    if not os.environ.get("ARGUS_EVIDENCE_KEY", "").strip():  # seal the demo's snapshots
        os.environ["ARGUS_EVIDENCE_KEY"] = demo_evidence_key(log_dir / "evidence-key")
    try:
        faces = face_demo.prepare(settings, out)  # the watchlist camera (before the children)
        plates = plate_demo.prepare(settings, out)  # the ANPR camera
        anomaly_demo.prepare(settings, out)  # the walkway camera (object anomaly model)
        procs.start("worker", ["-m", "pipelines", "--metrics-port", "29102"], str(log_dir))
        procs.start("sensor-gateway", ["-m", "services.sensor_gateway", "serve", "--port",
                                       "29103"], str(log_dir))
        procs.start("frame-grabber", ["-m", "services.frame_grabber", "--metrics-port",
                                      "29101"], str(log_dir))
        procs.start("sensor-replay", ["-m", "services.sensor_gateway", "replay", "--file",
                                      str(REPO_ROOT / "config/demo-sensors.csv"), "--loop",
                                      "--metrics-port", "29104"], str(log_dir))
        procs.start("lag-exporter", ["-m", "services.lag_exporter", "--port", "29105"],
                    str(log_dir))
        console_key = secrets.token_urlsafe(18)
        procs.start("alert-api", ["-m", "services.alert_api", "--port", str(CONSOLE_PORT)],
                    str(log_dir), env={"ARGUS_API_KEYS": demo_keys(
                        os.environ.get("ARGUS_API_KEYS", ""), console_key)})
        out.write(
            "\nRunning. Where to look:\n"
            f"  console            http://127.0.0.1:{CONSOLE_PORT}/console  (sign in with the "
            f"demo operator key {console_key}; valid for this run only)\n"
            f"  alerts (Redis)     redis-cli -u {settings.redis_url} "
            f"XREVRANGE {alert_sink.RECENT} + - COUNT 5\n"
            f"                     keys {alert_sink.PREFIX}alert:<id>, "
            f"{alert_sink.PREFIX}site:<site>:alerts:active, channel {alert_sink.CHANNEL}\n"
            f"  alerts (Kafka)     topic {settings.topic('alerts')} on {settings.kafka_bootstrap}\n"
            f"  Prometheus         http://127.0.0.1:{settings.prometheus_port}\n"
            "  metrics            http://127.0.0.1:29101/metrics (grabber), :29102 (workers), "
            ":29103 (sensor gateway), :29105 (Kafka lag)\n"
            f"  alert rules        http://127.0.0.1:{settings.prometheus_port}/alerts "
            "(runbooks: docs/operations.md)\n"
            f"  Triton metrics     http://127.0.0.1:{settings.triton_metrics_port}/metrics\n"
            f"  sensor HTTP        POST http://127.0.0.1:29103/v1/sensors/events\n"
            f"  logs               {log_dir}/\n\n"
            "Alerts as they arrive"
            + (f" (stopping after {duration:.0f}s)" if duration else " (Ctrl-C to stop)")
            + ":\n")
        out.flush()
        deadline = time.monotonic() + duration if duration else None
        count = 0
        while not stopping and (deadline is None or time.monotonic() < deadline):
            message = pubsub.get_message(timeout=0.5)
            if message and message["type"] == "message":
                out.write(format_alert(json.loads(message["data"])) + "\n")
                out.flush()
                count += 1
            failed = procs.check()
            if failed:
                out.write(f"process(es) failed: {', '.join(failed)}; see {log_dir}\n")
                return 1
        out.write(f"\n{count} alert change(s).\n")
        print_counts(client, out)
        out.write("Shutting down...\n")
        return 0
    finally:
        pubsub.close()
        procs.stop()
        if faces is not None:
            faces.cleanup()
        if plates is not None:
            plates.cleanup()
        if not keep_stack:
            stack.down(settings)
        out.write("Stopped.\n")
        out.flush()
