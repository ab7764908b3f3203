"""``argus bench live`` (``make bench-live``): does the shipped pipeline keep up in real time?

Replays real clips in real time as N cameras (a temporary topology: one site per camera
with one zone, a full-frame intrusion zone and one ``intrusion`` sensor), on isolated
topics, consumer group and Redis database, with the real processes as children: the
stream worker (every stage at its defaults), one frame grabber for all cameras and the
sensor gateway's HTTP endpoint. The bench posts one scripted sensor event per camera
every ``--sensor-period`` s (rule ``confirmed_intrusion`` pairs it with a person in the
zone) and measures, after a warm-up (``--warmup`` s after the first detection):

* input frames/s, messages/s in and out of every stage, frames dropped (grabber, stale
  frames the detect stage skipped, tracker skips, dead letters);
* p50/p95/p99/max of capture → ``detections`` / ``tracks`` / ``events.video`` (arrival
  on the bench's consumer) and of sensor event → alert in Redis (pub/sub arrival);
* the worker group's consumer lag at start and end, and the least-squares slope of its
  *settled* lag (records already there two seconds earlier and still not committed: the
  worker commits once a second, so the plain lag swings by up to a second of input with
  the moment it is read, and that swing read as growth or shrinkage over a run);
* CPU % (100 = one core) and RSS of every process (with its children) and of the machine;
* a verdict: "keeps up" or "falls behind" (``tools.bench_measure.verdict``).

``--find-max`` runs 2, 4, 6, 8, 12, ... cameras at ``--fps`` (from ``--start-cameras``) until
one falls behind, then halves the interval between the largest N that kept up and the
smallest that did not until they are one apart (``bench_measure.next_find_max``).
``--overload N`` runs N cameras (a second grabber for the extra ones) during the measured
window, then stops the extra ones and reports how long the lag took to settle, the latency
after that, and where every published frame went (detected, skipped as stale,
dead-lettered, still queued; ``unaccounted`` must be 0).
Prints a table per run; ``--json PATH`` writes everything. Servers that were already
running are reused and left running; those it started are stopped (``--keep-stack``: not).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from argus.log import setup_logging
from argus.settings import Settings, get_settings
from tools import bench_measure as m
from tools import stack
from tools.bench_lag import end_offsets, group_lag
from tools.bench_probe import Probe
from tools.bench_procs import Children, claim_redis_db, free_port, get, versions
from tools.bench_table import format_table

DEFAULT_SOURCES = ("data/videos/one-by-one-person-detection.mp4",
                   "data/videos/person-bicycle-car-detection.mp4",
                   "data/videos/car-detection.mp4", "data/pets09_s2l1/vtest.avi")
FIND_MAX_STEPS = (2, 4, 6, 8, 12, 16, 24, 32, 48, 64)


def run_live(base: Settings, cameras: int, fps: float, duration: float, sources: list[str],
             warmup: float = 15.0, sensor_period: float = 10.0,
             detect_workers: int = 0, overload: int = 0, recovery: float = 90.0,
             ) -> dict[str, Any]:
    """One run; returns its figures (see the module docstring). ``overload`` > ``cameras``:
    that many cameras during the measured window, then the extra ones stop and the
    recovery is measured (:func:`_recover`, at most ``recovery`` s)."""
    run_id = f"bl{uuid.uuid4().hex[:6]}"
    workdir = Path(tempfile.mkdtemp(prefix=f"argus-bench-live-{run_id}-"))
    total = max(cameras, overload)
    (workdir / "topology.yaml").write_text(m.topology_yaml(run_id, total, fps, sources))
    grabbers = {"grabber": [f"{run_id}-cam-{i}" for i in range(cameras)],
                "grabber-extra": [f"{run_id}-cam-{i}" for i in range(cameras, total)]}
    grabbers = {name: ids for name, ids in grabbers.items() if ids}
    admin = KafkaAdminClient(bootstrap_servers=base.kafka_bootstrap)
    offsets = KafkaConsumer(bootstrap_servers=base.kafka_bootstrap, group_id=None,
                            enable_auto_commit=False)
    redis_base = base.redis_url.rsplit("/", 1)[0]
    db = claim_redis_db(redis_base, run_id, int(duration + warmup + 1800))
    settings = Settings(topic_prefix=f"{run_id}.", app_id=f"argus-{run_id}",
                        redis_url=f"{redis_base}/{db}", topology=workdir / "topology.yaml")
    workers = [f"worker-{i}" for i in range(detect_workers + 1)] if detect_workers else ["worker"]
    ports = {name: free_port() for name in (*workers, "gateway", *grabbers)}
    children = Children(workdir, {**os.environ, **settings.to_env()})
    probe = Probe(settings, [f"{run_id}-pir-{i}" for i in range(cameras)],
                  f"http://127.0.0.1:{ports['gateway']}/v1/sensors/events", sensor_period)
    ok = False
    try:
        stack.create_topics(settings)
        groups = _start_workers(children, ports, workers, settings)
        children.start("gateway", ["-m", "services.sensor_gateway", "serve", "--port",
                                   str(ports["gateway"])], ports["gateway"])
        for thread in probe.threads:
            thread.start()
        for name, ids in grabbers.items():
            children.start(name, ["-m", "services.frame_grabber", "--metrics-port",
                                  str(ports[name]), *(f"--camera={c}" for c in ids)],
                           ports[name])
        deadline = time.monotonic() + 180
        while probe.first_detection is None:
            children.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"no detection within 180 s; see {workdir}")
            time.sleep(0.2)
        time.sleep(max(0.0, probe.first_detection + warmup - time.time()))
        roots = {"bench": os.getpid(), **{n: p.pid for n, p in children.procs.items()},
                 **{s.name: s.pid() or 0 for s in stack.servers(base)}}

        def snapshot() -> dict[str, Any]:
            return {"t": time.time(), "procs": m.sample_processes(roots),
                    "cpu": m.machine_ticks(), "lag": group_lag(admin, offsets, settings, groups),
                    "worker": "\n".join(get(f"http://127.0.0.1:{ports[w]}/metrics")
                                        for w in workers),
                    "grabber": "\n".join(get(f"http://127.0.0.1:{ports[g]}/metrics")
                                          for g in grabbers)}

        first = snapshot()
        lags: list[tuple[float, float]] = []  # settled lag (group_lag): the verdict's slope
        by_topic = [(0.0, first["lag"])]  # the plain lag per topic, in the JSON
        while time.time() < first["t"] + duration:
            children.check()
            ends = end_offsets(offsets, settings)
            time.sleep(min(2.0, max(0.0, first["t"] + duration - time.time())))
            lag = group_lag(admin, offsets, settings, groups, ends_before=ends)
            lags.append((time.time(), float(lag["settled"])))
            by_topic.append((round(time.time() - first["t"], 1),
                             {k: v for k, v in lag.items() if v and k != "settled"}))
        last = snapshot()
        t0, t1 = first["t"], last["t"]
        grace = time.time() + 5  # alerts of the last sensor events may land just after
        while time.time() < grace and any(e not in probe.alerted for e, t
                                          in list(probe.posted.items()) if t0 <= t <= t1):
            time.sleep(0.2)
        result = _report(settings, first, last, lags, probe, {
            "cameras": cameras, "fps": fps, "duration_s": duration, "warmup_s": warmup,
            "sensor_period_s": sensor_period, "sources": [Path(x).name for x in sources],
            "detect_workers": detect_workers, "overload_cameras": total})
        result["lag"]["series_by_topic"] = by_topic
        if total > cameras:
            result["recovery"] = _recover(children, ports, workers, probe, admin, offsets,
                                          settings, groups, cameras * fps, recovery)
        ok = True
        return result
    finally:
        teardown(probe, children, admin, offsets, settings)
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"bench live did not finish; logs kept in {workdir}", file=sys.stderr)


def teardown(probe: Probe, children: Children, admin: KafkaAdminClient,
             offsets: KafkaConsumer, settings: Settings) -> None:
    """End a run: stop the probe and the children, close the Kafka clients, delete the
    run's topics, Redis database (which also drops its lock) and Faust data."""
    probe.stop.set()
    children.stop()
    for thread in probe.threads:
        thread.join(5)
    admin.close()
    offsets.close()
    with contextlib.suppress(Exception):
        stack.delete_topics(settings)
    with contextlib.suppress(Exception):
        redis.Redis.from_url(settings.redis_url).flushdb()  # also drops the lock
    shutil.rmtree(settings.stack_dir / "faust" / f"{settings.app_id}-data", ignore_errors=True)


