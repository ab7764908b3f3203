"""Command line of the webhook notifier.

::

    python -m services.notifier [--metrics-port 29107] [--from-beginning]

Webhooks from ``ARGUS_WEBHOOKS_FILE`` / ``ARGUS_WEBHOOK_URLS``, plus the rules' webhook
actions from the ``commands`` topic (``ARGUS_COMMAND_WEBHOOKS=false`` turns them off);
stops cleanly on SIGINT/SIGTERM (the current message is finished and committed).
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from pydantic import ValidationError

from argus.log import get_logger, setup_logging
from argus.metrics import serve as serve_metrics
from argus.settings import get_settings
from services.notifier.service import NotifierConfig, WebhookConfigError, load_webhooks, run

log = get_logger("services.notifier")

METRICS_PORT = 29107


async def _main(args: argparse.Namespace) -> None:
    config = NotifierConfig()
    webhooks = load_webhooks(config)
    if not webhooks and not config.command_webhooks:
        raise WebhookConfigError("no webhooks configured (ARGUS_WEBHOOK_URLS or "
                                 "ARGUS_WEBHOOKS_FILE) and rule webhooks disabled "
                                 "(ARGUS_COMMAND_WEBHOOKS=false)")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = serve_metrics(args.metrics_port)
    log.info("notifier.started", extra={"webhooks": [w.name for w in webhooks],
                                        "rule_webhooks": config.command_webhooks})
    try:
        await run(get_settings(), webhooks, config.policy(), stop,
                  "earliest" if args.from_beginning else "latest",
                  commands=config.command_webhooks,
                  command_secret=config.command_webhook_secret)
    finally:
        server.shutdown()


def main(argv: list[str] | None = None) -> int:
    """Run the notifier until stopped; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="python -m services.notifier",
                                     description="Argus webhook notifier")
    parser.add_argument("--metrics-port", type=int, default=METRICS_PORT)
    parser.add_argument("--from-beginning", action="store_true",
                        help="a new consumer group starts at the oldest change, not the next")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        asyncio.run(_main(args))
    except (WebhookConfigError, ValidationError, OSError) as exc:
        log.error("notifier.failed", extra={"error": str(exc)})
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
