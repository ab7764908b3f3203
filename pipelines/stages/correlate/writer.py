"""The correlate stage: ``events.video`` + ``events.face`` + ``events.plate`` + ``counts`` +
``sensors.events`` (+ ticks) → alert changes, written to Redis (lifecycle, idempotent) and to
the ``alerts`` topic, and the rules' actions as ``commands`` (through a Redis outbox, see
:class:`CommandOutbox`).

The rules are data (``config/rules.yaml``, see docs/rules.md), evaluated by
:class:`pipelines.stages.correlate.rules.RuleEngine` on a JSON-safe per-site state that the Faust
app keeps in a changelog-backed table. This module holds the stage's logic between the
topics and the engine; ``stage.py`` is the stage itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio as aioredis
from prometheus_client import Counter
from pydantic import ValidationError
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from argus.log import get_logger
from argus.metrics import (
    ALERTS,
    ALERTS_DUPLICATE,
    ALERTS_UPDATED,
    CAPTURE_TO_ALERT,
    STAGE_ERRORS,
)
from argus.plates.events import plate_place, plate_to_video_events
from argus.settings import Settings
from argus.stores import alert_outbox
from argus.stores import alerts as alert_sink
from argus.topology import Topology
from pipelines.stages.correlate.rules import (
    AlertChange,
    RuleEngine,
    RuleError,
    State,
    commands_for,
    load_rules,
)
from schemas.commands import Command
from schemas.counts import Counts
from schemas.detections import Box
from schemas.events import VideoEvent
from schemas.faces import FaceEvent
from schemas.plates import PlateEvent
from schemas.sensors import SensorEvent

log = get_logger(__name__)

SendAlert = Callable[[bytes, bytes], Awaitable[None]]
SendCommand = Callable[[bytes, bytes], Awaitable[None]]
Event = VideoEvent | SensorEvent

COMMAND_PREFIX = "argus:command:"
COMMANDS_UNSENT = "argus:commands:unsent"
"""Sorted set: ids of commands written with their alert change but not yet on Kafka
(score = issued at); ``argus:command:<id>`` holds each one's JSON."""
COMMAND_RETRY_S = 10.0
"""Pending commands older than this are re-sent by :meth:`CommandOutbox.resend`."""
COMMANDS = Counter("argus_commands_total", "Commands from rule actions, by outcome "
                   "(issued, sent, send_failed, expired)", ["type", "outcome"])


def face_to_video_event(face: FaceEvent) -> VideoEvent:
    """A watchlist face match as the engine's ``face_match`` video event.

    >>> from schemas.detections import Box
    >>> e = face_to_video_event(FaceEvent(event_id="f1", camera_id="c", site_id="s", ts=1.0,
    ...     seq=3, list_id="wanted", category="wanted", person_id="p1", person_ref="case-7",
    ...     similarity=0.9, threshold=0.79, quality=0.8,
    ...     face_box=Box(x1=0.1, y1=0.1, x2=0.2, y2=0.3)))
    >>> e.kind, e.attributes["subject"], e.zone_id
    ('face_match', 'case-7', '_frame')
    """
    attributes: dict[str, str | int | float | bool] = {
        "subject": face.person_ref, "list": face.list_id, "category": face.category,
        "person_id": face.person_id, "similarity": round(face.similarity, 4),
    }
    if face.track_id is not None:
        attributes["track_id"] = face.track_id
    if face.crop_ref:
        attributes["crop_ref"] = face.crop_ref
    return VideoEvent(
        event_id=face.event_id, kind="face_match", camera_id=face.camera_id,
        site_id=face.site_id, zone_id="_frame", site_zone_id=None, ts=face.ts, seq=face.seq,
        class_name="person", score=max(0.0, min(1.0, face.similarity)),
        box=Box.model_validate(face.face_box.model_dump()), count=1, attributes=attributes,
        track_ids=[face.track_id] if face.track_id is not None else [],
        snapshot_ref=face.snapshot_ref,
    )


FULL_FRAME = Box(x1=0.0, y1=0.0, x2=1.0, y2=1.0)


