"""A rule's actions as ``commands`` messages (``schemas/commands.py``): pure.

Each action of an :class:`AlertChange` becomes one :class:`Command` whose id is derived
from the alert id, the engine's version of the alert and the action's position, so the
same change always yields the same ids (a replay cannot issue a second distinct command).
"""

from __future__ import annotations

from pipelines.stages.correlate.rules.alerts import AlertChange
from pipelines.stages.correlate.rules.model import Action, LightsAction, PtzAction, WebhookAction
from schemas.commands import Command, CommandType, Param, command_id

DEFAULT_TTL_S = 300.0
"""How long after it is issued a command is still worth executing."""


def _target(action: Action, change: AlertChange
            ) -> tuple[CommandType, str | None, str | None, dict[str, Param]]:
    """Type, zone, camera and params of one action on one alert."""
    alert = change.alert
    if isinstance(action, LightsAction):
        params: dict[str, Param] = {"state": action.state}
        if action.duration_s is not None:
            params["duration_s"] = action.duration_s
        return CommandType.LIGHTS, action.zone or alert.zone_id, None, params
    if isinstance(action, PtzAction):
        return CommandType.PTZ, alert.zone_id, action.camera, {"preset": action.preset}
    assert isinstance(action, WebhookAction)
    return CommandType.WEBHOOK, alert.zone_id, alert.camera_id, {"url": action.url}


def commands_for(change: AlertChange, issued_at: float, ttl_s: float = DEFAULT_TTL_S
                 ) -> list[Command]:
    """The commands of one alert change, in the order of its actions.

    >>> from pipelines.stages.correlate.rules.model import ChangeKind
    >>> from schemas.alerts import Alert
    >>> alert = Alert(alert_id="r-1", rule="r", title="t", severity="high", site_id="s",
    ...     zone_id="lobby", lat=0, lon=0, first_seen=1, last_seen=2, evidence=[],
    ...     created_at=2, version=3)
    >>> change = AlertChange(change=ChangeKind.ESCALATED, alert=alert, actions=[
    ...     LightsAction(type="lights", duration_s=60), PtzAction(type="ptz", camera="c1",
    ...     preset="gate")])
    >>> [(c.type.value, c.zone_id, c.camera_id, c.params, c.trigger, c.alert_version)
    ...  for c in commands_for(change, 100.0)]  # doctest: +NORMALIZE_WHITESPACE
    [('lights', 'lobby', None, {'state': 'on', 'duration_s': 60.0}, 'escalated', 3),
     ('ptz', 'lobby', 'c1', {'preset': 'gate'}, 'escalated', 3)]
    """
    alert = change.alert
    commands = []
    for index, action in enumerate(change.actions):
        kind, zone, camera, params = _target(action, change)
        commands.append(Command(
            command_id=command_id(alert.alert_id, alert.version, index), type=kind,
            site_id=alert.site_id, zone_id=zone, camera_id=camera, alert_id=alert.alert_id,
            alert_version=alert.version, action_index=index, rule=alert.rule,
            severity=alert.severity, trigger=change.change.value, params=params,
            issued_at=issued_at, expires_at=issued_at + ttl_s))
    return commands
