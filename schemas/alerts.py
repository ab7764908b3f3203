"""``alerts``: what operations centres act on (key = alert id), and the alert lifecycle.

An alert is a state snapshot: every change (created, updated by the rule engine,
acknowledged, resolved) is published as the whole alert with a higher ``version``, so
the latest message of an id is its current state. The lifecycle is a small state
machine (``TRANSITIONS``)::

    open ──acknowledge──► acknowledged ──resolve──► resolved
      └──────────────────resolve────────────────────┘

An active (open or acknowledged) alert can also be assigned to a named operator, get a
note, or be escalated (severity one step up, up to critical); none of these changes its
state.

The pure functions here (``next_state``, ``apply_action``, ``merge_update``, ``classify``)
are what ``argus.stores.alerts`` applies inside its Redis transactions.

Evidence is capped by one rule, ``cap_evidence`` (the trigger and the newest others), in
the rule engine (at the rule's ``evidence.max``, default ``MAX_EVIDENCE``) and in the
store (``MAX_EVIDENCE``); the full list of contributing event ids is in the alert's audit
trail (``schemas.audit``).

Schema version 2 added the lifecycle fields (who/when, ``history``, ``change``,
``updated_at``); version 3 added ``assigned_to`` and the assign/note/escalate actions
(``Action``, ``ChangeKind``, ``HistoryEntry.assignee``); version 4 added the detection
``box`` and camera ``zone_id`` of video evidence (the console draws them over the
snapshot). Older messages still validate (the new fields default).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Literal, Self, TypeVar

from pydantic import Field, model_validator

from schemas.base import Message
from schemas.detections import Box


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 (info) … 4 (critical), for ordering.

        >>> Severity.CRITICAL.rank > Severity.HIGH.rank
        True
        """
        return list(Severity).index(self)


class AlertState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


ACTIVE_STATES = frozenset({AlertState.OPEN, AlertState.ACKNOWLEDGED})
"""States shown on the live picture (the Redis active sets and geo index)."""


class Action(StrEnum):
    """What an operator does to an alert."""

    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"
    ASSIGN = "assign"
    NOTE = "note"
    ESCALATE = "escalate"


class ChangeKind(StrEnum):
    """What the last change of an alert was (carried in the alert itself)."""

    CREATED = "created"
    UPDATED = "updated"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    ASSIGNED = "assigned"
    NOTED = "noted"
    ESCALATED = "escalated"
    """An operator raised the severity (the rule engine's repeats show as ``updated``)."""


STAYING = (Action.ASSIGN, Action.NOTE, Action.ESCALATE)
"""Actions that leave the state as it is (allowed on active alerts only)."""
_CHANGE_OF = {Action.ACKNOWLEDGE: ChangeKind.ACKNOWLEDGED, Action.RESOLVE: ChangeKind.RESOLVED,
              Action.ASSIGN: ChangeKind.ASSIGNED, Action.NOTE: ChangeKind.NOTED,
              Action.ESCALATE: ChangeKind.ESCALATED}

TRANSITIONS: dict[tuple[AlertState, Action], AlertState] = {
    (AlertState.OPEN, Action.ACKNOWLEDGE): AlertState.ACKNOWLEDGED,
    (AlertState.OPEN, Action.RESOLVE): AlertState.RESOLVED,
    (AlertState.ACKNOWLEDGED, Action.RESOLVE): AlertState.RESOLVED,
    **{(state, action): state for state in ACTIVE_STATES for action in STAYING},
}
"""Every allowed operator transition; anything else raises ``InvalidTransition``."""

MAX_EVIDENCE = 100
"""Evidence kept per alert: the first item (the trigger) and the newest others
(``cap_evidence``). The store's cap, and the default (and upper bound) of a rule's
``evidence.max``. Every event id an alert ever had is in its audit trail."""

_Item = TypeVar("_Item")


class InvalidTransition(ValueError):
    """An operator action that the current state does not allow."""

    def __init__(self, state: AlertState, action: Action) -> None:
        allowed = sorted(a.value for (s, a) in TRANSITIONS if s is state)
        super().__init__(f"cannot {action.value} an alert that is {state.value} "
                         f"(allowed from {state.value}: {', '.join(allowed) or 'nothing'})")
        self.state = state
        self.action = action


class Evidence(Message):
    source: Literal["video", "sensor"]
    event_id: str
    ts: float
    camera_id: str | None = None
    sensor_id: str | None = None
    snapshot_ref: str | None = Field(
        default=None, description="Where the decisive frame can be fetched (topic:seq)"
    )
    # version 4: where in the snapshot (video evidence); absent in older alerts
    box: Box | None = Field(default=None, description="The detection in the frame, normalised")
    zone_id: str | None = Field(default=None, description="The camera zone it was seen in")


