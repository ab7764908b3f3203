"""Command line of the alert API.

::

    python -m services.alert_api [--host 127.0.0.1] [--port 29106]

Needs at least one API key (``ARGUS_API_KEYS`` or ``ARGUS_API_KEYS_FILE``). Serves the
API, ``/docs``, ``/metrics``, ``/healthz`` and ``/readyz`` on one port; stops cleanly on
SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse

import uvicorn
from pydantic import ValidationError

from argus.log import get_logger, setup_logging
from argus.settings import get_settings
from services.alert_api.app import create_app
from services.alert_api.auth import AuthConfigError
from services.alert_api.config import ApiConfig

log = get_logger("services.alert_api")

PORT = 29106


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.alert_api",
                                     description="Argus alert API (REST, live feed, actions)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=PORT)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the API until stopped; returns the process exit status."""
    args = _parser().parse_args(argv)
    setup_logging()
    try:
        app = create_app(get_settings(), ApiConfig())
    except (AuthConfigError, ValidationError) as exc:
        log.error("alert_api.config", extra={"error": str(exc)})
        return 1
    # open live-feed streams never end by themselves: bound the graceful shutdown
    config = uvicorn.Config(app, host=args.host, port=args.port, log_config=None,
                            access_log=False, lifespan="on", timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    try:
        server.run()
    except (OSError, SystemExit) as exc:
        log.error("alert_api.failed", extra={"error": repr(exc)})
        return 1
    return 0 if server.started else 1


if __name__ == "__main__":
    raise SystemExit(main())