def _recover(children: Children, ports: dict[str, int], workers: list[str], probe: Probe,
             admin: KafkaAdminClient, offsets: KafkaConsumer, settings: Settings,
             groups: list[str], base_fps: float, limit_s: float) -> dict[str, Any]:
    """After an overload window: stop the extra cameras and time the return to a steady
    lag (total at most :func:`tools.bench_measure.verdict`'s end-lag limit for the base
    input, for 5 s in a row); then stop every camera, let the worker drain ``frames.raw``
    and check that every published frame is accounted for: detected, skipped as stale, or
    dead-lettered."""
    children.stop_one("grabber-extra")
    t_stop = time.time()
    steady = 3 * base_fps + 10
    timeline: list[tuple[float, int, int]] = []
    recovered_at: float | None = None
    streak_from: float | None = None
    while time.time() < t_stop + limit_s:
        children.check()
        lag = group_lag(admin, offsets, settings, groups)
        now = time.time() - t_stop
        timeline.append((round(now, 1), lag["total"], lag["frames.raw"]))
        if lag["total"] <= steady:
            streak_from = now if streak_from is None else streak_from
            if now - streak_from >= 5.0:
                recovered_at = streak_from
                break
        else:
            streak_from = None
        time.sleep(1.0)
    after = [lat for at, lat in probe.samples["detections"] if at >= t_stop + (recovered_at or 0)]
    children.stop_one("grabber")
    drained = time.time() + 30
    while time.time() < drained and group_lag(admin, offsets, settings, groups)["frames.raw"] > 0:
        time.sleep(0.5)
    worker = "\n".join(get(f"http://127.0.0.1:{ports[w]}/metrics") for w in workers)
    return {"recovered": recovered_at is not None,
            "recovery_s": None if recovered_at is None else round(recovered_at, 1),
            "steady_lag_limit": round(steady), "lag_timeline": timeline,
            "latency_after_recovery": m.percentiles(after),
            "accounting": m.frame_accounting(_published(offsets, settings), worker,
                                             group_lag(admin, offsets, settings,
                                                  groups)["frames.raw"])}


