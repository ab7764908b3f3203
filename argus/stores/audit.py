"""The audit trail of alerts in Redis (entries: ``schemas.audit.AuditEntry``).

Keys:

- ``argus:audit``                 stream: every entry of every alert (operator actions and
  the evidence the rule engine added), append-only, trimmed only past the retention
- ``argus:audit:alert:<id>``      stream: the same entries of one alert, so that its trail
  reads in one ``XREVRANGE`` however busy the others are; trimmed the same way, and
  expires ``retention_s`` after its last entry

Entries are queued into the transaction of the alert change they record
(``argus.stores.alerts``), so an entry exists if and only if its change was applied: a
replayed change writes nothing, hence no entry.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.typing import EncodableT, FieldT

from schemas.alerts import ChangeKind
from schemas.audit import AuditEntry

AUDIT = "argus:audit"
DEFAULT_AUDIT_RETENTION_S = 365 * 24 * 3600
LEGACY_SCAN_FACTOR = 10
"""Entries written before the per-alert streams existed are only in ``AUDIT``: the newest
``LEGACY_SCAN_FACTOR * count`` of it are scanned for an alert whose trail lacks its start."""


def alert_audit_key(alert_id: str) -> str:
    """The audit stream of one alert.

    >>> alert_audit_key("fire-0123")
    'argus:audit:alert:fire-0123'
    """
    return f"{AUDIT}:alert:{alert_id}"


def queue_audit(pipe: Pipeline, entry: AuditEntry, retention_s: int) -> None:
    """Append ``entry`` (inside MULTI) to the audit stream and to its alert's; only entries
    older than ``retention_s`` are trimmed."""
    fields: dict[FieldT, EncodableT] = {k: v for k, v in entry.stream_fields().items()}
    oldest = f"{max(0, int((entry.ts - retention_s) * 1000))}-0"
    own = alert_audit_key(entry.alert_id)
    pipe.xadd(AUDIT, fields, minid=oldest, approximate=True)
    pipe.xadd(own, fields, minid=oldest, approximate=True)
    pipe.expire(own, retention_s)


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _entries(rows: list[Any] | None) -> list[AuditEntry]:
    return [AuditEntry.model_validate({**{_text(k): _text(v) for k, v in (fields or {}).items()},
                                       "id": _text(entry_id)})
            for entry_id, fields in rows or []]


def newest_first(own: list[AuditEntry], older: list[AuditEntry], count: int
                 ) -> list[AuditEntry]:
    """One alert's entries from its own stream and from the shared one, each entry once
    (an entry is the same in both: version, action and time), newest first, at most
    ``count``. (Procedure ticks share the version of the alert they were made on.)"""
    def key(e: AuditEntry) -> tuple[int, str, float]:
        return e.version, e.action.value, e.ts
    unique = {key(e): e for e in older} | {key(e): e for e in own}
    return sorted(unique.values(), key=lambda e: (e.version, e.ts), reverse=True)[:count]


async def audit_entries(client: aioredis.Redis, count: int = 100, alert_id: str | None = None
                        ) -> list[AuditEntry]:
    """The newest audit entries (newest first), or the newest ``count`` of one alert."""
    if alert_id is None:
        return _entries(await client.xrevrange(AUDIT, count=count))
    own = _entries(await client.xrevrange(alert_audit_key(alert_id), count=count))
    if len(own) == count or any(e.change is ChangeKind.CREATED for e in own):
        return own
    scanned = _entries(await client.xrevrange(AUDIT, count=count * LEGACY_SCAN_FACTOR))
    return newest_first(own, [e for e in scanned if e.alert_id == alert_id], count)
