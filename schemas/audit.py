"""The audit trail of an alert: who did what to it, and which events made or updated it.

Each entry is one change of one alert: an operator action (``acknowledge``, ``resolve``,
``assign``, ``note``, ``escalate``, with the operator's comment) or, for a write of the
rule engine that added evidence, an ``evidence`` entry (actor ``engine``) listing the
event ids that write added. The alert itself keeps a capped evidence list
(``schemas.alerts.cap_evidence``); its ``evidence`` entries list every event id it ever
had. ``argus.stores.audit`` keeps them in Redis.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, field_validator

from schemas.alerts import Action, Alert, AlertState, ChangeKind, Evidence, added_event_ids


class AuditAction(StrEnum):
    """What an audit entry records: an operator ``Action``, or the event ids a rule-engine
    write added to the alert's evidence."""

    ACKNOWLEDGE = Action.ACKNOWLEDGE.value
    RESOLVE = Action.RESOLVE.value
    ASSIGN = Action.ASSIGN.value
    NOTE = Action.NOTE.value
    ESCALATE = Action.ESCALATE.value
    EVIDENCE = "evidence"
    PROCEDURE = "procedure"
    """A step of the rule's procedure ticked or unticked (the alert's version unchanged)."""


ENGINE_ACTOR = "engine"
"""The actor of the audit entries the rule engine's writes make."""


class AuditEntry(BaseModel):
    """One entry of an alert's audit trail (all values are strings in the Redis stream).

    Operator actions carry the actor's comment (an ``assign``'s starts ``to <operator>``).
    ``evidence`` entries (actor ``engine``) carry ``event_ids``: the events a write of the
    rule engine added to the alert's evidence (all of them when it created the alert), and
    ``change``; together they list every event that made or updated the alert, whatever
    the cap.
    """

    id: str = ""
    ts: float
    actor: str
    action: AuditAction
    alert_id: str
    comment: str = ""
    from_state: AlertState
    to_state: AlertState
    version: int = Field(description="The alert's version after this change")
    change: ChangeKind | None = Field(default=None,
                                      description="evidence: the change that added them")
    event_ids: list[str] = Field(default_factory=list,
                                 description="evidence: the event ids this change added")

    @field_validator("event_ids", mode="before")
    @classmethod
    def _json_list(cls, value: Any) -> Any:
        """The stream holds the ids as a JSON list."""
        return json.loads(value) if isinstance(value, str) else value

    def stream_fields(self) -> dict[str, str]:
        """The entry as stream fields: strings; ``change`` and ``event_ids`` only if set.

        >>> AuditEntry(ts=1.0, actor="engine", action="evidence", alert_id="a",
        ...     from_state="open", to_state="open", version=1, change="created",
        ...     event_ids=["e1"]).stream_fields()["event_ids"]
        '["e1"]'
        """
        fields = self.model_dump(mode="json", exclude={"id", "change", "event_ids"})
        text = {k: str(v) for k, v in fields.items()}
        if self.change is not None:
            text["change"] = self.change.value
        if self.event_ids:
            text["event_ids"] = json.dumps(self.event_ids)
        return text


def evidence_entry(previous: Alert | None, alert: Alert, incoming: Sequence[Evidence],
                   now: float) -> AuditEntry | None:
    """The audit entry of a rule-engine write that turned ``previous`` (None: not stored)
    into ``alert``: the ids of the ``incoming`` evidence that ``previous`` lacked. None when
    there are none (a replay, or an update without new events): nothing to audit.
    """
    ids = added_event_ids(previous.evidence if previous is not None else [], incoming)
    if not ids:
        return None
    comment = ""
    if previous is not None and alert.severity.rank > previous.severity.rank:
        comment = f"escalated: {previous.severity.value} -> {alert.severity.value}"
    return AuditEntry(ts=now, actor=ENGINE_ACTOR, action=AuditAction.EVIDENCE,
                      alert_id=alert.alert_id, comment=comment,
                      from_state=previous.state if previous is not None else alert.state,
                      to_state=alert.state, version=alert.version, change=alert.change,
                      event_ids=ids)