def _published(consumer: KafkaConsumer, settings: Settings) -> int:
    """Frames on this run's ``frames.raw`` (its end offsets: the topic is the run's own)."""
    topic = settings.topic("frames.raw")
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    return int(sum(consumer.end_offsets(parts).values()))


def _start_workers(children: Children, ports: dict[str, int], workers: list[str],
                   settings: Settings) -> list[str]:
    """The stream worker(s): one for the whole graph, or (``--detect-workers N``) N
    ``--stages detect`` workers and one for the rest; returns their consumer groups."""
    if workers == ["worker"]:
        children.start("worker", ["-m", "pipelines", "--metrics-port", str(ports["worker"])],
                       ports["worker"])
        return [settings.app_id]
    from pipelines.app import group_id
    from pipelines.stages import STAGES

    rest = [s.name for s in STAGES if s.name != "detect"]
    for name in workers[:-1]:
        children.start(name, ["-m", "pipelines", "--metrics-port", str(ports[name]),
                              "--stages", "detect"], ports[name])
    children.start(workers[-1], ["-m", "pipelines", "--metrics-port", str(ports[workers[-1]]),
                                 "--stages", ",".join(rest)], ports[workers[-1]])
    return [group_id(settings, ["detect"]), group_id(settings, rest)]


def _report(settings: Settings, first: dict[str, Any], last: dict[str, Any],
            lags: list[tuple[float, float]], probe: Probe, parameters: dict[str, Any]
            ) -> dict[str, Any]:
    return {"date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "machine": m.machine(),
            "versions": versions(settings), "parameters": parameters,
            **m.report(first, last, lags, probe.samples, dict(probe.posted),
                       dict(probe.alerted), group=settings.app_id),
            "alert_changes": dict(probe.rules), "errors": probe.errors[:5]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="argus bench live", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=120.0, help="measured seconds")
    parser.add_argument("--sources", default=None,
                        help="comma-separated videos, cycled over the cameras (relative "
                             "paths: under $ARGUS_SHARED); default: "
                             + ", ".join(Path(s).name for s in DEFAULT_SOURCES))
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--warmup", type=float, default=15.0,
                        help="seconds after the first detection that are not measured")
    parser.add_argument("--sensor-period", type=float, default=10.0,
                        help="seconds between scripted sensor events of one camera")
    parser.add_argument("--find-max", action="store_true",
                        help=f"largest N that keeps up at --fps: steps {FIND_MAX_STEPS}, "
                             "then halving the interval")
    parser.add_argument("--start-cameras", type=int, default=FIND_MAX_STEPS[0],
                        help="--find-max: the first N tried")
    parser.add_argument("--step-duration", type=float, default=60.0,
                        help="--find-max: measured seconds per step")
    parser.add_argument("--detect-workers", type=int, default=0,
                        help="N workers running only the detect stage and one for the rest "
                             "(0: one worker for the whole graph, as shipped)")
    parser.add_argument("--overload", type=int, default=0, metavar="N",
                        help="N cameras (more than --cameras) during the measured window, "
                             "then back to --cameras: reports the recovery time and where "
                             "every frame went")
    parser.add_argument("--recovery", type=float, default=120.0,
                        help="--overload: longest wait for the lag to settle (s)")
    parser.add_argument("--keep-stack", action="store_true",
                        help="leave running the servers this command had to start")
    args = parser.parse_args(argv)
    if args.cameras < 1 or args.fps <= 0 or args.duration <= 0:
        parser.error("--cameras, --fps and --duration must be positive")
    setup_logging("WARNING")
    base = get_settings()
    sources = [str(p if p.is_absolute() else base.shared / p) for p in
               (Path(s.strip()) for s in (args.sources.split(",") if args.sources
                                          else DEFAULT_SOURCES))]
    missing = [s for s in sources if not Path(s).exists()]
    if missing:
        parser.error(f"no such video: {', '.join(missing)}")
    # Ctrl-C and SIGTERM (even where a shell started us with SIGINT ignored) end the run
    # through the cleanup below
    previous = {sig: signal.signal(sig, signal.default_int_handler)
                for sig in (signal.SIGINT, signal.SIGTERM)}
    started: list[str] = []
    try:
        started = stack.up(base)
        broker_age = m.process_age_s(stack.servers(base, ["kafka"])[0].pid())
        if not args.find_max:
            result = run_live(base, args.cameras, args.fps, args.duration, sources,
                              args.warmup, args.sensor_period, args.detect_workers,
                              args.overload, args.recovery)
            print(format_table(result), flush=True)
        else:
            steps: list[dict[str, Any]] = []
            tried: dict[int, bool] = {}
            n: int | None = m.next_find_max(tried, FIND_MAX_STEPS, args.start_cameras)
            while n is not None:
                steps.append(run_live(base, n, args.fps, args.step_duration, sources,
                                      args.warmup, args.sensor_period))
                print(format_table(steps[-1]) + "\n", flush=True)
                tried[n] = bool(steps[-1]["keeps_up"])
                n = m.next_find_max(tried, FIND_MAX_STEPS, args.start_cameras)
            best = max((c for c, ok in tried.items() if ok), default=0)
            result = {"mode": "find-max", "fps": args.fps, "max_cameras_keeping_up": best,
                      "steps": steps}
            print(f"largest N that keeps up at {args.fps:g} fps: {best or 'none'}")
        result["broker_age_s"] = broker_age
        if note := m.young_broker_note(broker_age):
            print(note)
    except KeyboardInterrupt:
        print("interrupted; everything this run started was stopped", file=sys.stderr)
        return 130
    except (RuntimeError, stack.StackError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if started and not args.keep_stack:
            stack.down(base, started)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
