"""The ``argus`` command: one entry point for the stack, the services and the tools.

    argus stack up|down|status      the embedded Kafka, Redis, Triton, Prometheus
    argus models fetch              resolve model files (shared mirror, else download)
    argus worker [--stages a,b]     the Faust stream stages (all, or a subset)
    argus graph [--check FILE]      the declared stage/topic graph (Mermaid)
    argus grabber                   the frame grabber (cameras from the topology)
    argus gateway ...               the sensor gateway (serve | mqtt | replay)
    argus api                       the alert API (REST + WebSocket)
    argus lag-exporter              Kafka consumer lag for Prometheus
    argus watchlist ...             face watchlists (enroll | list | remove)
    argus plates list ...           plate hotlists / allow lists (add | remove | show | check)
    argus plates sightings PATTERN  where a plate was seen (wildcards, --fuzzy; audited)
    argus eval mot|faces|rules|fall accuracy evaluations
    argus eval anomaly              frame-level motion anomaly (UCSD Ped2 format)
    argus eval plates               licence plates read end to end (or --crops)
    argus train anomaly             fit a camera's motion anomaly model (ONNX)
    argus demo [--duration S]       everything, with alerts printed as they arrive
    argus bench [--frames N]        throughput: pipeline vs. a plain model loop
    argus bench live --cameras N    real-time load: N cameras, latencies, lag, verdict
    argus topology check [FILE]     validate a topology file
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from argus.log import setup_logging
from argus.redact import redact_url
from argus.settings import get_settings

ENTRY_POINTS = {
    "worker": "pipelines.__main__",
    "graph": "pipelines.graph",
    "grabber": "services.frame_grabber.__main__",
    "gateway": "services.sensor_gateway.__main__",
    "api": "services.alert_api.__main__",
    "notifier": "services.notifier.__main__",
    "lag-exporter": "services.lag_exporter",
    "watchlist": "tools.watchlist_cli",
    "plates": "tools.plates_cli",
    "bench": "tools.bench",
    "chaos": "tools.chaos",
}
EVALUATIONS = {
    "mot": "tools.eval_mot",
    "faces": "tools.eval_faces",
    "rules": "tools.eval_rules",
    "fall": "tools.eval_fall",
    "anomaly": "tools.eval_anomaly",
    "plates": "tools.eval_plates",
}
TRAINERS = {
    "anomaly": "tools.train_anomaly",
}


def _stack(args: argparse.Namespace) -> int:
    from tools import stack

    settings = get_settings()
    if args.action == "up":
        try:
            started = stack.up(settings, args.only or None)
        except stack.StackError as exc:
            print(f"stack up failed: {redact_url(str(exc))}", file=sys.stderr)
            return 1
        print(f"stack up ({', '.join(started) or 'already running'})")
    elif args.action == "down":
        stack.down(settings, args.only or None)
        print("stack down")
    bad = 0
    for status in stack.status(settings):
        print(f"  {status.name:<11} {status.state:<9} pid={status.pid or '-'}")
        if status.state in ("crashed", "unhealthy"):
            bad += 1
            # the tail of the server's log: it may quote connection URLs
            print("    " + redact_url(status.detail).replace("\n", "\n    "))
    return 1 if bad else 0


def _models(args: argparse.Namespace) -> int:
    from tools.models import ModelFetchError, fetch

    try:
        fetched = fetch(get_settings(), args.names or None)
    except ModelFetchError as exc:
        print(f"error: {redact_url(str(exc))}", file=sys.stderr)
        return 1
    for name, path in fetched.items():
        print(f"{name}: {path}")
    return 0


def _topics(args: argparse.Namespace) -> int:
    from tools.stack import create_topics

    created = create_topics(get_settings())
    print(f"created: {', '.join(created) or 'none (all exist)'}")
    return 0


def _topology(args: argparse.Namespace) -> int:
    from argus.topology import TopologyError, load_topology

    settings = get_settings()
    try:
        topo = load_topology(Path(args.file) if args.file else settings.topology, settings.shared)
    except TopologyError as exc:
        print(redact_url(str(exc)), file=sys.stderr)
        return 2
    print(f"ok: {len(topo.sites)} site(s), {len(topo.cameras)} camera(s), "
          f"{len(topo.sensors)} sensor(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["bench", "live"]:  # a sub-mode: `argus bench --frames N` stays as it was
        module = importlib.import_module("tools.bench_live")
        live: int = module.main(argv[2:])
        return live
    # Service and tool entry points take their own arguments.
    if argv and argv[0] in ENTRY_POINTS:
        module = importlib.import_module(ENTRY_POINTS[argv[0]])
        result: int = module.main(argv[1:])
        return result
    if len(argv) >= 2 and argv[0] == "eval" and argv[1] in EVALUATIONS:
        module = importlib.import_module(EVALUATIONS[argv[1]])
        result = module.main(argv[2:])
        return result
    if len(argv) >= 2 and argv[0] == "train" and argv[1] in TRAINERS:
        module = importlib.import_module(TRAINERS[argv[1]])
        result = module.main(argv[2:])
        return result

    parser = argparse.ArgumentParser(prog="argus", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("stack", help="the embedded servers")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--only", nargs="*", help="redis mosquitto kafka triton prometheus")
    p.set_defaults(func=_stack)
    p = sub.add_parser("models", help="model files")
    p.add_argument("action", choices=["fetch"])
    p.add_argument("names", nargs="*")
    p.set_defaults(func=_models)
    p = sub.add_parser("topics", help="create the topics of ops/topics.yaml")
    p.add_argument("action", choices=["create"])
    p.set_defaults(func=_topics)
    p = sub.add_parser("topology", help="validate a topology file")
    p.add_argument("action", choices=["check"])
    p.add_argument("file", nargs="?")
    p.set_defaults(func=_topology)
    p = sub.add_parser("demo", help="run everything on a real video")
    p.add_argument("--duration", type=float, default=None, help="seconds, then stop")
    p.add_argument("--keep-stack", action="store_true", help="leave the servers running")
    p.set_defaults(func=lambda a: __import__("tools.demo").demo.run_demo(
        get_settings(), a.duration or None, a.keep_stack))
    sub.add_parser("worker", help="the stream stages (Faust); --stages a,b: a subset")
    sub.add_parser("graph", help="the stage/topic graph (Mermaid)")
    sub.add_parser("grabber", help="the frame grabber")
    sub.add_parser("gateway", help="the sensor gateway: serve | mqtt | replay")
    sub.add_parser("api", help="the alert API (REST + WebSocket)")
    sub.add_parser("lag-exporter", help="Kafka consumer-lag exporter for Prometheus")
    sub.add_parser("watchlist", help="face watchlists: enroll | list | remove")
    sub.add_parser("plates", help="plate hotlists and allow lists: list add|remove|show|check; "
                                  "sightings search")
    sub.add_parser("bench", help="throughput benchmark; `bench live`: real-time load")
    sub.add_parser("chaos", help="scripted infrastructure faults against a baseline "
                                 "(stops and starts the embedded servers)")
    sub.add_parser("eval", help="evaluations: mot | faces | rules | fall")
    sub.add_parser("train", help="model training: anomaly")
    args = parser.parse_args(argv)
    setup_logging()
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
