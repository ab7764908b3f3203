"""``commands``: what a rule asks a site's equipment or a receiver to do (key = site id).

A rule's ``actions`` (docs/rules.md) become one command each time the alert changes in a
way the action runs on (``opened`` and ``escalated`` by default, ``updated`` if listed):
turn on the lights of a zone, move a PTZ camera to a preset, call a webhook. Site
controllers (lights, PTZ) read the topic filtered by their site key; the notifier
executes ``webhook`` commands (docs/alerts.md).

``command_id`` is deterministic from the alert id, the rule engine's version of the alert
and the action's position among the change's actions, so re-processing the same input
gives the same id: an executor runs a ``command_id`` at most once, and never after
``expires_at``.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Literal, Self

from pydantic import Field, model_validator

from schemas.alerts import Severity
from schemas.base import Message

Param = str | int | float | bool
Trigger = Literal["opened", "updated", "escalated"]


class CommandType(StrEnum):
    LIGHTS = "lights"
    PTZ = "ptz"
    WEBHOOK = "webhook"


REQUIRED_PARAMS: dict[CommandType, tuple[str, ...]] = {
    CommandType.LIGHTS: ("state",),
    CommandType.PTZ: ("preset",),
    CommandType.WEBHOOK: ("url",),
}
"""The ``params`` each type needs (lights may add ``duration_s``)."""


def command_id(alert_id: str, alert_version: int, index: int) -> str:
    """The deterministic id of the ``index``-th command of one version of an alert.

    >>> command_id("confirmed_intrusion-7f3816bce347ec4a", 1, 0)
    'cmd-4c86102ca6faecdf1e28'
    """
    digest = hashlib.sha1(f"{alert_id}|{alert_version}|{index}".encode()).hexdigest()
    return f"cmd-{digest[:20]}"


class Command(Message):
    schema_version: Literal[1] = 1
    command_id: str = Field(description="Deterministic: alert id, alert version, action index")
    type: CommandType
    site_id: str
    zone_id: str | None = Field(default=None, description="The zone it acts on (lights)")
    camera_id: str | None = Field(default=None, description="The camera it moves (ptz)")
    alert_id: str
    alert_version: int = Field(ge=1, description="The rule engine's version of the alert "
                                                 "that issued it (the alert's source version)")
    action_index: int = Field(ge=0, description="Its position among the change's actions")
    rule: str
    severity: Severity = Field(description="The alert's severity when it was issued")
    trigger: Trigger = Field(description="The alert change that issued it")
    params: dict[str, Param] = Field(
        default_factory=dict,
        description="lights: state, duration_s; ptz: preset; webhook: url")
    issued_at: float = Field(gt=0)
    expires_at: float = Field(gt=0, description="Not executed after this time")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        """The id matches its parts, the type has its target and parameters, and the
        command expires after it is issued."""
        if self.command_id != command_id(self.alert_id, self.alert_version, self.action_index):
            raise ValueError("command_id is not command_id(alert_id, alert_version, "
                             "action_index)")
        missing = [p for p in REQUIRED_PARAMS[self.type] if p not in self.params]
        if missing:
            raise ValueError(f"a {self.type.value} command needs params {missing}")
        if self.type is CommandType.LIGHTS and self.zone_id is None:
            raise ValueError("a lights command needs a zone_id")
        if self.type is CommandType.PTZ and self.camera_id is None:
            raise ValueError("a ptz command needs a camera_id")
        if self.expires_at <= self.issued_at:
            raise ValueError("expires_at must be after issued_at")
        return self

    def expired(self, now: float) -> bool:
        """True once ``now`` is past ``expires_at``."""
        return now > self.expires_at