def counts_to_video_events(counts: Counts) -> list[VideoEvent]:
    """A zone's counting window as the engine's ``occupancy`` video events: one per class
    group that was in the zone (``count`` = its max occupancy; a line has none).

    >>> from schemas.counts import GroupCounts
    >>> c = Counts(camera_id="c", site_id="s", area_type="zone", area_id="floor",
    ...     site_zone_id="lobby", window_start=60.0, window_end=120.0, frames=5, last_seq=9,
    ...     last_ts=119.5, groups={"people": GroupCounts(entries=3, exits=1, occupancy=2,
    ...     max_occupancy=4), "vehicles": GroupCounts(entries=0, exits=0, occupancy=0,
    ...     max_occupancy=0)})
    >>> [(e.kind, e.class_name, e.count, e.event_id) for e in counts_to_video_events(c)]
    [('occupancy', 'people', 4, 'c:floor:occupancy:people:60')]
    """
    if counts.area_type != "zone":
        return []
    return [VideoEvent(
        event_id=f"{counts.camera_id}:{counts.area_id}:occupancy:{group}:"
                 f"{int(counts.window_start)}",
        kind="occupancy", camera_id=counts.camera_id, site_id=counts.site_id,
        zone_id=counts.area_id, site_zone_id=counts.site_zone_id, ts=counts.last_ts,
        seq=counts.last_seq, class_name=group, score=1.0, box=FULL_FRAME,
        count=tally.max_occupancy,
        attributes={"group": group, "area": counts.area_id, "entries": tally.entries,
                    "exits": tally.exits, "occupancy": tally.occupancy or 0,
                    "window_start": counts.window_start, "window_s":
                        round(counts.window_end - counts.window_start, 3)},
        start_ts=counts.window_start, end_ts=counts.last_ts)
        for group, tally in counts.groups.items() if tally.max_occupancy]


def parse_events(kind: str, value: bytes, topology: Topology | None = None) -> list[Event]:
    """Parse a record of one of the stage's input topics into the events it holds (one,
    or for ``counts`` one per class group seen in the zone, for ``events.plate`` a
    ``plate_seen`` and a ``plate_match`` per hotlist hit); raises ``ValidationError``.
    ``topology`` places a plate (its site's allow lists, the vehicle's zone); without it a
    plate is on no allow list and in no zone."""
    if kind == "counts":
        return list(counts_to_video_events(Counts.model_validate_json(value)))
    if kind == "events.plate":
        plate = PlateEvent.model_validate_json(value)
        place = plate_place(topology, plate) if topology is not None else None
        return list(plate_to_video_events(plate, place))
    return [parse_event(kind, value)]


def parse_event(kind: str, value: bytes) -> Event:
    """Parse a record of one of the stage's single-event topics; raises
    ``ValidationError``."""
    if kind == "events.video":
        return VideoEvent.model_validate_json(value)
    if kind == "events.face":
        return face_to_video_event(FaceEvent.model_validate_json(value))
    return SensorEvent.model_validate_json(value)


class RulesFile:
    """The rules file, reloaded when its modification time changes; a bad edit is logged
    and the rules in force stay."""

    def __init__(self, path: Path, topology: Topology) -> None:
        self.path = path
        self.topology = topology
        self.mtime = path.stat().st_mtime
        self.engine = RuleEngine(load_rules(path, topology), topology)

    def maybe_reload(self) -> bool:
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            return False
        if mtime == self.mtime:
            return False
        self.mtime = mtime
        try:
            rules = load_rules(self.path, self.topology)
        except RuleError as exc:
            log.error("rules reload failed; keeping the rules in force",
                      extra={"path": str(self.path), "error": str(exc)})
            return False
        self.engine.reload(rules)
        log.info("rules reloaded", extra={"path": str(self.path)})
        return True


def command_key(command_id: str) -> str:
    return f"{COMMAND_PREFIX}{command_id}"


def queue_commands(commands: list[Command], ttl_s: int) -> Callable[[Pipeline], None]:
    """The outbox writes of ``commands``, to run inside their alert change's transaction."""
    def writes(pipe: Pipeline) -> None:
        for command in commands:
            pipe.set(command_key(command.command_id), command.model_dump_json(), ex=ttl_s)
            pipe.zadd(COMMANDS_UNSENT, {command.command_id: command.issued_at})
    return writes


class CommandOutbox:
    """Commands wait in Redis (written atomically with the alert change that issued them)
    until Kafka acknowledged them; they are sent as stored, so a re-send is the same bytes
    under the same id. Expired ones are dropped and counted, never sent."""

    def __init__(self, redis_client: aioredis.Redis, send: SendCommand) -> None:
        self.redis = redis_client
        self.send = send

    async def send_pending(self, command_ids: list[str]) -> int:
        """Send those of ``command_ids`` still in the outbox; returns how many were sent."""
        sent = 0
        for command_id in command_ids:
            if await self.redis.zscore(COMMANDS_UNSENT, command_id) is not None:
                sent += await self._send_one(command_id)
        return sent

    async def resend(self, older_than_s: float = COMMAND_RETRY_S, limit: int = 100) -> int:
        """Send what is still pending ``older_than_s`` after it was issued (a failed send,
        or a worker that died after the Redis write); returns how many were sent."""
        raw = await self.redis.zrangebyscore(COMMANDS_UNSENT, "-inf",
                                             time.time() - older_than_s, start=0, num=limit)
        sent = 0
        for command_id in (i.decode() if isinstance(i, bytes) else str(i) for i in raw):
            sent += await self._send_one(command_id)
        return sent

    async def _send_one(self, command_id: str) -> bool:
        text = await self.redis.get(command_key(command_id))
        if text is None:  # expired from Redis: nothing left to send
            await self.redis.zrem(COMMANDS_UNSENT, command_id)
            return False
        command = Command.model_validate_json(text)
        kind = command.type.value
        if command.expired(time.time()):
            await self.redis.zrem(COMMANDS_UNSENT, command_id)
            COMMANDS.labels(kind, "expired").inc()
            log.warning("command expired before it was sent", extra={
                "command_id": command_id, "alert_id": command.alert_id})
            return False
        try:
            await self.send(command.site_id.encode(),
                            text if isinstance(text, bytes) else text.encode())
        except Exception as exc:  # Kafka down: it stays in the outbox for resend()
            COMMANDS.labels(kind, "send_failed").inc()
            log.error("command send failed; left in the outbox", extra={
                "command_id": command_id, "error": repr(exc)})
            return False
        await self.redis.zrem(COMMANDS_UNSENT, command_id)
        COMMANDS.labels(kind, "sent").inc()
        log.info("command", extra={"command_id": command_id, "type": kind,
                                   "alert_id": command.alert_id, "site": command.site_id})
        return True


