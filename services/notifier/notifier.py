"""Webhook delivery of alert changes, with retries, backoff and a recorded outcome.

The notifier consumes the ``alerts`` topic (consumer group ``argus-notifier``, offsets
committed after a message's deliveries are done, so delivery is at-least-once) and POSTs
each change a webhook wants to it::

    POST <url>   {"change": "acknowledged", "alert": {...}}
    X-Argus-Event: alert.acknowledged
    X-Argus-Delivery: <alert id>:<version>           (receivers de-duplicate on it)
    X-Argus-Signature: sha256=<HMAC-SHA256 of the body with the webhook's secret>

2xx is delivered; 408, 425, 429, 5xx, timeouts and connection errors are retried with
exponential backoff (``Retry-After`` honoured up to the cap); any other status fails at
once. Every outcome is appended to the ``argus:webhooks:deliveries`` stream (capped) and
counted in ``argus_webhook_deliveries_total{webhook,outcome}``; a change delivered (or
failed for good) is marked in Redis so a replayed message is not sent twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import aiohttp
import redis.asyncio as aioredis
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from argus.log import get_logger
from argus.redact import redact_url
from schemas.alerts import Alert, ChangeKind, Severity

log = get_logger(__name__)

DELIVERIES = "argus:webhooks:deliveries"
DELIVERIES_MAXLEN = 10_000
SENT_TTL_S = 7 * 24 * 3600

WEBHOOK_DELIVERIES = Counter("argus_webhook_deliveries_total",
                             "Webhook deliveries by final outcome", ["webhook", "outcome"])
WEBHOOK_ATTEMPTS = Counter("argus_webhook_attempts_total", "Webhook HTTP attempts",
                           ["webhook"])
WEBHOOK_LATENCY = Histogram("argus_webhook_delivery_seconds",
                            "From the first attempt to the final outcome", ["webhook"],
                            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))

Verdict = Literal["delivered", "retry", "failed"]


class Webhook(BaseModel):
    """One receiver and the changes it wants."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=64)
    url: HttpUrl
    min_severity: Severity = Severity.INFO
    changes: frozenset[ChangeKind] = frozenset(ChangeKind)
    sites: frozenset[str] = frozenset()
    """Only these sites (empty: every site)."""
    secret: str | None = Field(default=None, repr=False)

    def wants(self, alert: Alert) -> bool:
        return self.wants_change(alert.severity, alert.change, alert.site_id)

    def wants_change(self, severity: Severity, change: ChangeKind, site_id: str) -> bool:
        """Whether a change of this severity, kind and site is sent to this webhook."""
        return (severity.rank >= self.min_severity.rank and change in self.changes
                and (not self.sites or site_id in self.sites))


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base_s: float = 0.5
    cap_s: float = 30.0
    timeout_s: float = 10.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based).

        >>> [RetryPolicy().delay(n) for n in (1, 2, 3, 8)]
        [0.5, 1.0, 2.0, 30.0]
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.cap_s)
        return min(self.base_s * 2 ** (attempt - 1), self.cap_s)


@dataclass(frozen=True)
class Delivery:
    webhook: str
    alert_id: str
    version: int
    change: str
    outcome: Literal["delivered", "failed"]
    attempts: int
    status: int | None
    error: str
    seconds: float
    command_id: str = ""
    """Set for a rule's webhook command (``services/notifier/commands.py``)."""


def verdict(status: int) -> Verdict:
    """What an HTTP status means for a delivery.

    >>> verdict(204), verdict(503), verdict(404)
    ('delivered', 'retry', 'failed')
    """
    if 200 <= status < 300:
        return "delivered"
    if status in (408, 425, 429) or status >= 500:
        return "retry"
    return "failed"


def sign(secret: str, body: bytes) -> str:
    """The ``X-Argus-Signature`` value.

    >>> sign("s", b"{}")[:15]
    'sha256=143ca8d5'
    """
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def request_for(webhook: Webhook, alert: Alert) -> tuple[bytes, dict[str, str]]:
    """The body and headers of the POST of one change."""
    body = json.dumps({"change": alert.change.value,
                       "alert": alert.model_dump(mode="json")}).encode()
    headers = {"Content-Type": "application/json",
               "X-Argus-Event": f"alert.{alert.change.value}",
               "X-Argus-Delivery": f"{alert.alert_id}:{alert.version}"}
    if webhook.secret:
        headers["X-Argus-Signature"] = sign(webhook.secret, body)
    return body, headers


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Attempts:
    """The result of POSTing one body until a final outcome."""

    outcome: Literal["delivered", "failed"]
    attempts: int
    status: int | None
    error: str
    seconds: float


