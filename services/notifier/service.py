"""The notifier process: configuration and the consumer loop of the ``alerts`` topic (and
of ``commands``, whose ``webhook`` commands it executes: ``services/notifier/commands.py``).

Webhooks come from ``ARGUS_WEBHOOKS_FILE`` (YAML) and/or ``ARGUS_WEBHOOK_URLS``
(comma-separated URLs, every change, named ``hook-1``, ``hook-2``...)::

    webhooks:
      - name: ops-chat
        url: https://chat.example/hooks/argus
        min_severity: high              # default: info
        changes: [created, updated]     # default: all four
        sites: [site-a]                 # default: every site
        secret: "…"                     # optional: X-Argus-Signature
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis
import yaml
from aiokafka import AIOKafkaConsumer
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from argus.log import get_logger
from argus.redact import redact_url
from argus.settings import Settings
from schemas.alerts import Alert
from schemas.commands import Command
from services.notifier.commands import execute
from services.notifier.notifier import RetryPolicy, Webhook, notify

log = get_logger(__name__)

GROUP_ID = "argus-notifier"


class NotifierConfig(BaseSettings):
    """Override any with ``ARGUS_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="ARGUS_", frozen=True, extra="ignore")

    webhook_urls: str = ""
    webhooks_file: Path | None = None
    webhook_attempts: int = 6
    webhook_backoff_s: float = 0.5
    webhook_backoff_cap_s: float = 30.0
    webhook_timeout_s: float = 10.0
    command_webhooks: bool = True
    """Also execute the rules' webhook actions (``webhook`` commands on ``commands``)."""
    command_webhook_secret: str | None = Field(default=None, repr=False)
    """Signs rule webhook POSTs (``X-Argus-Signature``) when set."""

    def policy(self) -> RetryPolicy:
        return RetryPolicy(self.webhook_attempts, self.webhook_backoff_s,
                           self.webhook_backoff_cap_s, self.webhook_timeout_s)


class WebhookConfigError(ValueError):
    """Unusable webhook configuration (the message says where)."""


def load_webhooks(config: NotifierConfig) -> list[Webhook]:
    """The configured webhooks (names must be unique)."""
    hooks: list[Webhook] = []
    try:
        for i, url in enumerate(u.strip() for u in config.webhook_urls.split(",")):
            if url:
                hooks.append(Webhook.model_validate({"name": f"hook-{i + 1}", "url": url}))
    except ValidationError as exc:
        raise WebhookConfigError(f"ARGUS_WEBHOOK_URLS: {exc.errors()[0]['msg']}") from None
    if config.webhooks_file is not None:
        path = config.webhooks_file
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            # a YAML error quotes the offending line, which may hold a webhook's token
            raise WebhookConfigError(redact_url(f"{path}: {exc}")) from None
        if not isinstance(data, dict) or not isinstance(data.get("webhooks"), list):
            raise WebhookConfigError(f"{path}: expected a mapping with a 'webhooks' list")
        for index, item in enumerate(data["webhooks"]):
            try:
                hooks.append(Webhook.model_validate(item))
            except ValidationError as exc:
                error = exc.errors()[0]
                where = ".".join(map(str, error["loc"]))
                raise WebhookConfigError(f"{path}: webhooks[{index}].{where}: {error['msg']}"
                                         ) from None
    names = [h.name for h in hooks]
    if len(set(names)) != len(names):
        raise WebhookConfigError(f"webhook names must be unique: {names}")
    return hooks


async def run(settings: Settings, webhooks: list[Webhook], policy: RetryPolicy,
              stop: asyncio.Event, offset_reset: str = "latest", *, commands: bool = False,
              command_secret: str | None = None) -> None:
    """Consume ``alerts`` (and ``commands`` if ``commands``) until ``stop`` is set; commit
    after each batch of messages is handled."""
    topics = [settings.topic("alerts")] + ([settings.topic("commands")] if commands else [])
    consumer = AIOKafkaConsumer(*topics,
                                bootstrap_servers=settings.kafka_bootstrap,
                                group_id=f"{settings.app_id}-notifier" if settings.topic_prefix
                                else GROUP_ID,
                                enable_auto_commit=False, auto_offset_reset=offset_reset)
    client = aioredis.Redis.from_url(settings.redis_url)
    await consumer.start()
    try:
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=100)
                for records in batches.values():
                    for record in records:
                        is_command = record.topic == settings.topic("commands")
                        try:
                            message = (Command if is_command else Alert).model_validate_json(
                                record.value or b"")
                        except ValidationError as exc:
                            log.warning("notifier.bad_message", extra={
                                "topic": record.topic, "offset": record.offset,
                                "error": str(exc)[:500]})
                            continue
                        if isinstance(message, Command):
                            await execute(session, client, webhooks, message, policy,
                                          command_secret)
                        else:
                            await notify(session, client, webhooks, message, policy)
                if batches:
                    await consumer.commit()
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        await client.aclose()
