"""Rule actions as commands, as tables: which alert changes issue which commands, the
command contract, deterministic ids, and the notifier's decisions on webhook commands."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

import pytest
from pydantic import ValidationError

from argus.settings import REPO_ROOT
from pipelines.stages.correlate.rules import commands_for
from schemas.alerts import Alert, ChangeKind, Severity
from schemas.commands import Command, command_id
from services.notifier.commands import command_request, covering
from services.notifier.notifier import Webhook
from tests.unit.test_rule_engine import Step, engine_for, play, s, v

SHIPPED = (REPO_ROOT / "config" / "rules.yaml").read_text()

ACTIONS = """
rules:
  - id: watched
    title: "Intrusion in {zone_name}"
    severity: medium
    events: [{as: sensor, type: intrusion}, {as: person, kind: zone_intrusion}]
    window_s: 30
    anchor: sensor
    escalate: [{repeats: 5, severity: critical}]
    actions:
      - {type: lights, zone: yard, state: "off"}
      - {type: ptz, camera: c1, preset: 3, when: [opened]}
      - {type: webhook, url: "https://ops.example/hook", when: [opened, updated, escalated]}
"""


def issued(steps: list[Step], rules: str = SHIPPED, rule: str = "confirmed_intrusion"
           ) -> list[tuple[str, int, str, str | None, str | None, dict[str, Any]]]:
    """(trigger, alert version, type, zone, camera, params) of every command issued."""
    changes = play(engine_for(rules, rule), steps)
    return [(c.trigger, c.alert_version, c.type.value, c.zone_id, c.camera_id, c.params)
            for change in changes for c in commands_for(change, 1000.0)]


LIGHTS_ON = ("lights", "lobby", None, {"state": "on", "duration_s": 300.0})
REPEATS: list[Step] = []
for _t in range(0, 600, 100):  # six confirmations, 100 s apart (cool-down 120 s)
    REPEATS += [s(_t, "pir", "active"), v(_t + 2)]


@pytest.mark.parametrize(
    ("steps", "rules", "rule", "expected"),
    [
        # the shipped confirmed_intrusion: lights on in the alert's zone when it opens...
        ([s(0, "pir", "active"), v(5)], SHIPPED, "confirmed_intrusion",
         [("opened", 1, *LIGHTS_ON)]),
        ([v(0), s(20, "pir", "active")], SHIPPED, "confirmed_intrusion",
         [("opened", 1, *LIGHTS_ON)]),
        # ... not on repeats within the cool-down (updated), again when it escalates (6th)
        (REPEATS, SHIPPED, "confirmed_intrusion",
         [("opened", 1, *LIGHTS_ON), ("escalated", 6, *LIGHTS_ON)]),
        # no alert, no command
        ([s(0, "pir", "active"), v(45)], SHIPPED, "confirmed_intrusion", []),
        # every action type, each on the changes it lists
        ([s(0, "pir", "active"), v(5)], ACTIONS, "watched",
         [("opened", 1, "lights", "yard", None, {"state": "off"}),
          ("opened", 1, "ptz", "lobby", "c1", {"preset": 3}),
          ("opened", 1, "webhook", "lobby", "c1", {"url": "https://ops.example/hook"})]),
        ([s(0, "pir", "active"), v(5), s(10, "pir", "active")], ACTIONS, "watched",
         [("opened", 1, "lights", "yard", None, {"state": "off"}),
          ("opened", 1, "ptz", "lobby", "c1", {"preset": 3}),
          ("opened", 1, "webhook", "lobby", "c1", {"url": "https://ops.example/hook"}),
          ("updated", 2, "webhook", "lobby", "c1", {"url": "https://ops.example/hook"})]),
    ],
)
def test_which_changes_issue_which_commands(steps: list[Step], rules: str, rule: str,
                                            expected: list[tuple[Any, ...]]) -> None:
    assert issued(steps, rules, rule) == expected


def test_the_same_input_gives_the_same_command_ids() -> None:
    steps: list[Step] = [s(0, "pir", "active"), v(5), s(10, "pir", "active")]
    runs = [[c for change in play(engine_for(ACTIONS, "watched"), steps)
             for c in commands_for(change, issued_at)] for issued_at in (1000.0, 2000.0)]
    ids = [[c.command_id for c in run] for run in runs]
    assert ids[0] == ids[1] and len(set(ids[0])) == 4
    first = runs[0][0]
    assert first.command_id == command_id(first.alert_id, 1, 0)
    assert (first.expires_at - first.issued_at, runs[1][0].issued_at) == (300.0, 2000.0)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (("r-1", 1, 0), ("r-1", 1, 0), True),
        (("r-1", 1, 0), ("r-1", 1, 1), False),
        (("r-1", 1, 0), ("r-1", 2, 0), False),
        (("r-1", 1, 0), ("r-2", 1, 0), False),
        (("r-1", 11, 0), ("r-11", 1, 0), False),
    ],
)
def test_command_ids(a: tuple[str, int, int], b: tuple[str, int, int], same: bool) -> None:
    assert (command_id(*a) == command_id(*b)) is same
    assert command_id(*a).startswith("cmd-") and len(command_id(*a)) == 24


def command(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "command_id": command_id("r-1", 2, 0), "type": "lights", "site_id": "s1",
        "zone_id": "lobby", "alert_id": "r-1", "alert_version": 2, "action_index": 0,
        "rule": "r", "severity": "high", "trigger": "escalated", "params": {"state": "on"},
        "issued_at": 100.0, "expires_at": 400.0}
    return fields | overrides


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({}, None),
        ({"type": "ptz", "camera_id": "c1", "params": {"preset": "gate"}}, None),
        ({"type": "webhook", "zone_id": None, "params": {"url": "https://x.example"}}, None),
        ({"command_id": "cmd-1"}, "command_id is not command_id"),
        ({"alert_version": 3}, "command_id is not command_id"),
        ({"params": {}}, "a lights command needs params ['state']"),
        ({"type": "ptz", "params": {"preset": 1}}, "a ptz command needs a camera_id"),
        ({"type": "webhook", "params": {"state": "on"}}, "needs params ['url']"),
        ({"zone_id": None}, "a lights command needs a zone_id"),
        ({"expires_at": 100.0}, "expires_at must be after issued_at"),
        ({"trigger": "created"}, "trigger"),
        ({"type": "siren"}, "type"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_the_command_contract(overrides: dict[str, Any], error: str | None) -> None:
    if error is None:
        parsed = Command.model_validate(command(**overrides))
        assert Command.model_validate_json(parsed.to_bytes()) == parsed
        assert (parsed.expired(400.0), parsed.expired(400.5)) == (False, True)
    else:
        with pytest.raises(ValidationError, match=re.escape(error)):
            Command.model_validate(command(**overrides))


def hook_command(url: str, severity: str = "high", trigger: str = "opened", site: str = "s1"
                 ) -> Command:
    return Command.model_validate(command(
        type="webhook", params={"url": url}, severity=severity, trigger=trigger,
        site_id=site))


HOOK = Webhook(name="ops", url="https://ops.example/hook", min_severity=Severity.HIGH,
               changes=frozenset({ChangeKind.CREATED}), sites=frozenset({"s1"}))


@pytest.mark.parametrize(
    ("cmd", "covered"),
    [
        (hook_command("https://ops.example/hook"), True),
        (hook_command("HTTPS://OPS.example:443/hook"), True),  # the same URL, spelled otherwise
        (hook_command("https://ops.example/other"), False),
        (hook_command("https://ops.example/hook", severity="medium"), False),  # below min
        (hook_command("https://ops.example/hook", trigger="escalated"), False),  # an update
        (hook_command("https://ops.example/hook", site="s2"), False),
    ],
)
def test_a_configured_webhook_covers_a_command_to_its_url(cmd: Command, covered: bool) -> None:
    assert (covering([HOOK], cmd) is HOOK) is covered


def test_the_webhook_command_request() -> None:
    cmd = hook_command("https://ops.example/rule")
    alert = Alert(alert_id="r-1", rule="r", title="t", severity="high", site_id="s1",
                  zone_id="lobby", lat=1, lon=2, first_seen=1, last_seen=2, evidence=[],
                  created_at=2, version=2)
    body, headers = command_request(cmd, alert, secret="k")
    assert json.loads(body) == {"command": cmd.model_dump(mode="json"),
                                "alert": alert.model_dump(mode="json")}
    assert headers == {
        "Content-Type": "application/json", "X-Argus-Event": "command.webhook",
        "X-Argus-Delivery": cmd.command_id,
        "X-Argus-Signature": "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()}
    body, headers = command_request(cmd, None)
    assert json.loads(body)["alert"] is None and "X-Argus-Signature" not in headers
