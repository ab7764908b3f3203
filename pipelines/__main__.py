"""Run the stream workers: ``argus worker [--stages detect,track] [--metrics-port 29102]``.

Without ``--stages`` the worker runs every declared stage (``argus graph`` lists them);
with it, only those, in a consumer group of their own (see pipelines/app.py), so stages
scale separately: e.g. two ``--stages detect`` workers and one for the rest.
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse

from argus.log import setup_logging
from argus.metrics import reachable, serve
from argus.settings import get_settings
from argus.topology import load_topology
from pipelines.app import create_app
from pipelines.stages import STAGES, stage_classes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="argus worker", description=__doc__)
    parser.add_argument("--metrics-port", type=int, default=29102)
    parser.add_argument("--stages", default="",
                        help="comma-separated subset of: " + ",".join(s.name for s in STAGES))
    parser.add_argument("--loglevel", default="warn",
                        choices=["crit", "error", "warn", "info", "debug"])
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.stages.split(",") if n.strip()] or None
    try:
        stage_classes(names)
    except ValueError as exc:
        parser.error(str(exc))
    setup_logging()
    settings = get_settings()
    topology = load_topology(settings.topology, settings.shared)
    host = urllib.parse.urlsplit(settings.redis_url).netloc.rpartition("@")[2]
    serve(args.metrics_port, ready=lambda: reachable(settings.kafka_bootstrap)
          and reachable(settings.triton_grpc_url) and reachable(host))
    app = create_app(settings, topology, names)
    # --without-web: faust's own web server (port 6066) would clash between workers on one
    # host; /metrics and health are served above.
    sys.argv = ["argus-worker", "worker", f"--loglevel={args.loglevel}", "--without-web"]
    app.main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
