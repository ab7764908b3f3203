"""The correlate stage: ``events.video`` + ``events.face`` + ``counts`` + ``sensors.events``
(+ ``events.plate`` + timer ticks per site) → alert changes in Redis and on ``alerts``, rule
actions on ``commands``. A ``counts`` message becomes ``occupancy`` events, an
``events.plate`` message a ``plate_seen`` and one ``plate_match`` per hotlist hit
(``writer.py``).

State is per site in the ``correlation-state`` table (the inputs are keyed by site). An
event is applied to a copy of its site's state; alerts are written first and the state
after, so a crash in between replays the event and the sink's version check makes the
replay a no-op (at-least-once, no loss). The rules engine is ``rules/``, the Redis and
Kafka writes ``writer.py``; docs/rules.md has the rules.
"""

from __future__ import annotations

import copy
import time
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_settings import SettingsConfigDict
from redis.exceptions import RedisError

from argus.metrics import CORRELATION_DUPLICATES, STAGE_OUT
from pipelines.stage import (
    Message,
    OneByOne,
    Record,
    Rejected,
    Skipped,
    StageContext,
    StageSettings,
    Timer,
)
from pipelines.stages.correlate.rules import AlertChange
from pipelines.stages.correlate.writer import (
    COMMAND_RETRY_S,
    AlertWriter,
    Event,
    RulesFile,
    known_site,
    observe,
    parse_events,
)

TICKS = "correlation.ticks"


class CorrelateSettings(StageSettings):
    """``ARGUS_CORRELATE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="ARGUS_CORRELATE_", frozen=True,
                                      extra="ignore")

    tick_s: float = 10.0
    """How often absence/timeout rules are evaluated without a new event."""
    reload_s: float = 5.0
    """How often the rules file is checked for changes (hot reload)."""


@dataclass(frozen=True)
class Input:
    site: str
    triggers: tuple[Event, ...]  # empty: a timer tick
    source: str


class Correlate(OneByOne[Input, Message]):
    name = "correlate"
    inputs = ("events.video", "events.face", "events.plate", "counts", "sensors.events", TICKS)
    output = None  # alerts and commands are written by the AlertWriter (broker-acked)
    settings_class = CorrelateSettings
    tables = ("correlation-state",)
    retry_on = (RedisError,)
    settings: CorrelateSettings

    def __init__(self, ctx: StageContext, settings: CorrelateSettings) -> None:
        self.ctx = ctx
        self.settings = settings
        self.topology = ctx.topology
        self.site_ids = [site.id for site in ctx.topology.sites]
        self.rules = RulesFile(ctx.settings.rules, ctx.topology)
        self.state: MutableMapping[str, Any] = ctx.table("correlation-state")

        async def send_alert(key: bytes, value: bytes) -> None:
            await ctx.send("alerts", key, value)

        async def send_command(key: bytes, value: bytes) -> None:
            await ctx.send("commands", key, value)

        self.writer = AlertWriter(ctx.settings, ctx.redis, send_alert, send_command)

    @classmethod
    def build(cls, ctx: StageContext) -> Correlate | None:
        settings = CorrelateSettings()
        return cls(ctx, settings)

    def parse(self, record: Record) -> Input:
        if record.topic == TICKS:
            site = (record.key or b"").decode()
            if site not in self.site_ids:
                raise Skipped("unknown_site_tick")
            return Input(site, (), record.topic)
        triggers = tuple(parse_events(record.topic, record.value or b"", self.topology))
        if not triggers:
            raise Skipped("no_events")  # e.g. the counts of a line, or of an empty zone
        if not known_site(triggers[0], self.topology):
            raise Rejected("unknown_site", f"site {triggers[0].site_id!r} not in topology")
        return Input(triggers[0].site_id, triggers, record.topic)

    async def handle_one(self, item: Input) -> Sequence[Message]:
        state = copy.deepcopy(self.state.get(item.site) or {})
        changes: list[tuple[AlertChange, Event | None]] = []
        if not item.triggers:
            changes = [(c, None) for c in self.rules.engine.tick(state, time.time(), item.site)]
        fresh = not item.triggers
        for trigger in item.triggers:
            found = observe(self.rules.engine, state, trigger)
            if found is None:
                CORRELATION_DUPLICATES.labels(item.source).inc()
                continue
            fresh = True
            changes.extend((change, trigger) for change in found)
        if not fresh:
            return []  # every event seen before (a redelivery): nothing to write
        for change, cause in changes:
            await self.writer.write(change, cause)
            STAGE_OUT.labels(self.name).inc()
        self.state[item.site] = state
        return []

    def timers(self) -> list[Timer]:
        return [Timer("resend_commands", COMMAND_RETRY_S, self.writer.resend_commands_quietly,
                      on_leader=True),
                Timer("tick_sites", self.settings.tick_s, self.tick_sites, on_leader=True),
                Timer("reload_rules", self.settings.reload_s, self.reload_rules)]

    async def tick_sites(self) -> None:
        """Absence and silence rules need time to pass, not only events."""
        if self.rules.engine.needs_ticks:
            for site in self.site_ids:
                await self.ctx.send(TICKS, site.encode(), b"{}")

    async def reload_rules(self) -> None:
        self.rules.maybe_reload()
