"""Procedure checklists of alerts in Redis: which steps of the rule's ``procedure`` an
operator ticked, each tick audited in the alert's trail (``AuditAction.PROCEDURE``).

Key: ``argus:alert:<id>:procedure``, a hash of step index → ``{"done", "by", "at"}``
(JSON), kept as long as an active alert (``alerts.DEFAULT_TTL_S``). A tick does not change
the alert (no version bump, nothing published); its audit entry carries the alert's
version and state at the time. Each tick is one transaction with its audit entry, on
the alert's ``WATCH`` like every other alert write.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis.asyncio as aioredis
from pydantic import BaseModel
from redis.asyncio.client import Pipeline

from argus.stores.alerts import (
    DEFAULT_TTL_S,
    PREFIX,
    AlertNotFound,
    _Stored,
    _transaction,
)
from argus.stores.audit import DEFAULT_AUDIT_RETENTION_S, queue_audit
from schemas.audit import AuditAction, AuditEntry


class Tick(BaseModel):
    """The state of one step: done or not, by whom, when."""

    done: bool
    by: str
    at: float


class ClosedAlert(ValueError):
    """The alert is resolved: its checklist is frozen."""


def procedure_key(alert_id: str) -> str:
    """
    >>> procedure_key("fire-1")
    'argus:alert:fire-1:procedure'
    """
    return f"{PREFIX}alert:{alert_id}:procedure"


async def ticks(client: aioredis.Redis, alert_id: str) -> dict[int, Tick]:
    """The steps of the alert's checklist that were ever ticked (by index)."""
    raw = await client.hgetall(procedure_key(alert_id))
    return {int(k): Tick.model_validate_json(v) for k, v in raw.items()}


def tick_comment(index: int, text: str, done: bool) -> str:
    """
    >>> tick_comment(0, "Call the police", True)
    'step 1 done: Call the police'
    """
    return f"step {index + 1} {'done' if done else 'not done'}: {text}"


async def tick(client: aioredis.Redis, alert_id: str, index: int, text: str, done: bool,
               actor: str, *, audit_retention_s: int = DEFAULT_AUDIT_RETENTION_S,
               now: float | None = None) -> Tick:
    """Record step ``index`` (its ``text``) as done or not by ``actor``, audited. Raises
    ``AlertNotFound`` or ``ClosedAlert``."""
    when = time.time() if now is None else now
    state = Tick(done=done, by=actor, at=when)

    def decide(stored: _Stored) -> Callable[[Pipeline], None] | None:
        if stored.alert is None:
            raise AlertNotFound(alert_id)
        if not stored.alert.active:
            raise ClosedAlert(f"alert {alert_id} is {stored.alert.state.value}: its "
                              "procedure can no longer be ticked")
        entry = AuditEntry(ts=when, actor=actor, action=AuditAction.PROCEDURE,
                           alert_id=alert_id, comment=tick_comment(index, text, done),
                           from_state=stored.alert.state, to_state=stored.alert.state,
                           version=stored.alert.version)

        def writes(pipe: Pipeline) -> None:
            pipe.hset(procedure_key(alert_id), str(index), state.model_dump_json())
            pipe.expire(procedure_key(alert_id), DEFAULT_TTL_S)
            queue_audit(pipe, entry, audit_retention_s)
        return writes

    await _transaction(client, alert_id, decide, "alert_procedure_tick")
    return state


__all__ = ["ClosedAlert", "Tick", "procedure_key", "tick", "tick_comment", "ticks"]
