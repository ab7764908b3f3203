"""The Redis side of alerts: the live picture that dashboards and the alert API read.

Keys (``argus:`` prefix):

- ``argus:alert:<id>``                   hash: the alert's fields, ``json`` = the whole alert,
  ``version``, ``source_version`` (the rule engine's last applied version),
  ``published_version`` (the last version handed to Kafka); TTL ``ttl_s`` while active,
  ``resolved_ttl_s`` once resolved
- ``argus:alerts:active``                sorted set of active alert ids, score = last seen
- ``argus:site:<site>:alerts:active``    the same per site
- ``argus:alerts:active:severity:<sev>`` the same per severity
- ``argus:alerts:active:ranked``         score = severity rank * 1e10 + last seen
- ``argus:alerts:geo``                   geo index of active alerts (lon/lat)
- ``argus:alerts:resolved``              sorted set of resolved ids, score = resolved at
- ``argus:alerts:recent``                stream of recent changes (capped, ~1000)
- ``argus:alerts:unpublished``           sorted set of ids whose latest version is not on
  Kafka yet (score = time of the change): the outbox (``argus.stores.alert_outbox``)
- ``argus:audit``, ``argus:audit:alert:<id>`` the audit trail (``argus.stores.audit``):
  operator actions and the event ids each engine write added to the evidence
- channel ``argus:alerts``               pub/sub: each change as the alert's JSON

Active = open or acknowledged. Every write is one Redis transaction (``WATCH`` on the
alert hash), and idempotent: the rule engine's updates apply only if their version is
newer than the last one applied, operator actions only where the state machine allows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError
from redis.typing import EncodableT, FieldT

from argus.metrics import ALERTS_RESOLVED, redis_command
from argus.stores.audit import (
    AUDIT,
    DEFAULT_AUDIT_RETENTION_S,
    alert_audit_key,
    audit_entries,
    queue_audit,
)
from schemas.alerts import (
    Action,
    Alert,
    Outcome,
    Severity,
    apply_action,
    classify,
    merge_update,
)
from schemas.audit import AuditAction, AuditEntry, evidence_entry

# re-exported: part of the sink's API
__all__ = ["AUDIT", "DEFAULT_AUDIT_RETENTION_S", "AuditEntry", "Outcome", "alert_audit_key",
           "audit_entries", "classify"]

PREFIX = "argus:"
CHANNEL = f"{PREFIX}alerts"
RECENT = f"{PREFIX}alerts:recent"
GEO = f"{PREFIX}alerts:geo"
ACTIVE = f"{PREFIX}alerts:active"
RANKED = f"{PREFIX}alerts:active:ranked"
RESOLVED = f"{PREFIX}alerts:resolved"
UNPUBLISHED = f"{PREFIX}alerts:unpublished"

RECENT_MAXLEN = 1000
DEFAULT_TTL_S = 7 * 24 * 3600
DEFAULT_RESOLVED_TTL_S = 24 * 3600
RANK_FACTOR = 1e10
"""Severity weight in ``RANKED`` (last seen stays below it until the year 2286)."""
_MAX_WATCH_RETRIES = 50


def alert_key(alert_id: str) -> str:
    return f"{PREFIX}alert:{alert_id}"


def site_active_key(site_id: str) -> str:
    return f"{PREFIX}site:{site_id}:alerts:active"


def severity_active_key(severity: Severity | str) -> str:
    return f"{PREFIX}alerts:active:severity:{Severity(severity).value}"


def ranked_score(alert: Alert) -> float:
    """Orders by severity, then by last seen.

    >>> ranked_score(Alert(alert_id="a", rule="r", title="t", severity="high", site_id="s",
    ...     zone_id="z", lat=0, lon=0, first_seen=1, last_seen=2, evidence=[], created_at=2))
    30000000002.0
    """
    return alert.severity.rank * RANK_FACTOR + alert.last_seen


@dataclass(frozen=True)
class Change:
    """The result of a write: the outcome, the alert as stored after it, and whether its
    current version still has to go to Kafka (``publish_change``)."""

    outcome: Outcome
    alert: Alert
    needs_publish: bool

    @property
    def applied(self) -> bool:
        return self.outcome in (Outcome.CREATED, Outcome.UPDATED)


class AlertNotFound(KeyError):
    """No alert with that id in Redis (never written, or expired)."""


class VersionConflict(ValueError):
    """An operator action made on a version of the alert that is no longer current."""

    def __init__(self, alert_id: str, expected: int, current: Alert) -> None:
        super().__init__(f"alert {alert_id} changed: it is at version {current.version} "
                         f"({current.state.value}, last change {current.change.value}), "
                         f"not {expected}; reload it and try again")
        self.current = current


@dataclass
class _Stored:
    alert: Alert | None
    source_version: int | None
    published_version: int


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


async def _read(client: aioredis.Redis, alert_id: str) -> _Stored:
    """The stored alert and its versions (``client`` may be a pipeline in WATCH mode)."""
    raw = await client.hmget(alert_key(alert_id), ["json", "source_version", "published_version"])
    text, source, published = (_text(v) for v in raw)
    if text is None:
        return _Stored(None, None, 0)
    alert = Alert.model_validate_json(text)
    # alerts written before the lifecycle existed carry their version only in the JSON
    return _Stored(alert, int(source) if source else alert.version,
                   int(published) if published else 0)


async def get_alert(client: aioredis.Redis, alert_id: str) -> Alert | None:
    """The stored alert, or None."""
    text = _text(await client.hget(alert_key(alert_id), "json"))
    return Alert.model_validate_json(text) if text else None


async def exists(client: aioredis.Redis, alert_id: str) -> bool:
    return bool(await client.exists(alert_key(alert_id)))


def _queue_write(pipe: Pipeline, alert: Alert, previous: Alert | None, *, ttl_s: int | None,
                 resolved_ttl_s: int, source_version: int | None) -> None:
    """Queue (inside MULTI) every write of one change: hash, indexes, stream, pub/sub.
    ``ttl_s`` None keeps the TTL an active alert has."""
    key = alert_key(alert.alert_id)
    payload = alert.model_dump_json()
    fields: dict[FieldT, EncodableT] = {
        "alert_id": alert.alert_id, "rule": alert.rule, "title": alert.title,
        "severity": alert.severity.value, "site_id": alert.site_id, "zone_id": alert.zone_id,
        "camera_id": alert.camera_id or "", "state": alert.state.value,
        "first_seen": alert.first_seen, "last_seen": alert.last_seen, "count": alert.count,
        "version": alert.version, "change": alert.change.value, "json": payload,
    }
    if source_version is not None:
        fields["source_version"] = source_version
    pipe.hset(key, mapping=fields)
    members = [ACTIVE, RANKED, site_active_key(alert.site_id),
               severity_active_key(alert.severity)]
    if previous is not None and previous.severity is not alert.severity:
        pipe.zrem(severity_active_key(previous.severity), alert.alert_id)
    if alert.active:
        if ttl_s is not None:
            pipe.expire(key, ttl_s)
            pipe.expire(site_active_key(alert.site_id), ttl_s)
        for index in members:
            score = ranked_score(alert) if index == RANKED else alert.last_seen
            pipe.zadd(index, {alert.alert_id: score})
        pipe.geoadd(GEO, (alert.lon, alert.lat, alert.alert_id))
    else:
        pipe.expire(key, resolved_ttl_s)
        for index in [*members, GEO]:
            pipe.zrem(index, alert.alert_id)
        resolved_at = alert.resolved_at or time.time()
        pipe.zadd(RESOLVED, {alert.alert_id: resolved_at})
        pipe.zremrangebyscore(RESOLVED, "-inf", f"({resolved_at - resolved_ttl_s}")
    pipe.zadd(UNPUBLISHED, {alert.alert_id: time.time()})
    pipe.xadd(RECENT, {"alert_id": alert.alert_id, "change": alert.change.value,
                       "version": alert.version, "json": payload},
              maxlen=RECENT_MAXLEN, approximate=True)
    pipe.publish(CHANNEL, payload)


async def _transaction(client: aioredis.Redis, alert_id: str,
                       decide: Callable[[_Stored], Callable[[Pipeline], None] | None],
                       command: str) -> None:
    """``WATCH`` the alert, read it, let ``decide`` return the writes (or None for none)
    and run them in MULTI/EXEC, retrying if the alert changed in between. Timed and
    error-counted as ``command`` (``argus_redis_command_seconds``)."""
    with redis_command(command):
        await _watch_and_write(client, alert_id, decide)


async def _watch_and_write(client: aioredis.Redis, alert_id: str,
                           decide: Callable[[_Stored], Callable[[Pipeline], None] | None]
                           ) -> None:
    async with client.pipeline(transaction=True) as pipe:
        for _ in range(_MAX_WATCH_RETRIES):
            try:
                await pipe.watch(alert_key(alert_id))
                writes = decide(await _read(pipe, alert_id))
                if writes is None:
                    await pipe.unwatch()
                    return
                pipe.multi()
                writes(pipe)
                await pipe.execute()
                return
            except WatchError:
                continue
    raise RuntimeError(f"alert {alert_id}: too much contention ({_MAX_WATCH_RETRIES} retries)")


async def open_or_update(client: aioredis.Redis, alert: Alert, ttl_s: int = DEFAULT_TTL_S, *,
                         resolved_ttl_s: int = DEFAULT_RESOLVED_TTL_S,
                         audit_retention_s: int = DEFAULT_AUDIT_RETENTION_S,
                         now: float | None = None,
                         also: Callable[[Pipeline], None] | None = None) -> Change:
    """Apply an alert from the rule engine: create it, or update the stored one if
    ``alert.version`` is newer than the engine version applied last (``classify``).

    A replay of an applied version (DUPLICATE), an older one (STALE) or an update of a
    resolved alert (CLOSED) writes nothing and returns the stored alert. ``also`` queues
    more writes into the same transaction when the change applies (the command outbox).
    An applied change that adds event ids to the evidence is audited (``evidence_entry``).
    """
    result: list[Change] = []

    def decide(stored: _Stored) -> Callable[[Pipeline], None] | None:
        result.clear()
        outcome = classify(stored.alert.state if stored.alert else None,
                           stored.source_version, alert.version)
        if stored.alert is not None and outcome not in (Outcome.CREATED, Outcome.UPDATED):
            pending = stored.published_version < stored.alert.version
            result.append(Change(outcome, stored.alert, pending))
            return None
        when = time.time() if now is None else now
        new = alert if stored.alert is None else merge_update(stored.alert, alert, when)
        result.append(Change(outcome, new, True))
        entry = evidence_entry(stored.alert, new, alert.evidence, when)

        def writes(pipe: Pipeline) -> None:
            _queue_write(pipe, new, stored.alert, ttl_s=ttl_s, resolved_ttl_s=resolved_ttl_s,
                         source_version=alert.version)
            if entry is not None:
                queue_audit(pipe, entry, audit_retention_s)
            if also is not None:
                also(pipe)
        return writes

    await _transaction(client, alert.alert_id, decide, "alert_open_or_update")
    return result[0]


async def write_alert(client: aioredis.Redis, alert: Alert, ttl_s: int, *,
                      audit_retention_s: int = DEFAULT_AUDIT_RETENTION_S) -> bool:
    """Write a new ``alert`` (its evidence audited); returns False (writing nothing) if
    that id exists already."""
    written: list[bool] = []

    def decide(stored: _Stored) -> Callable[[Pipeline], None] | None:
        written[:] = [stored.alert is None]
        if stored.alert is not None:
            return None
        entry = evidence_entry(None, alert, alert.evidence, time.time())

        def writes(pipe: Pipeline) -> None:
            _queue_write(pipe, alert, None, ttl_s=ttl_s, resolved_ttl_s=DEFAULT_RESOLVED_TTL_S,
                         source_version=alert.version)
            if entry is not None:
                queue_audit(pipe, entry, audit_retention_s)
        return writes

    await _transaction(client, alert.alert_id, decide, "alert_write")
    return written[0]


async def _act(client: aioredis.Redis, alert_id: str, action: Action, actor: str, comment: str,
               *, resolved_ttl_s: int, audit_retention_s: int, now: float | None,
               expected_version: int | None = None, assignee: str | None = None) -> Change:
    result: list[Change] = []

    def decide(stored: _Stored) -> Callable[[Pipeline], None] | None:
        if stored.alert is None:
            raise AlertNotFound(alert_id)
        if expected_version is not None and stored.alert.version != expected_version:
            raise VersionConflict(alert_id, expected_version, stored.alert)
        when = time.time() if now is None else now
        new = apply_action(stored.alert, action, actor, comment, when, assignee)  # may raise
        result[:] = [Change(Outcome.UPDATED, new, True)]
        said = comment if action is not Action.ASSIGN else \
            f"to {assignee}" + (f": {comment}" if comment else "")
        entry = AuditEntry(ts=when, actor=actor, action=AuditAction(action.value),
                           alert_id=alert_id, comment=said, from_state=stored.alert.state,
                           to_state=new.state, version=new.version)
        prior = stored.alert

        def writes(pipe: Pipeline) -> None:
            _queue_write(pipe, new, prior, ttl_s=None, resolved_ttl_s=resolved_ttl_s,
                         source_version=None)
            queue_audit(pipe, entry, audit_retention_s)
        return writes

    await _transaction(client, alert_id, decide, f"alert_{action.value}")
    change = result[0]
    if action is Action.RESOLVE:
        ALERTS_RESOLVED.labels(change.alert.rule, change.alert.severity.value).inc()
    return change


async def acknowledge(client: aioredis.Redis, alert_id: str, who: str, comment: str = "", *,
                      audit_retention_s: int = DEFAULT_AUDIT_RETENTION_S,
                      now: float | None = None, expected_version: int | None = None
                      ) -> Change:
    """open → acknowledged by ``who``; audited, published. Raises ``AlertNotFound``,
    ``InvalidTransition`` or (the alert is not at ``expected_version``)
    ``VersionConflict``. The alert keeps its TTL."""
    return await _act(client, alert_id, Action.ACKNOWLEDGE, who, comment,
                      resolved_ttl_s=DEFAULT_RESOLVED_TTL_S,
                      audit_retention_s=audit_retention_s, now=now,
                      expected_version=expected_version)


async def resolve(client: aioredis.Redis, alert_id: str, who: str, comment: str = "", *,
                  resolved_ttl_s: int = DEFAULT_RESOLVED_TTL_S,
                  audit_retention_s: int = DEFAULT_AUDIT_RETENTION_S,
                  now: float | None = None, expected_version: int | None = None) -> Change:
    """open/acknowledged → resolved by ``who``: leaves the active sets and the geo index,
    expires after ``resolved_ttl_s``; audited, published. Raises like ``acknowledge``."""
    return await _act(client, alert_id, Action.RESOLVE, who, comment,
                      resolved_ttl_s=resolved_ttl_s, audit_retention_s=audit_retention_s,
                      now=now, expected_version=expected_version)


async def act(client: aioredis.Redis, alert_id: str, action: Action, who: str,
              comment: str = "", *, assignee: str | None = None,
              resolved_ttl_s: int = DEFAULT_RESOLVED_TTL_S,
              audit_retention_s: int = DEFAULT_AUDIT_RETENTION_S, now: float | None = None,
              expected_version: int | None = None) -> Change:
    """Any operator ``action`` (``acknowledge`` and ``resolve`` have their own names):
    ``assign`` (to ``assignee``), ``note``, ``escalate`` keep the state; audited,
    published. Raises like ``acknowledge``, and ``ValueError`` for a missing assignee or
    note text."""
    return await _act(client, alert_id, action, who, comment, resolved_ttl_s=resolved_ttl_s,
                      audit_retention_s=audit_retention_s, now=now,
                      expected_version=expected_version, assignee=assignee)


async def prune(client: aioredis.Redis, alert_ids: list[str], site_id: str | None = None
                ) -> None:
    """Drop ids whose hash has expired from every index (readers call it lazily: an open
    alert that expires without being resolved leaves its id behind)."""
    if not alert_ids:
        return
    async with client.pipeline(transaction=False) as pipe:
        indexes = [ACTIVE, RANKED, GEO, RESOLVED, *map(severity_active_key, Severity)]
        for index in indexes + ([site_active_key(site_id)] if site_id else []):
            pipe.zrem(index, *alert_ids)
        await pipe.execute()