async def deliver(session: aiohttp.ClientSession, webhook: Webhook, alert: Alert,
                  policy: RetryPolicy = RetryPolicy()) -> Delivery:
    """POST one change until delivered, failed for good, or out of attempts."""
    body, headers = request_for(webhook, alert)
    done = await post(session, str(webhook.url), body, headers, webhook.name, policy)
    return Delivery(webhook.name, alert.alert_id, alert.version, alert.change.value,
                    done.outcome, done.attempts, done.status, done.error, done.seconds)


async def post(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str],
               name: str, policy: RetryPolicy = RetryPolicy()) -> Attempts:
    """POST ``body`` to ``url`` with retries and backoff (``verdict``); ``name`` labels
    the attempt metric."""
    started = time.monotonic()
    status: int | None = None
    error = ""
    outcome: Verdict = "retry"
    attempt = 0
    for attempt in range(1, max(policy.attempts, 1) + 1):
        WEBHOOK_ATTEMPTS.labels(name).inc()
        retry_after = None
        try:
            async with session.post(url, data=body, headers=headers,
                                    timeout=aiohttp.ClientTimeout(total=policy.timeout_s)
                                    ) as response:
                status, error = response.status, ""
                outcome = verdict(response.status)
                if outcome != "retry":
                    break
                retry_after = _retry_after(response.headers.get("Retry-After"))
                error = f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            # aiohttp's messages may quote the URL (a token in its query): masked, then cut
            status, outcome, error = None, "retry", redact_url(f"{type(exc).__name__}: {exc}")[:300]
        if attempt < policy.attempts:
            await asyncio.sleep(policy.delay(attempt, retry_after))
    final: Literal["delivered", "failed"] = "delivered" if outcome == "delivered" else "failed"
    if final == "failed" and not error:
        error = f"HTTP {status}"
    return Attempts(final, attempt, status, error, time.monotonic() - started)


def _sent_key(webhook: Webhook, alert: Alert) -> str:
    return f"argus:webhooks:sent:{webhook.name}:{alert.alert_id}:{alert.version}"


async def record(client: aioredis.Redis, delivery: Delivery) -> None:
    """Append the outcome to the deliveries stream and count it."""
    WEBHOOK_DELIVERIES.labels(delivery.webhook, delivery.outcome).inc()
    WEBHOOK_LATENCY.labels(delivery.webhook).observe(delivery.seconds)
    await client.xadd(DELIVERIES, {
        "ts": time.time(), "webhook": delivery.webhook, "alert_id": delivery.alert_id,
        "version": delivery.version, "change": delivery.change, "outcome": delivery.outcome,
        "attempts": delivery.attempts, "status": delivery.status or "",
        "error": delivery.error, **({"command_id": delivery.command_id}
                                    if delivery.command_id else {})},
        maxlen=DELIVERIES_MAXLEN, approximate=True)
    level = log.info if delivery.outcome == "delivered" else log.warning
    level("webhook.outcome", extra={"webhook": delivery.webhook, "alert_id": delivery.alert_id,
                                    "version": delivery.version, "outcome": delivery.outcome,
                                    "attempts": delivery.attempts, "error": delivery.error})


async def notify(session: aiohttp.ClientSession, client: aioredis.Redis,
                 webhooks: Sequence[Webhook], alert: Alert,
                 policy: RetryPolicy = RetryPolicy()) -> list[Delivery]:
    """Deliver one change to every webhook that wants it and has not had it (by alert id
    and version), concurrently; records each outcome."""
    async def one(webhook: Webhook) -> Delivery | None:
        if await client.exists(_sent_key(webhook, alert)):
            WEBHOOK_DELIVERIES.labels(webhook.name, "duplicate").inc()
            return None
        delivery = await deliver(session, webhook, alert, policy)
        await record(client, delivery)
        await client.set(_sent_key(webhook, alert), delivery.outcome, ex=SENT_TTL_S)
        return delivery

    results = await asyncio.gather(*(one(w) for w in webhooks if w.wants(alert)))
    return [d for d in results if d is not None]
