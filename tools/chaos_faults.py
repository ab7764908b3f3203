"""What ``argus chaos`` (``tools.chaos``) does to a run: the faults it injects and clears
(``worker-kill``, a stopped embedded server, a camera off the network, a doubled camera
load) and the MQTT panic buttons it runs next to the HTTP sensor probe.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time

from argus.settings import Settings
from services.sensor_gateway.logic import event_id
from tools import stack
from tools.bench_live import _start_workers
from tools.bench_procs import Children
from tools.mjpeg_camera import MjpegCamera

FAULTS = ("baseline", "worker-kill", "triton", "redis", "kafka", "mosquitto", "camera",
          "overload")
SERVER_FAULTS = {"triton": "triton", "redis": "redis", "kafka": "kafka",
                 "mosquitto": "mosquitto"}


class MqttSensors:
    """Panic buttons publishing over MQTT (QoS 1, paho's own reconnect and queue, as a
    real sensor would), one reading per sensor every ``period_s``; each reading's event id
    goes into ``posted`` (the probe's, so its alert is matched like the HTTP ones)."""

    def __init__(self, settings: Settings, run_id: str, sensors: list[str],
                 posted: dict[str, float], period_s: float) -> None:
        import paho.mqtt.client as mqtt

        self.run_id, self.sensors, self.posted, self.period_s = (
            run_id, sensors, posted, period_s)
        self.ids: set[str] = set()
        self.stop = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"{run_id}-sensors")
        self.client.reconnect_delay_set(1, 5)
        self.client.connect_async("127.0.0.1", settings.mqtt_port)
        self.client.loop_start()
        self.thread = threading.Thread(target=self._run, daemon=True, name="mqtt-sensors")
        self.thread.start()

    def _run(self) -> None:
        step = self.period_s / max(1, len(self.sensors))
        i = 0
        while not self.stop.wait(step):
            sensor = self.sensors[i % len(self.sensors)]
            i += 1
            now = round(time.time(), 3)
            site = f"{self.run_id}-s{sensor.rsplit('-', 1)[1]}"
            found = event_id(sensor, now, "active")
            self.ids.add(found)
            self.posted[found] = now
            self.client.publish(f"argus/sensors/{site}/{sensor}",
                                json.dumps({"state": "active", "ts": now}), qos=1)

    def close(self) -> None:
        if self.stop.is_set():
            return
        self.stop.set()
        self.thread.join(5)
        self.client.loop_stop()
        self.client.disconnect()


class Fault:
    """Inject and clear one fault."""

    def __init__(self, name: str, base: Settings, children: Children, ports: dict[str, int],
                 settings: Settings, extra_cameras: list[str],
                 camera: MjpegCamera | None = None) -> None:
        self.name, self.base, self.children, self.ports = name, base, children, ports
        self.settings, self.extra_cameras, self.camera = settings, extra_cameras, camera
        self.restart_s: float | None = None
        """worker-kill: seconds from the new worker's start to its health endpoint."""

    def inject(self) -> None:
        if self.name == "worker-kill":
            proc = self.children.procs.pop("worker")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            started = time.monotonic()
            _start_workers(self.children, self.ports, ["worker"], self.settings)
            self.restart_s = round(time.monotonic() - started, 1)
        elif self.name in SERVER_FAULTS:
            stack.down(self.base, only=[SERVER_FAULTS[self.name]])
        elif self.name == "camera" and self.camera is not None:
            self.camera.stop()
        elif self.name == "overload":
            self.children.start("grabber-extra", [
                "-m", "services.frame_grabber", "--metrics-port",
                str(self.ports["grabber-extra"]), *(f"--camera={c}" for c in self.extra_cameras)],
                self.ports["grabber-extra"])

    def clear(self) -> None:
        if self.name in SERVER_FAULTS:
            stack.up(self.base, only=[SERVER_FAULTS[self.name]])
        elif self.name == "camera" and self.camera is not None:
            self.camera.start()
        elif self.name == "overload":
            self.children.stop_one("grabber-extra")
