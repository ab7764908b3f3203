"""The correlate stage: ``events.video`` + ``events.face`` + ``sensors.events`` (+ ticks)
→ alert changes, written to Redis (lifecycle, idempotent) and to the ``alerts`` topic.

The rules are data (``config/rules.yaml``, see docs/rules.md), evaluated by
:class:`pipelines.correlation.RuleEngine` on a JSON-safe per-site state that the Faust
app keeps in a changelog-backed table. This module holds the stage's logic between the
topics and the engine; ``pipelines/app.py`` only wires it to Faust.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.exceptions import RedisError

from argus.log import get_logger
from argus.metrics import ALERTS, ALERTS_DUPLICATE, ALERTS_UPDATED, CAPTURE_TO_ALERT
from argus.settings import Settings
from argus.topology import Topology
from pipelines import alert_sink
from pipelines.correlation import AlertChange, RuleEngine, RuleError, State, load_rules
from schemas.detections import Box
from schemas.events import VideoEvent
from schemas.faces import FaceEvent
from schemas.sensors import SensorEvent

log = get_logger(__name__)

SendAlert = Callable[[bytes, bytes], Awaitable[None]]
Event = VideoEvent | SensorEvent


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
    )


def parse_event(kind: str, value: bytes) -> Event:
    """Parse a record of one of the stage's input topics; raises ``ValidationError``."""
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


class AlertWriter:
    """Writes alert changes: Redis first (it decides the version and keeps an outbox
    entry), then Kafka keyed by alert id; a crash in between is re-sent later."""

    def __init__(self, settings: Settings, redis_client: aioredis.Redis, send: SendAlert
                 ) -> None:
        self.settings = settings
        self.redis = redis_client
        self.send = send

    async def write(self, change: AlertChange, trigger: Event | None) -> alert_sink.Outcome:
        """Apply one change; Redis being down is retried with backoff (the stage stalls
        and its lag grows), never dropped."""
        delay = 0.5
        while True:
            try:
                return await self._write(change, trigger)
            except RedisError as exc:
                log.error("redis write failed; retrying", extra={"error": str(exc),
                                                                 "retry_in_s": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _write(self, change: AlertChange, trigger: Event | None) -> alert_sink.Outcome:
        alert = change.alert
        stored = await alert_sink.open_or_update(
            self.redis, alert, self.settings.alert_ttl_s,
            resolved_ttl_s=self.settings.alert_resolved_ttl_s)
        if stored.needs_publish:
            await alert_sink.publish_change(self.redis, stored.alert, self.send)
        if not stored.applied:
            ALERTS_DUPLICATE.labels(alert.rule).inc()
            return stored.outcome
        if stored.outcome is alert_sink.Outcome.CREATED:
            ALERTS.labels(alert.rule, alert.severity.value).inc()
            if isinstance(trigger, VideoEvent):
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


__all__ = ["AlertWriter", "RulesFile", "ValidationError", "face_to_video_event", "known_site",
           "observe", "parse_event"]