class HistoryEntry(Message):
    """One operator action on an alert (also written to the audit stream)."""

    ts: float
    actor: str
    action: Action
    comment: str = ""
    assignee: str | None = Field(default=None, description="assign: who it was assigned to")


class Alert(Message):
    schema_version: Literal[1, 2, 3, 4] = 4
    alert_id: str = Field(description="Deterministic from rule, site, zone and trigger event")
    rule: str
    title: str
    severity: Severity
    site_id: str
    zone_id: str
    camera_id: str | None = None
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    first_seen: float
    last_seen: float
    count: int = Field(default=1, ge=1)
    evidence: list[Evidence]
    state: AlertState = AlertState.OPEN
    created_at: float
    version: int = Field(default=1, ge=1, description="Bumped by every applied change")
    change: ChangeKind = Field(default=ChangeKind.CREATED,
                               description="What the change that produced this version was")
    updated_at: float | None = Field(default=None, description="When this version was applied")
    acknowledged_by: str | None = None
    acknowledged_at: float | None = None
    resolved_by: str | None = None
    resolved_at: float | None = None
    assigned_to: str | None = Field(default=None, description="The operator it is assigned to")
    history: list[HistoryEntry] = Field(default_factory=list,
                                        description="Operator actions with their comments")

    @model_validator(mode="after")
    def _lifecycle_consistent(self) -> Self:
        """Who/when fields go with the state: an acknowledged alert says who acknowledged
        it, a resolved one who resolved it, an open one neither."""
        acked = self.acknowledged_by is not None and self.acknowledged_at is not None
        resolved = self.resolved_by is not None and self.resolved_at is not None
        if self.state is AlertState.OPEN and (acked or resolved):
            raise ValueError("an open alert has no acknowledged_*/resolved_* fields")
        if self.state is AlertState.ACKNOWLEDGED and (not acked or resolved):
            raise ValueError("an acknowledged alert needs acknowledged_by/_at, no resolved_*")
        if self.state is AlertState.RESOLVED and not resolved:
            raise ValueError("a resolved alert needs resolved_by and resolved_at")
        return self

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


def next_state(state: AlertState, action: Action) -> AlertState:
    """The state ``action`` leads to from ``state``.

    >>> next_state(AlertState.OPEN, Action.ACKNOWLEDGE).value
    'acknowledged'
    """
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        raise InvalidTransition(state, action) from None


def escalated(severity: Severity) -> Severity:
    """One step more severe (critical stays critical).

    >>> escalated(Severity.MEDIUM).value, escalated(Severity.CRITICAL).value
    ('high', 'critical')
    """
    return list(Severity)[min(severity.rank + 1, Severity.CRITICAL.rank)]


def apply_action(alert: Alert, action: Action, actor: str, comment: str, now: float,
                 assignee: str | None = None) -> Alert:
    """``alert`` after an operator ``action``: new state, who/when, history, version + 1.

    Raises ``InvalidTransition`` if the state does not allow it and ``ValueError`` for an
    empty actor, an assign without ``assignee`` or a note without a comment.
    """
    if not actor.strip():
        raise ValueError("an action needs an actor")
    if action is Action.ASSIGN and not (assignee or "").strip():
        raise ValueError("assign needs the operator to assign the alert to")
    if action is Action.NOTE and not comment.strip():
        raise ValueError("a note needs its text")
    state = next_state(alert.state, action)
    update: dict[str, object] = {"state": state, "version": alert.version + 1,
                                 "updated_at": now, "change": _CHANGE_OF[action]}
    if action is Action.ACKNOWLEDGE:
        update |= {"acknowledged_by": actor, "acknowledged_at": now}
    elif action is Action.RESOLVE:
        update |= {"resolved_by": actor, "resolved_at": now}
    elif action is Action.ASSIGN:
        update["assigned_to"] = assignee
    elif action is Action.ESCALATE:
        update["severity"] = escalated(alert.severity)
    entry = HistoryEntry(ts=now, actor=actor, action=action, comment=comment,
                         assignee=assignee if action is Action.ASSIGN else None)
    update["history"] = [*alert.history, entry]
    return _replace(alert, update)


