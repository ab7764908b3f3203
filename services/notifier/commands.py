"""Rules' webhook actions: ``webhook`` commands from the ``commands`` topic, POSTed by the
notifier with the same retries, outcome records and metrics as alert webhooks::

    POST <params.url>   {"command": {...}, "alert": {...} or null}
    X-Argus-Event: command.webhook
    X-Argus-Delivery: <command_id>                    (receivers de-duplicate on it)
    X-Argus-Signature: sha256=<HMAC-SHA256 of the body>   (with a command secret)

``alert`` is the alert as it is in Redis when the command is delivered. Not POSTed, and
counted in ``argus_webhook_deliveries_total{webhook="rule:<rule>",outcome}``:

- ``expired``: the command is past its ``expires_at``;
- ``covered``: its URL is a configured webhook that is sent this alert change anyway
  (one POST per alert change and URL, not two);
- ``duplicate``: this ``command_id`` was handled before (a replayed message).

Lights and PTZ commands are for site controllers; the notifier ignores them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import aiohttp
import redis.asyncio as aioredis
from pydantic import HttpUrl, ValidationError

from argus.stores import alerts as alert_sink
from schemas.alerts import Alert, ChangeKind
from schemas.commands import Command, CommandType
from services.notifier.notifier import (
    SENT_TTL_S,
    WEBHOOK_DELIVERIES,
    Delivery,
    RetryPolicy,
    Webhook,
    post,
    record,
    sign,
)

TRIGGER_CHANGE: dict[str, ChangeKind] = {
    "opened": ChangeKind.CREATED, "updated": ChangeKind.UPDATED,
    "escalated": ChangeKind.UPDATED,
}
"""The ``alerts`` change that carries the same alert change as a command's trigger."""
DEFAULT_POLICY = RetryPolicy()


def normal_url(url: str) -> str:
    """A URL as the webhook configuration stores it (so equal URLs compare equal).

    >>> normal_url("HTTP://Ops.Example:80/hook") == normal_url("http://ops.example/hook")
    True
    """
    try:
        return str(HttpUrl(url))
    except ValidationError:
        return url


def covering(webhooks: Sequence[Webhook], command: Command) -> Webhook | None:
    """The configured webhook at the command's URL that gets this alert change anyway."""
    url = normal_url(str(command.params["url"]))
    change = TRIGGER_CHANGE[command.trigger]
    for webhook in webhooks:
        if str(webhook.url) == url and webhook.wants_change(command.severity, change,
                                                            command.site_id):
            return webhook
    return None


def command_request(command: Command, alert: Alert | None, secret: str | None = None
                    ) -> tuple[bytes, dict[str, str]]:
    """The body and headers of the POST of one webhook command."""
    body = json.dumps({"command": command.model_dump(mode="json"),
                       "alert": None if alert is None else alert.model_dump(mode="json")}
                      ).encode()
    headers = {"Content-Type": "application/json", "X-Argus-Event": "command.webhook",
               "X-Argus-Delivery": command.command_id}
    if secret:
        headers["X-Argus-Signature"] = sign(secret, body)
    return body, headers


def _sent_key(command: Command) -> str:
    return f"argus:webhooks:sent:command:{command.command_id}"


async def execute(session: aiohttp.ClientSession, client: aioredis.Redis,
                  webhooks: Sequence[Webhook], command: Command,
                  policy: RetryPolicy = DEFAULT_POLICY, secret: str | None = None,
                  now: float | None = None) -> Delivery | None:
    """POST one webhook command unless it is expired, covered or already handled;
    records the outcome and marks the command handled. None when nothing was POSTed."""
    if command.type is not CommandType.WEBHOOK:
        return None
    name = f"rule:{command.rule}"
    skip = ("expired" if command.expired(time.time() if now is None else now)
            else "covered" if covering(webhooks, command) is not None
            else "duplicate" if await client.exists(_sent_key(command)) else None)
    if skip is not None:
        WEBHOOK_DELIVERIES.labels(name, skip).inc()
        return None
    alert = await alert_sink.get_alert(client, command.alert_id)
    body, headers = command_request(command, alert, secret)
    done = await post(session, str(command.params["url"]), body, headers, name, policy)
    delivery = Delivery(name, command.alert_id, command.alert_version,
                        f"command.{command.trigger}", done.outcome, done.attempts, done.status,
                        done.error, done.seconds, command_id=command.command_id)
    await record(client, delivery)
    await client.set(_sent_key(command), delivery.outcome, ex=SENT_TTL_S)
    return delivery
