"""``argus chaos`` (``make chaos``): scripted infrastructure faults on the embedded stack.

Each fault runs the same scripted input as a fault-free baseline: N live cameras replaying
real clips in real time (the ``bench live`` topology: one site, zone and ``intrusion``
sensor per camera) plus two ``panic`` buttons per site, one posting over HTTP, one
publishing over MQTT (QoS 1), the whole pipeline as shipped (worker with every stage, the
sensor gateway's HTTP and MQTT inputs, frame grabber, as child processes on topics,
consumer group and Redis database of the run's own), and one sensor event per sensor every
``--sensor-period`` s. After ``--before`` s of normal running the fault is injected for
``--down`` s, then cleared:

* ``worker-kill``: ``kill -9`` the worker and start it again at once (a supervisor's job;
  the worker is a static group member, the default, unless ``--dynamic-membership``);
* ``triton`` / ``redis`` / ``kafka`` / ``mosquitto``: stop that embedded server, start it
  again;
* ``camera``: the first camera is a live HTTP MJPEG stream (``tools/mjpeg_camera.py``, the
  same clip) that goes off the network and comes back on the same port;
* ``overload``: a second grabber doubles the cameras for ``--down`` s.

Reported per fault: recovered by itself (yes/no) and the time from the fault's end to
detections flowing again within 2 s of capture with the consumer lag settled (``camera``:
that camera's detections); sensor
events posted and without alert — ``panic`` alerts need no video, so every panic event
must reach an alert (``lost``), intrusion alerts also need a person on camera (their share
is compared with the baseline's); sensor events that made two alerts of one rule
(``duplicated``) and alert changes published twice (``republished``: the ``alerts`` topic
is at-least-once); dead letters by stage and reason; frames
and events skipped by reason; and the operator-visible signals (worker health, stage
errors by kind, the lag and frame age at their worst).

**It stops and starts the shared embedded servers**: run it with nothing else using the
stack. Table per fault, ``--json PATH`` for everything; results in docs/reliability.md.
The faults and the MQTT sensors are in ``tools.chaos_faults``, the scoring in
``tools.chaos_report``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer

from argus.log import setup_logging
from argus.settings import Settings, get_settings
from services.sensor_gateway.logic import event_id
from tools import bench_measure as m
from tools import stack
from tools.bench_lag import group_lag
from tools.bench_live import DEFAULT_SOURCES, _start_workers, teardown
from tools.bench_probe import Probe
from tools.bench_procs import Children, claim_redis_db, free_port, get, versions
from tools.chaos_faults import FAULTS, SERVER_FAULTS, Fault, MqttSensors
from tools.chaos_report import (
    alert_changes,
    alerted_share,
    duplicated,
    failed_row,
    format_table,
    read_topic,
    recovery_time,
    republished,
)
from tools.mjpeg_camera import MjpegCamera


def _topology(run_id: str, cameras: int, fps: float, sources: list[str]) -> str:
    """``bench live``'s topology for ``2 * cameras`` (the second half is the overload's)
    with two panic buttons per site: one posting over HTTP, one over MQTT."""
    text = m.topology_yaml(run_id, 2 * cameras, fps, sources)
    panics = [f"  - {{id: {run_id}-{kind}-{i}, site: {run_id}-s{i}, zone: zone-{i}, "
              "type: panic}" for i in range(2 * cameras) for kind in ("panic", "mqttpanic")]
    return text + "\n".join(panics) + "\n"


def run_fault(base: Settings, fault: str, cameras: int, fps: float, sources: list[str],
              before_s: float, down_s: float, after_s: float, sensor_period: float,
              keep_logs: bool = False, static_member: bool = True) -> dict[str, Any]:
    """One scripted run with ``fault`` (``baseline``: none); its figures."""
    run_id = f"ch{uuid.uuid4().hex[:6]}"
    workdir = Path(tempfile.mkdtemp(prefix=f"argus-chaos-{run_id}-"))
    topology = _topology(run_id, cameras, fps, sources)
    camera = MjpegCamera(Path(sources[0]), fps).start() if fault == "camera" else None
    if camera is not None:  # the first camera live over HTTP
        topology = topology.replace(f"{run_id}-cam-0, site: {run_id}-s0, source: "
                                    f"'{sources[0]}'", f"{run_id}-cam-0, site: {run_id}-s0, "
                                    f"source: '{camera.url}'")
    (workdir / "topology.yaml").write_text(topology)
    redis_base = base.redis_url.rsplit("/", 1)[0]
    db = claim_redis_db(redis_base, run_id, 3600)
    settings = Settings(topic_prefix=f"{run_id}.", app_id=f"argus-{run_id}",
                        redis_url=f"{redis_base}/{db}", topology=workdir / "topology.yaml")
    ports = {name: free_port() for name in ("worker", "gateway", "gateway-mqtt", "grabber",
                                            "grabber-extra")}
    env = {**os.environ, **settings.to_env()}
    # static membership is the default (a slot id per live worker, docs/scaling.md)
    env["ARGUS_WORKER_INSTANCE_ID"] = "auto" if static_member else ""
    children = Children(workdir, env)
    sensors = [f"{run_id}-{kind}-{i}" for i in range(cameras) for kind in ("pir", "panic")]
    probe = Probe(settings, sensors, f"http://127.0.0.1:{ports['gateway']}/v1/sensors/events",
                  sensor_period)
    # the lag watch must not oversleep the broker's return (kafka-python backs off to 30 s)
    admin = KafkaAdminClient(bootstrap_servers=base.kafka_bootstrap,
                             reconnect_backoff_max_ms=1000)
    offsets = KafkaConsumer(bootstrap_servers=base.kafka_bootstrap, group_id=None,
                            enable_auto_commit=False, reconnect_backoff_max_ms=1000)
    injector = Fault(fault, base, children, ports, settings,
                      [f"{run_id}-cam-{i}" for i in range(cameras, 2 * cameras)], camera)
    signals: dict[str, Any] = {"worker_unhealthy_s": 0.0, "max_lag": 0}
    first_camera = f"{run_id}-cam-0"
    lags: list[tuple[float, int]] = []
    lags_by_topic: list[tuple[float, dict[str, int]]] = []
    ok = False
    mqtt_sensors: MqttSensors | None = None
    try:
        stack.create_topics(settings)
        _start_workers(children, ports, ["worker"], settings)
        children.start("gateway", ["-m", "services.sensor_gateway", "serve", "--port",
                                   str(ports["gateway"])], ports["gateway"])
        children.start("gateway-mqtt", ["-m", "services.sensor_gateway", "mqtt",
                                        "--client-id", f"{run_id}-gateway", "--metrics-port",
                                        str(ports["gateway-mqtt"])], ports["gateway-mqtt"])
        for thread in probe.threads:
            thread.start()
        mqtt_sensors = MqttSensors(settings, run_id,
                                   [f"{run_id}-mqttpanic-{i}" for i in range(cameras)],
                                   probe.posted, sensor_period)
        children.start("grabber", ["-m", "services.frame_grabber", "--metrics-port",
                                   str(ports["grabber"]),
                                   *(f"--camera={run_id}-cam-{i}" for i in range(cameras))],
                       ports["grabber"])
        deadline = time.monotonic() + 180
        while probe.first_detection is None:
            children.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"no detection within 180 s; see {workdir}")
            time.sleep(0.2)
        time.sleep(10.0)  # warm-up
        t_start = time.time()

        def watch(until: float) -> None:
            while time.time() < until:
                with contextlib.suppress(Exception):  # Kafka may be the fault
                    by_topic = group_lag(admin, offsets, settings, [settings.app_id])
                    lag = by_topic.pop("total")
                    lags.append((time.time(), lag))
                    lags_by_topic.append((time.time(), by_topic))
                    if lag > signals["max_lag"]:  # where the worst lag was, topic by topic
                        signals["max_lag"], signals["max_lag_by_topic"] = lag, {
                            t: n for t, n in by_topic.items() if n}
                try:
                    get(f"http://127.0.0.1:{ports['worker']}/healthz", 1)
                except OSError:
                    signals["worker_unhealthy_s"] += 1.0
                if camera is not None:  # what an operator sees of the lost camera
                    with contextlib.suppress(OSError):
                        scrape = get(f"http://127.0.0.1:{ports['grabber']}/metrics", 1)
                        silent = m.prom_sum(scrape, "argus_camera_seconds_since_last_frame",
                                            camera=first_camera).get("", 0.0)
                        signals["camera_silent_max_s"] = round(max(
                            signals.get("camera_silent_max_s", 0.0), silent), 1)
                        signals["camera_reconnects"] = m.prom_sum(
                            scrape, "argus_source_reconnects_total",
                            camera=first_camera).get("", 0.0)
                time.sleep(1.0)

        watch(t_start + before_s)
        t_fault = time.time()
        injector.inject()
        watch(t_fault + down_s)
        injector.clear()
        t_cleared = time.time()
        watch(t_cleared + after_s)
        t_end = time.time()
        probe.stop.set()  # no more sensor events; let the last ones' alerts land
        mqtt_sensors.close()
        time.sleep(min(30.0, 3 * sensor_period))
        crashed = [name for name, proc in children.procs.items() if proc.poll() is not None]
        worker = "" if "worker" in crashed else get(
            f"http://127.0.0.1:{ports['worker']}/metrics")
        posted = {e: t for e, t in probe.posted.items() if t_start <= t <= t_end}
        panics = {e for e in posted if e in _panic_events(probe)} | (
            mqtt_sensors.ids & set(posted))
        changes = alert_changes(settings)
        # an event is alerted when an alert change on the run's ``alerts`` topic carries it
        # (the system's output), or the probe saw it over Redis pub/sub (which misses what
        # was published while the probe was resubscribing after a Redis outage)
        on_topic = {e["event_id"] for c in changes for e in c.get("evidence", [])
                    if e.get("source") == "sensor"}
        alerted = {**{e: 0.0 for e in on_topic}, **probe.alerted}
        dead = Counter(f"{d.get('stage')}:{d.get('reason')}"
                       for d in map(json.loads, read_topic(settings, "dlq")))
        detections = [(t, lat) for t, lat in (
            probe.by_camera.get(first_camera, []) if camera is not None
            else probe.samples["detections"]) if t >= t_start]
        since = t_fault if fault == "worker-kill" else t_cleared
        recovered = (0.0 if fault == "baseline" else
                     recovery_time(detections, lags, since, 3 * cameras * fps + 10))
        result = {
            "fault": fault, "recovered": recovered is not None and not crashed,
            "recovery_s": recovered, "crashed": crashed, "restart_s": injector.restart_s,
            "first_detection_after_s": next((round(t - t_fault, 1) for t, _ in detections
                                             if t > t_fault), None),
            "lag_since_fault": [(round(t - t_fault, 1), {k: n for k, n in by.items() if n})
                                for t, by in lags_by_topic if t >= t_fault],
            "sensor_events": len(posted), "sensor_posts_refused": len(probe.errors),
            "panic_events": len(panics),
            "panic_without_alert": sum(1 for e in panics if e not in alerted),
            "mqtt_panic_without_alert": sum(1 for e in mqtt_sensors.ids & set(posted)
                                            if e not in alerted),
            "lost_posted_at_s": sorted(round(t - t_fault, 1) for e, t in posted.items()
                                       if e in panics and e not in alerted),
            "missed_by_probe": sum(1 for e in posted if e in on_topic
                                   and e not in probe.alerted),
            "intrusion_alerted_share": alerted_share([e for e in posted if e not in panics],
                                              alerted),
            "alert_changes": len(changes), "duplicated": duplicated(changes, set(posted)),
            "republished": republished(changes),
            "dead_letters": dict(dead),
            "skipped": {**m.prom_sum(worker, "argus_frames_skipped_total", "reason"),
                        **{f"stage:{k}": v for k, v in m.prom_sum(
                            worker, "argus_stage_skipped_total", "reason").items()}},
            "stage_errors": m.prom_sum(worker, "argus_stage_errors_total", "kind"),
            "signals": signals, "latency_detections_after": m.percentiles(
                lat for t, lat in detections if t >= since),
            "errors": probe.errors[:5]}
        ok = True
        return result
    finally:
        probe.stop.set()
        if mqtt_sensors is not None:
            mqtt_sensors.close()
        try:
            if fault in SERVER_FAULTS:  # whatever happened, leave the server running
                stack.up(base, only=[SERVER_FAULTS[fault]])
        finally:  # even when it does not come back: no child process left behind
            if camera is not None:
                camera.close()
            teardown(probe, children, admin, offsets, settings)
        if ok and not keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"chaos {fault}: logs in {workdir}", file=sys.stderr)


def _panic_events(probe: Probe) -> set[str]:
    """The posted event ids of the panic buttons (an event id hashes sensor, time, state)."""
    panics = [s for s in probe.sensors if "-panic-" in s]
    return {e for e, t in probe.posted.items()
            if any(event_id(s, t, "active") == e for s in panics)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="argus chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faults", default=",".join(FAULTS),
                        help=f"comma-separated, from {', '.join(FAULTS)}")
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--before", type=float, default=20.0, help="s of normal running")
    parser.add_argument("--down", type=float, default=20.0, help="s the fault lasts")
    parser.add_argument("--after", type=float, default=40.0, help="s after the fault")
    parser.add_argument("--sensor-period", type=float, default=5.0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--dynamic-membership", action="store_true",
                        help="run the worker without a static group member id "
                             "(ARGUS_WORKER_INSTANCE_ID empty)")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep every run's process logs (printed: where)")
    args = parser.parse_args(argv)
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = sorted(set(faults) - set(FAULTS))
    if unknown:
        parser.error(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(FAULTS)}")
    setup_logging("WARNING")
    base = get_settings()
    started = stack.up(base)
    sources = [str(base.shared / s) for s in DEFAULT_SOURCES]
    results: list[dict[str, Any]] = []
    report = {"machine": m.machine(), "versions": versions(base), "parameters": vars(args)
              | {"json": str(args.json) if args.json else None}, "results": results}
    try:
        for fault in faults:
            print(f"chaos: {fault} ...", file=sys.stderr, flush=True)
            try:
                results.append(run_fault(base, fault, args.cameras, args.fps, sources,
                                         args.before, args.down, args.after,
                                         args.sensor_period, args.keep_logs,
                                         not args.dynamic_membership))
            except Exception as exc:  # one fault's run failing must not lose the others
                results.append(failed_row(fault, exc))
                stack.up(base)
            print(format_table(results[-1:]), file=sys.stderr, flush=True)
            if args.json:  # after every fault: a long run stopped midway keeps what it has
                args.json.write_text(json.dumps(report, indent=2, default=str))
    finally:
        if started:
            stack.down(base, started)
    print(format_table(results))
    return 0 if all(r["recovered"] and not r["panic_without_alert"] and not r["duplicated"]
                    for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