def cap_evidence(items: Sequence[_Item], cap: int = MAX_EVIDENCE) -> list[_Item]:
    """``items`` (oldest first) within ``cap``: the first (the trigger) and the newest
    ``cap - 1``. The one capping rule of the rule engine and the store.

    >>> cap_evidence(["trigger", "a", "b", "c"], 3)
    ['trigger', 'b', 'c']
    >>> cap_evidence(["trigger", "a"], 1)
    ['trigger']
    """
    if cap < 1:
        raise ValueError(f"an evidence cap is at least 1, not {cap}")
    if len(items) <= cap:
        return list(items)
    return [items[0], *items[len(items) - cap + 1:]]


def merge_evidence(old: list[Evidence], new: list[Evidence], cap: int = MAX_EVIDENCE
                   ) -> list[Evidence]:
    """``old`` then the items of ``new`` not yet in it (by event id), within ``cap``
    (``cap_evidence``: the first, the trigger, and the newest ``cap - 1``).

    >>> e = [Evidence(source="sensor", event_id=str(i), ts=i) for i in range(4)]
    >>> [x.event_id for x in merge_evidence(e[:2], e[1:], cap=3)]
    ['0', '2', '3']
    """
    wanted = set(added_event_ids(old, new))
    merged = list(old)
    for item in new:
        if item.event_id in wanted:
            wanted.discard(item.event_id)
            merged.append(item)
    return cap_evidence(merged, cap)


def added_event_ids(old: Sequence[Evidence], new: Sequence[Evidence]) -> list[str]:
    """The event ids of ``new`` that ``old`` lacks, in order, each once.

    >>> e = [Evidence(source="sensor", event_id=str(i), ts=i) for i in range(3)]
    >>> added_event_ids(e[:2], [e[2], e[1], e[2]])
    ['2']
    """
    seen = {item.event_id for item in old}
    added: list[str] = []
    for item in new:
        if item.event_id not in seen:
            seen.add(item.event_id)
            added.append(item.event_id)
    return added


def merge_update(stored: Alert, incoming: Alert, now: float) -> Alert:
    """``stored`` updated by a newer version of the same alert from the rule engine.

    The engine owns the detection side: title, camera, position, the time span (widened,
    never narrowed), the count (never lowered), the evidence (merged) and the severity
    (escalates, never de-escalates). The lifecycle side (state, who/when, history,
    created_at) and the identity (rule, site, zone) stay as stored. Version + 1.

    The merged evidence is capped (``cap_evidence``) at the longer of the two lists, at
    most ``MAX_EVIDENCE``: the engine sends at most its rule's ``evidence.max`` items, so
    a rule's lower cap holds in the stored alert too, and the stored list never shrinks.
    """
    severity = max(stored.severity, incoming.severity, key=lambda s: s.rank)
    cap = min(MAX_EVIDENCE, max(1, len(stored.evidence), len(incoming.evidence)))
    return _replace(stored, {
        "title": incoming.title,
        "severity": severity,
        "camera_id": incoming.camera_id or stored.camera_id,
        "lat": incoming.lat,
        "lon": incoming.lon,
        "first_seen": min(stored.first_seen, incoming.first_seen),
        "last_seen": max(stored.last_seen, incoming.last_seen),
        "count": max(stored.count, incoming.count),
        "evidence": merge_evidence(stored.evidence, incoming.evidence, cap),
        "version": stored.version + 1,
        "change": ChangeKind.UPDATED,
        "updated_at": now,
        "schema_version": 4,
    })


def _replace(alert: Alert, update: dict[str, object]) -> Alert:
    """A validated copy (``model_copy(update=...)`` would skip validation)."""
    return Alert.model_validate({**alert.model_dump(), "schema_version": 4, **update})


class Outcome(StrEnum):
    """What ``argus.stores.alerts.open_or_update`` did with an alert from the rule engine."""

    CREATED = "created"
    UPDATED = "updated"
    DUPLICATE = "duplicate"
    """The same version was applied before (a replay): nothing changed."""
    STALE = "stale"
    """An older version than the one applied: nothing changed."""
    CLOSED = "closed"
    """The alert is resolved: its record is frozen; the engine must open a new id."""


def classify(state: AlertState | None, source_version: int | None, incoming_version: int
             ) -> Outcome:
    """Decide what an incoming engine version does to the stored alert (None: not stored).

    >>> classify(AlertState.OPEN, 2, 3).value
    'updated'
    """
    if state is None or source_version is None:
        return Outcome.CREATED
    if incoming_version < source_version:
        return Outcome.STALE
    if incoming_version == source_version:
        return Outcome.DUPLICATE
    if state is AlertState.RESOLVED:
        return Outcome.CLOSED
    return Outcome.UPDATED
