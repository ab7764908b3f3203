"""Evidence you can audit, as tables: the one capping rule (the trigger and the newest),
the store's merge within a rule's cap, and the audit entries that list every event id an
engine write added (and none for a replay)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from argus.stores.audit import AUDIT, alert_audit_key, audit_entries, newest_first, queue_audit
from schemas.alerts import (
    MAX_EVIDENCE,
    Action,
    Alert,
    AlertState,
    ChangeKind,
    Evidence,
    Severity,
    apply_action,
    cap_evidence,
    merge_evidence,
    merge_update,
)
from schemas.audit import ENGINE_ACTOR, AuditAction, AuditEntry, evidence_entry

ITEMS = ["t", *(str(i) for i in range(1, 150))]
"""A trigger and 149 later items, oldest first."""


def ev(event_id: str) -> Evidence:
    return Evidence(source="sensor", event_id=event_id, ts=1.0, sensor_id="pir")


def ids(items: list[Evidence]) -> list[str]:
    return [e.event_id for e in items]


def alert(evidence: list[str], **update: object) -> Alert:
    base: dict[str, object] = dict(
        alert_id="a1", rule="forced_entry", title="Forced entry", severity=Severity.HIGH,
        site_id="s1", zone_id="z1", lat=48.0, lon=2.0, first_seen=100.0, last_seen=110.0,
        evidence=[ev(i) for i in evidence], created_at=111.0)
    return Alert.model_validate(base | update)


# --- the capping rule ------------------------------------------------------------------

@pytest.mark.parametrize(("n", "cap", "expected"), [
    (0, 1, []),
    (1, 1, ["t"]),
    (5, 1, ["t"]),                               # the trigger alone
    (2, 2, ["t", "1"]),
    (5, 2, ["t", "4"]),                          # the trigger and the newest
    (5, 3, ["t", "3", "4"]),
    (5, 5, ITEMS[:5]),                           # within the cap: all, in order
    (100, 100, ITEMS[:100]),
    (101, 100, ["t", *ITEMS[2:101]]),            # the oldest non-trigger goes first
    (150, 100, ["t", *ITEMS[51:150]]),
    (150, MAX_EVIDENCE, ["t", *ITEMS[150 - MAX_EVIDENCE + 1:150]]),
])
def test_cap_evidence(n: int, cap: int, expected: list[str]) -> None:
    capped = cap_evidence(ITEMS[:n], cap)
    assert capped == expected
    assert len(capped) == min(n, cap) and len(set(capped)) == len(capped)
    if n:
        assert capped[0] == "t"  # the trigger always stays...
    if cap > 1 and n:
        assert capped[-1] == ITEMS[n - 1]  # ...and so does the newest


def test_cap_evidence_works_on_the_engine_records_and_refuses_zero() -> None:
    records = [{"event_id": i} for i in ("t", "a", "b")]
    assert cap_evidence(records, 2) == [{"event_id": "t"}, {"event_id": "b"}]
    with pytest.raises(ValueError, match="at least 1"):
        cap_evidence(records, 0)


@pytest.mark.parametrize(("old", "new", "cap", "expected"), [
    (["t", "a"], ["a", "b", "b", "c"], 10, ["t", "a", "b", "c"]),  # no duplicates
    (["t", "a", "b"], ["t", "c"], 3, ["t", "b", "c"]),
    (["t"], ["a", "b", "c"], 1, ["t"]),
    (["t"], ["a", "b", "c"], 2, ["t", "c"]),
])
def test_merge_evidence_dedups_then_caps(old: list[str], new: list[str], cap: int,
                                         expected: list[str]) -> None:
    assert ids(merge_evidence([ev(i) for i in old], [ev(i) for i in new], cap)) == expected


@pytest.mark.parametrize(("stored", "incoming", "expected"), [
    # a rule with max 5: the engine sends the trigger and its newest 4, the store agrees
    (["t", "a", "b", "c", "d"], ["t", "b", "c", "d", "e"], ["t", "b", "c", "d", "e"]),
    # still growing
    (["t", "a"], ["t", "a", "b"], ["t", "a", "b"]),
    # the stored list never shrinks (e.g. after a rule's max was lowered)
    (["t", "a", "b", "c"], ["t", "d"], ["t", "b", "c", "d"]),
    # at most MAX_EVIDENCE
    (ITEMS[:100], ["t", *ITEMS[2:101]], ["t", *ITEMS[2:101]]),
])
def test_merge_update_keeps_the_rule_cap(stored: list[str], incoming: list[str],
                                         expected: list[str]) -> None:
    merged = merge_update(alert(stored), alert(incoming, version=2), now=1.0)
    assert ids(merged.evidence) == expected


# --- the audit entries of engine writes ------------------------------------------------

@pytest.mark.parametrize(("previous", "incoming", "added"), [
    (None, ["t", "a"], ["t", "a"]),                       # created: every id
    (["t", "a"], ["t", "a", "b"], ["b"]),                 # updated: the new ones
    (["t", "a"], ["t", "a"], None),                       # a replay, or nothing new
    (["t", "b", "c"], ["t", "c", "d", "d"], ["d"]),       # each once
    (None, [], None),                                     # no evidence: nothing to audit
])
def test_evidence_entry_lists_the_ids_a_write_added(previous: list[str] | None,
                                                    incoming: list[str],
                                                    added: list[str] | None) -> None:
    before = None if previous is None else alert(previous)
    after = alert(incoming) if before is None else merge_update(before, alert(incoming,
                                                                              version=2), 5.0)
    entry = evidence_entry(before, after, after.evidence if before is None
                           else [ev(i) for i in incoming], now=5.0)
    if added is None:
        assert entry is None
        return
    assert entry is not None
    assert (entry.event_ids, entry.actor, entry.action, entry.alert_id, entry.ts) == (
        added, ENGINE_ACTOR, AuditAction.EVIDENCE, "a1", 5.0)
    assert (entry.change, entry.version) == ((ChangeKind.CREATED, 1) if before is None
                                             else (ChangeKind.UPDATED, 2))


def test_evidence_entry_of_an_escalation_of_an_acknowledged_alert() -> None:
    acked = apply_action(alert(["t"]), Action.ACKNOWLEDGE, "alice", "", now=2.0)
    incoming = alert(["t", "x"], version=2, severity=Severity.CRITICAL)
    updated = merge_update(acked, incoming, now=3.0)
    entry = evidence_entry(acked, updated, incoming.evidence, now=3.0)
    assert entry is not None
    assert (entry.from_state, entry.to_state, entry.version, entry.comment) == (
        AlertState.ACKNOWLEDGED, AlertState.ACKNOWLEDGED, 3, "escalated: high -> critical")


def test_stream_fields_round_trip() -> None:
    operator = AuditEntry(ts=2.0, actor="alice", action=AuditAction.ACKNOWLEDGE,
                          alert_id="a1", comment="on my way", from_state=AlertState.OPEN,
                          to_state=AlertState.ACKNOWLEDGED, version=2)
    assert operator.stream_fields() == {  # as before evidence was audited
        "ts": "2.0", "actor": "alice", "action": "acknowledge", "alert_id": "a1",
        "comment": "on my way", "from_state": "open", "to_state": "acknowledged",
        "version": "2"}
    engine = evidence_entry(None, alert(["t", "a:1,2"]), [ev("t"), ev("a:1,2")], now=1.0)
    assert engine is not None
    fields = engine.stream_fields()
    assert (fields["change"], fields["event_ids"]) == ("created", '["t", "a:1,2"]')
    for entry, raw in ((operator, operator.stream_fields()), (engine, fields)):
        assert AuditEntry.model_validate({**raw, "id": "1-0"}) == entry.model_copy(
            update={"id": "1-0"})


# --- the store side, on a stand-in for the two stream commands -------------------------

class Streams:
    """``XADD``/``XREVRANGE``/``EXPIRE`` on dicts: enough for ``argus.stores.audit``."""

    def __init__(self) -> None:
        self.streams: dict[str, list[tuple[bytes, dict[bytes, bytes]]]] = {}
        self.expiry: dict[str, int] = {}

    def xadd(self, key: str, fields: dict[Any, Any], **_: Any) -> None:
        rows = self.streams.setdefault(key, [])
        rows.append((f"{len(rows) + 1}-0".encode(),
                     {str(k).encode(): str(v).encode() for k, v in fields.items()}))

    def expire(self, key: str, seconds: int) -> None:
        self.expiry[key] = seconds

    async def xrevrange(self, key: str, count: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        return list(reversed(self.streams.get(key, [])))[:count]


def entry(version: int, alert_id: str = "a1", **update: Any) -> AuditEntry:
    base: dict[str, Any] = dict(ts=float(version), actor=ENGINE_ACTOR, action="evidence",
                                alert_id=alert_id, from_state="open", to_state="open",
                                version=version, change="updated", event_ids=[f"e{version}"])
    return AuditEntry.model_validate(base | update)


def test_queue_audit_writes_both_streams_and_reads_back_per_alert() -> None:
    redis = Streams()
    written = [entry(1, change="created"), entry(1, "other", change="created"), entry(2),
               entry(3, actor="alice", action="acknowledge", change=None, event_ids=[])]
    for e in written:
        queue_audit(redis, e, retention_s=3600)  # type: ignore[arg-type]
    assert len(redis.streams[AUDIT]) == 4
    assert redis.expiry == {alert_audit_key("a1"): 3600, alert_audit_key("other"): 3600}
    mine = asyncio.run(audit_entries(redis, 10, "a1"))  # type: ignore[arg-type]
    assert [(e.version, e.action.value, e.event_ids) for e in mine] == [
        (3, "acknowledge", []), (2, "evidence", ["e2"]), (1, "evidence", ["e1"])]
    assert [e.alert_id for e in asyncio.run(audit_entries(redis, 2))] == [  # type: ignore[arg-type]
        "a1", "a1"]


def test_entries_from_before_the_per_alert_streams_are_found() -> None:
    redis = Streams()
    redis.xadd(AUDIT, entry(1, change="created").stream_fields())  # only in the shared one
    redis.xadd(AUDIT, entry(2).stream_fields())
    queue_audit(redis, entry(3), retention_s=3600)  # type: ignore[arg-type]
    got = asyncio.run(audit_entries(redis, 10, "a1"))  # type: ignore[arg-type]
    assert [e.version for e in got] == [3, 2, 1]
    assert [e.version for e in asyncio.run(audit_entries(redis, 2, "a1"))] == [  # type: ignore[arg-type]
        3, 2]


@pytest.mark.parametrize(("own", "older", "count", "expected"), [
    ([3, 2], [2, 1], 10, [3, 2, 1]),
    ([5], [4, 3, 2], 2, [5, 4]),
    ([], [2, 1], 10, [2, 1]),
])
def test_newest_first(own: list[int], older: list[int], count: int, expected: list[int]
                      ) -> None:
    merged = newest_first([entry(v) for v in own], [entry(v) for v in older], count)
    assert [e.version for e in merged] == expected
