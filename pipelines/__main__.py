"""Run the stream workers: ``python -m pipelines [--metrics-port 39102]``."""

from __future__ import annotations

import argparse
import sys
import urllib.parse

from argus.log import setup_logging
from argus.metrics import reachable, serve
from argus.settings import get_settings
from argus.topology import load_topology
from pipelines.app import create_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="argus worker", description=__doc__)
    parser.add_argument("--metrics-port", type=int, default=39102)
    parser.add_argument("--loglevel", default="warn",
                        choices=["crit", "error", "warn", "info", "debug"])
    args = parser.parse_args(argv)
    setup_logging()
    settings = get_settings()
    topology = load_topology(settings.topology, settings.shared)
    host = urllib.parse.urlsplit(settings.redis_url).netloc.rpartition("@")[2]
    serve(args.metrics_port, ready=lambda: reachable(settings.kafka_bootstrap)
          and reachable(settings.triton_grpc_url) and reachable(host))
    app = create_app(settings, topology)
    # --without-web: faust's own web server (port 6066) would clash between workers on one
    # host; /metrics and health are served above.
    sys.argv = ["argus-worker", "worker", f"--loglevel={args.loglevel}", "--without-web"]
    app.main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