class AlertWriter:
    """Writes alert changes: Redis first (it decides the version and keeps an outbox
    entry, and the change's commands in their outbox), then Kafka keyed by alert id, then
    the commands keyed by site; a crash in between is re-sent later."""

    def __init__(self, settings: Settings, redis_client: aioredis.Redis, send: SendAlert,
                 send_command: SendCommand | None = None) -> None:
        self.settings = settings
        self.redis = redis_client
        self.send = send
        self.commands = None if send_command is None else CommandOutbox(redis_client,
                                                                         send_command)

    async def resend_commands(self) -> int:
        """Drain the command outbox (a timer calls it); Redis errors are logged."""
        if self.commands is None:
            return 0
        try:
            return await self.commands.resend()
        except RedisError as exc:
            log.error("command outbox not reachable", extra={"error": str(exc)})
            return 0

    async def resend_commands_quietly(self) -> None:
        """:meth:`resend_commands` for a timer (which wants no result)."""
        await self.resend_commands()

    async def write(self, change: AlertChange, trigger: Event | None) -> alert_sink.Outcome:
        """Apply one change; Redis being down is retried with backoff (the stage stalls
        and its lag grows), never dropped."""
        delay = 0.5
        while True:
            try:
                return await self._write(change, trigger)
            except RedisError as exc:
                STAGE_ERRORS.labels("correlate", "redis").inc()
                log.error("redis write failed; retrying", extra={"error": str(exc),
                                                                 "retry_in_s": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _write(self, change: AlertChange, trigger: Event | None) -> alert_sink.Outcome:
        alert = change.alert
        commands = [] if self.commands is None else commands_for(
            change, time.time(), self.settings.command_ttl_s)
        stored = await alert_sink.open_or_update(
            self.redis, alert, self.settings.alert_ttl_s,
            resolved_ttl_s=self.settings.alert_resolved_ttl_s,
            audit_retention_s=self.settings.audit_retention_s,
            also=queue_commands(commands, self.settings.alert_ttl_s) if commands else None)
        if stored.needs_publish:
            await alert_outbox.publish_change(self.redis, stored.alert, self.send)
        if self.commands is not None and commands and stored.outcome in (
                alert_sink.Outcome.CREATED, alert_sink.Outcome.UPDATED,
                alert_sink.Outcome.DUPLICATE):  # a replay re-sends what is still pending
            if stored.applied:
                for command in commands:
                    COMMANDS.labels(command.type.value, "issued").inc()
            await self.commands.send_pending([c.command_id for c in commands])
        if not stored.applied:
            ALERTS_DUPLICATE.labels(alert.rule).inc()
            return stored.outcome
        if stored.outcome is alert_sink.Outcome.CREATED:
            ALERTS.labels(alert.rule, alert.severity.value).inc()
            if trigger is not None:  # a video event's ts is its capture time
                CAPTURE_TO_ALERT.observe(max(0.0, time.time() - trigger.ts))
        else:
            ALERTS_UPDATED.labels(alert.rule, alert.severity.value).inc()
        log.info("alert", extra={"alert_id": alert.alert_id, "rule": alert.rule,
                                 "change": stored.outcome.value,
                                 "version": stored.alert.version})
        return stored.outcome


def known_site(event: Event, topology: Topology) -> bool:
    return any(site.id == event.site_id for site in topology.sites)


def observe(engine: RuleEngine, state: State, event: Event) -> list[AlertChange] | None:
    """The engine's changes for ``event``, or None if the event was seen before
    (at-least-once redelivery)."""
    if engine.already_seen(state, event):
        return None
    return engine.observe(state, event, time.time())


__all__ = ["AlertWriter", "CommandOutbox", "RulesFile", "ValidationError", "command_key",
           "counts_to_video_events", "face_to_video_event", "known_site", "observe",
           "parse_event", "parse_events", "queue_commands"]
