"""MQTT in → alert out, on the real Mosquitto, Kafka and Redis.

A person is seen on camera (a ``zone_intrusion`` event on ``events.video``), then the
zone's intrusion sensor publishes over MQTT to the running sensor gateway
(``python -m services.sensor_gateway mqtt``); the worker makes one
``confirmed_intrusion`` alert from the two (Redis, ``alerts``) and its lights command.
Gateway and worker run on topics and a topology of their own (``test_correlation_restart``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import pytest

from argus.settings import REPO_ROOT, Settings
from pipelines.stages.correlate.rules import alert_id
from schemas import Alert, Command, SensorEvent
from services.sensor_gateway.logic import event_id
from tests.conftest import free_port
from tests.integration.test_correlation_restart import (
    Private,
    active_alerts,
    on_topic,
    person_event,
    private_env,
    send,
    wait_for,
)
from tests.integration.test_mqtt_ingest import end_session

pytestmark = pytest.mark.integration


@dataclass
class Gateway:
    root: str
    """Readings go to ``<root>/<site>/<sensor>``."""
    client_id: str
    proc: subprocess.Popen[bytes]


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def private(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Private]:
    yield from private_env(stack, tmp_path_factory, "mq")


@pytest.fixture(scope="module")
def gateway(private: Private) -> Iterator[Gateway]:
    """The MQTT gateway process, subscribed to a topic root of this run."""
    settings = private.settings
    root = f"{settings.topic_prefix.rstrip('.')}/argus/sensors"
    client_id = f"test-gateway-{uuid.uuid4().hex[:8]}"
    port = free_port()
    log_path = settings.stack_dir / f"test-gateway-{settings.app_id}.log"
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.sensor_gateway", "mqtt",
             "--port", str(settings.mqtt_port), "--topic", root + "/{site}/{sensor_id}",
             "--client-id", client_id, "--metrics-port", str(port)],
            cwd=REPO_ROOT, env={**os.environ, **settings.to_env()}, stdout=out,
            stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: proc.poll() is None and ready(port), 30), \
            log_path.read_text()[-3000:]
        yield Gateway(root, client_id, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        end_session(settings.mqtt_port, client_id)  # its persistent session on the broker


def publish(port: int, topic: str, payload: dict[str, object]) -> None:
    """One QoS 1 message, as a sensor would send it (waits for the broker's PUBACK)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"test-sensor-{uuid.uuid4().hex[:8]}")
    client.connect("127.0.0.1", port, keepalive=10)
    client.loop_start()
    try:
        info = client.publish(topic, json.dumps(payload).encode(), qos=1)
        info.wait_for_publish(timeout=10)
        assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.timeout(180)
def test_an_mqtt_reading_and_a_person_on_camera_make_one_alert(private: Private,
                                                                gateway: Gateway) -> None:
    settings, site = private.settings, private.site
    private.start_worker()
    seen = time.time()
    person = person_event(private, seen, seq=11)
    send(settings, "events.video", person)

    fired = round(seen + 4.0, 3)
    published_at = time.time()
    publish(settings.mqtt_port, f"{gateway.root}/{site}/{private.sensor}",
            {"state": "active", "ts": fired, "battery": 88})
    assert wait_for(lambda: len(active_alerts(settings, site)) >= 1, 60), private.log_tail()
    time.sleep(1.0)  # a second alert would land now

    # the gateway published the reading enriched from the topology, keyed by site
    expected = event_id(private.sensor, fired, "active")
    [value] = on_topic(settings, "sensors.events", site.encode())
    reading = SensorEvent.model_validate_json(value)
    assert (reading.event_id, reading.sensor_id, reading.zone_id, reading.type.value,
            reading.state, reading.ts, reading.battery) == (
        expected, private.sensor, "lobby", "intrusion", "active", fired, 88.0)

    [alert] = active_alerts(settings, site)
    assert 0 < alert.created_at - published_at < 30  # MQTT → gateway → Kafka → worker
    assert (alert.rule, alert.severity.value, alert.zone_id, alert.camera_id, alert.count) == (
        "confirmed_intrusion", "high", "lobby", private.camera, 1)
    assert (alert.lat, alert.lon) == (48.85, 2.35)
    assert (alert.first_seen, alert.last_seen) == (person.ts, fired)
    assert sorted((e.source, e.event_id) for e in alert.evidence) == [
        ("sensor", expected), ("video", person.event_id)]
    assert alert.title == "Confirmed intrusion: Lobby (Private test site)"
    # anchored on the sensor event: the same reading always gives this id
    assert alert.alert_id == alert_id("confirmed_intrusion", site, "lobby", expected)
    [published] = [Alert.model_validate_json(v)
                   for v in on_topic(settings, "alerts", alert.alert_id.encode())]
    assert (published.version, published.count, published.change.value) == (1, 1, "created")
    [command] = [Command.model_validate_json(v)
                 for v in on_topic(settings, "commands", site.encode())]
    assert (command.type.value, command.zone_id, command.alert_id) == (
        "lights", "lobby", alert.alert_id)
