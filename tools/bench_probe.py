"""The measuring side of ``argus bench live`` and ``argus chaos``: :class:`Probe` reads the
capture latencies on three topics and the alerts from Redis pub/sub, and posts the scripted
sensor events."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.request
from typing import Any

import redis
from kafka import KafkaConsumer

from argus.settings import Settings
from services.sensor_gateway.logic import event_id


class Probe:
    """Background threads: capture latencies on three topics, alerts from Redis pub/sub,
    and the scripted sensor events."""

    def __init__(self, settings: Settings, sensors: list[str], gateway: str,
                 period_s: float) -> None:
        self.settings, self.sensors, self.gateway, self.period_s = (
            settings, sensors, gateway, period_s)
        self.stop = threading.Event()
        self.samples: dict[str, list[tuple[float, float]]] = {
            t: [] for t in ("detections", "tracks", "events.video")}
        self.by_camera: dict[str, list[tuple[float, float]]] = {}
        """Detections' (arrival, latency) per camera."""
        self.first_detection: float | None = None
        self.posted: dict[str, float] = {}  # sensor event id → post time
        self.alerted: dict[str, float] = {}  # sensor event id → alert arrival
        self.rules: dict[str, int] = {}
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=f, daemon=True, name=f.__name__)
                        for f in (self._consume, self._alerts, self._post)]

    def _consume(self) -> None:
        consumer = KafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap, group_id=None,
                                 enable_auto_commit=False, auto_offset_reset="earliest",
                                 fetch_max_wait_ms=100,  # the probe must not oversleep a
                                 reconnect_backoff_max_ms=1000)  # broker's return (chaos)
        consumer.subscribe([self.settings.topic(t) for t in self.samples])
        try:
            while not self.stop.is_set():
                for tp, records in consumer.poll(timeout_ms=200).items():
                    now = time.time()
                    name = tp.topic.removeprefix(self.settings.topic_prefix)
                    field = "ts" if name == "events.video" else "capture_ts"
                    for record in records:
                        captured = float(json.loads(record.value)[field])
                        self.samples[name].append((now, now - captured))
                        if name == "detections" and record.key is not None:
                            self.by_camera.setdefault(record.key.decode(), []).append(
                                (now, now - captured))
                        if name == "detections" and self.first_detection is None:
                            self.first_detection = now
        finally:
            consumer.close()

    def _alerts(self) -> None:
        # pub/sub channels are global across Redis databases: match our sensor event ids;
        # Redis may go away (chaos): subscribe again until stopped
        while not self.stop.is_set():
            pubsub = redis.Redis.from_url(self.settings.redis_url).pubsub(
                ignore_subscribe_messages=True)
            try:
                pubsub.subscribe("argus:alerts")
                while not self.stop.is_set():
                    message = pubsub.get_message(timeout=0.2)
                    if message and message["type"] == "message":
                        self._alert(time.time(), json.loads(message["data"]))
            except redis.RedisError:
                self.stop.wait(1.0)
            finally:
                with contextlib.suppress(redis.RedisError):
                    pubsub.close()

    def _alert(self, now: float, alert: dict[str, Any]) -> None:
        ours = [e["event_id"] for e in alert.get("evidence", [])
                if e.get("source") == "sensor" and e["event_id"] in self.posted]
        if ours:
            key = f"{alert['rule']}:{alert.get('change', 'created')}"
            self.rules[key] = self.rules.get(key, 0) + 1
        for found in ours:
            self.alerted.setdefault(found, now)

    def _post(self) -> None:
        step = self.period_s / max(1, len(self.sensors))  # staggered over the period
        i = 0
        while not self.stop.wait(step):
            sensor = self.sensors[i % len(self.sensors)]
            i += 1
            now = round(time.time(), 3)
            body = json.dumps({"sensor_id": sensor, "state": "active", "ts": now}).encode()
            request = urllib.request.Request(self.gateway, body,
                                             {"content-type": "application/json"})
            expected = event_id(sensor, now, "active")
            self.posted[expected] = now  # before the POST: its alert may beat the response
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    if json.loads(response.read())["event_ids"] != [expected]:
                        self.errors.append(f"sensor post: unexpected event id for {sensor}")
            except OSError as exc:
                self.posted.pop(expected, None)
                self.errors.append(f"sensor post: {exc}")
