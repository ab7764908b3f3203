"""The alert state machine, engine-update merging and version rules, as tables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from argus.stores.alert_outbox import change_message
from argus.stores.alerts import Outcome, classify, ranked_score
from schemas.alerts import (
    Action,
    Alert,
    AlertState,
    ChangeKind,
    Evidence,
    InvalidTransition,
    Severity,
    apply_action,
    merge_evidence,
    merge_update,
    next_state,
)

OPEN, ACKED, RESOLVED = AlertState.OPEN, AlertState.ACKNOWLEDGED, AlertState.RESOLVED
ACK, RES = Action.ACKNOWLEDGE, Action.RESOLVE
ASSIGN, NOTE, ESC = Action.ASSIGN, Action.NOTE, Action.ESCALATE


def ev(event_id: str, ts: float = 1.0) -> Evidence:
    return Evidence(source="sensor", event_id=event_id, ts=ts, sensor_id="pir")


def alert(**update: object) -> Alert:
    base: dict[str, object] = dict(
        alert_id="a1", rule="forced_entry", title="Forced entry", severity=Severity.HIGH,
        site_id="s1", zone_id="z1", camera_id="cam", lat=48.0, lon=2.0, first_seen=100.0,
        last_seen=110.0, evidence=[ev("e1", 100.0)], created_at=111.0)
    return Alert.model_validate(base | update)


@pytest.mark.parametrize(("state", "action", "expected"), [
    (OPEN, ACK, ACKED),
    (OPEN, RES, RESOLVED),
    (ACKED, RES, RESOLVED),
    (ACKED, ACK, None),
    (RESOLVED, ACK, None),
    (RESOLVED, RES, None),
    (OPEN, ASSIGN, OPEN),
    (ACKED, ASSIGN, ACKED),
    (OPEN, NOTE, OPEN),
    (ACKED, NOTE, ACKED),
    (OPEN, ESC, OPEN),
    (ACKED, ESC, ACKED),
    (RESOLVED, ASSIGN, None),
    (RESOLVED, NOTE, None),
    (RESOLVED, ESC, None),
])
def test_transitions(state: AlertState, action: Action, expected: AlertState | None) -> None:
    if expected is None:
        with pytest.raises(InvalidTransition, match=f"cannot {action.value} an alert that is "
                                                    f"{state.value}"):
            next_state(state, action)
    else:
        assert next_state(state, action) is expected


@pytest.mark.parametrize(("actions", "state", "version", "change", "acked_by", "resolved_by"), [
    ([ACK], ACKED, 2, ChangeKind.ACKNOWLEDGED, "alice", None),
    ([RES], RESOLVED, 2, ChangeKind.RESOLVED, None, "alice"),
    ([ACK, RES], RESOLVED, 3, ChangeKind.RESOLVED, "alice", "alice"),
])
def test_apply_action_records_who_when_and_history(
        actions: list[Action], state: AlertState, version: int, change: ChangeKind,
        acked_by: str | None, resolved_by: str | None) -> None:
    current = alert()
    for i, action in enumerate(actions):
        current = apply_action(current, action, "alice", f"note {i}", now=200.0 + i)
    assert (current.state, current.version, current.change) == (state, version, change)
    assert (current.acknowledged_by, current.resolved_by) == (acked_by, resolved_by)
    assert current.acknowledged_at == (200.0 if acked_by else None)
    assert current.resolved_at == (200.0 + len(actions) - 1 if resolved_by else None)
    assert current.updated_at == 200.0 + len(actions) - 1
    assert [(h.action, h.actor, h.comment, h.ts) for h in current.history] == [
        (a, "alice", f"note {i}", 200.0 + i) for i, a in enumerate(actions)]


@pytest.mark.parametrize(("actions", "state", "change", "severity", "assigned_to"), [
    ([ASSIGN], OPEN, ChangeKind.ASSIGNED, Severity.HIGH, "bob"),
    ([ACK, ASSIGN], ACKED, ChangeKind.ASSIGNED, Severity.HIGH, "bob"),
    ([NOTE], OPEN, ChangeKind.NOTED, Severity.HIGH, None),
    ([ESC], OPEN, ChangeKind.ESCALATED, Severity.CRITICAL, None),
    ([ESC, ESC], OPEN, ChangeKind.ESCALATED, Severity.CRITICAL, None),  # stays critical
    ([ASSIGN, ACK], ACKED, ChangeKind.ACKNOWLEDGED, Severity.HIGH, "bob"),
])
def test_assign_note_escalate_keep_the_state(
        actions: list[Action], state: AlertState, change: ChangeKind, severity: Severity,
        assigned_to: str | None) -> None:
    current = alert()
    for i, action in enumerate(actions):
        current = apply_action(current, action, "alice", "why", now=200.0 + i,
                               assignee="bob" if action is ASSIGN else None)
    assert (current.state, current.change, current.severity, current.assigned_to) == (
        state, change, severity, assigned_to)
    assert (current.version, current.schema_version) == (1 + len(actions), 4)
    assert [(h.action, h.assignee) for h in current.history] == [
        (a, "bob" if a is ASSIGN else None) for a in actions]


@pytest.mark.parametrize(("action", "comment", "assignee", "message"), [
    (ASSIGN, "x", None, "assign needs"),
    (ASSIGN, "x", "  ", "assign needs"),
    (NOTE, "", None, "a note needs"),
    (NOTE, "  ", None, "a note needs"),
])
def test_assign_and_note_need_their_content(action: Action, comment: str,
                                            assignee: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        apply_action(alert(), action, "alice", comment, now=1.0, assignee=assignee)


@pytest.mark.parametrize("actor", ["", "   "])
def test_action_needs_an_actor(actor: str) -> None:
    with pytest.raises(ValueError, match="actor"):
        apply_action(alert(), ACK, actor, "", now=1.0)


@pytest.mark.parametrize(("update", "message"), [
    ({"state": ACKED}, "acknowledged alert needs"),
    ({"state": RESOLVED}, "resolved alert needs"),
    ({"acknowledged_by": "x", "acknowledged_at": 1.0}, "open alert has no"),
    ({"state": ACKED, "acknowledged_by": "x", "acknowledged_at": 1.0, "resolved_by": "y",
      "resolved_at": 2.0}, "no resolved_"),
])
def test_inconsistent_lifecycle_fields_are_refused(update: dict[str, object], message: str
                                                   ) -> None:
    with pytest.raises(ValidationError, match=message):
        alert(**update)


def test_version_1_messages_still_validate() -> None:
    old = alert().model_dump(mode="json", exclude={"change", "updated_at", "acknowledged_by",
                                                   "acknowledged_at", "resolved_by",
                                                   "resolved_at", "history"})
    old["schema_version"] = 1
    parsed = Alert.model_validate(old)
    assert (parsed.schema_version, parsed.state, parsed.change, parsed.history) == (
        1, OPEN, ChangeKind.CREATED, [])


@pytest.mark.parametrize(("stored", "incoming", "expected"), [
    ((None, None), 1, Outcome.CREATED),
    ((OPEN, 1), 2, Outcome.UPDATED),
    ((ACKED, 1), 5, Outcome.UPDATED),
    ((OPEN, 2), 2, Outcome.DUPLICATE),
    ((OPEN, 3), 2, Outcome.STALE),
    ((RESOLVED, 2), 3, Outcome.CLOSED),
    ((RESOLVED, 2), 2, Outcome.DUPLICATE),
    ((RESOLVED, 2), 1, Outcome.STALE),
])
def test_classify_engine_versions(stored: tuple[AlertState | None, int | None], incoming: int,
                                  expected: Outcome) -> None:
    assert classify(stored[0], stored[1], incoming) is expected


def test_merge_update_takes_detection_side_and_keeps_lifecycle() -> None:
    stored = apply_action(alert(), ACK, "alice", "looking", now=120.0)  # version 2
    incoming = alert(version=2, count=3, severity=Severity.CRITICAL, title="Forced entry x3",
                     first_seen=105.0, last_seen=150.0, camera_id=None,
                     evidence=[ev("e1", 100.0), ev("e2", 140.0), ev("e3", 150.0)],
                     created_at=151.0)
    merged = merge_update(stored, incoming, now=152.0)
    assert (merged.version, merged.change, merged.updated_at) == (3, ChangeKind.UPDATED, 152.0)
    assert (merged.count, merged.severity, merged.title) == (3, Severity.CRITICAL,
                                                             "Forced entry x3")
    assert (merged.first_seen, merged.last_seen) == (100.0, 150.0)
    assert merged.camera_id == "cam"  # not cleared by an update without a camera
    assert [e.event_id for e in merged.evidence] == ["e1", "e2", "e3"]
    assert (merged.state, merged.acknowledged_by, merged.created_at) == (ACKED, "alice", 111.0)
    assert [h.comment for h in merged.history] == ["looking"]


@pytest.mark.parametrize(("stored", "incoming", "expected"), [
    (Severity.HIGH, Severity.CRITICAL, Severity.CRITICAL),
    (Severity.HIGH, Severity.LOW, Severity.HIGH),  # never de-escalates
    (Severity.INFO, Severity.MEDIUM, Severity.MEDIUM),
])
def test_severity_only_escalates(stored: Severity, incoming: Severity, expected: Severity
                                 ) -> None:
    merged = merge_update(alert(severity=stored), alert(severity=incoming, version=2), now=1.0)
    assert merged.severity is expected


@pytest.mark.parametrize(("old", "new", "cap", "expected"), [
    (["a"], ["a", "b"], 10, ["a", "b"]),
    (["a", "b"], ["c", "b", "d"], 10, ["a", "b", "c", "d"]),
    (["a", "b", "c"], ["d", "e"], 3, ["a", "d", "e"]),  # the trigger and the newest stay
    ([], ["x"], 10, ["x"]),
])
def test_merge_evidence(old: list[str], new: list[str], cap: int, expected: list[str]) -> None:
    merged = merge_evidence([ev(i) for i in old], [ev(i) for i in new], cap=cap)
    assert [e.event_id for e in merged] == expected


@pytest.mark.parametrize(("severity", "last_seen", "score"), [
    (Severity.INFO, 1.7e9, 1.7e9),
    (Severity.CRITICAL, 1.7e9, 4e10 + 1.7e9),
])
def test_ranked_score(severity: Severity, last_seen: float, score: float) -> None:
    assert ranked_score(alert(severity=severity, last_seen=last_seen)) == score


def test_change_message_is_keyed_by_alert_id() -> None:
    acked = apply_action(alert(), ACK, "bob", "", now=5.0)
    key, value = change_message(acked)
    assert key == b"a1"
    assert Alert.model_validate_json(value) == acked
