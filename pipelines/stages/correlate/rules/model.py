"""The rule schema: what a rule in ``config/rules.yaml`` may say (pydantic, strict).

A rule combines *events* (matched by source, type/kind and attributes), *where* they
happen (same site, same zone, or within ``radius_m``), *when* (all within ``window_s``,
in ``sequence``, and the *absence* of other events), under a *schedule* (the
``Schedule`` of ``argus/schedule.py``, as behaviours have), and produces an alert (title
template, severity, evidence, actions) that is de-duplicated within ``cooldown_s`` and
escalated. A ``silence`` rule instead fires when sensors stop reporting.
The event matchers (and the strict base model) are in
:mod:`pipelines.stages.correlate.rules.matchers`.
"""

from __future__ import annotations

import string
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from argus.schedule import Schedule
from pipelines.stages.correlate.rules.matchers import Matcher, OneOrMany, Strict, listify
from schemas.alerts import MAX_EVIDENCE, Severity
from schemas.sensors import SensorType

SEVERITY_ORDER = list(Severity)
ALIAS = r"^[a-z][a-z0-9_]*$"


class ChangeKind(StrEnum):
    """What happened to an alert."""

    OPENED = "opened"
    UPDATED = "updated"
    ESCALATED = "escalated"


class EventSpec(Matcher):
    """One event a rule combines, named (``as``) for the anchor, absences and templates.
    ``of`` with ``before_s``/``after_s``: it lies that far before/after the event ``of``
    (unset: ``window_s``). ``times: N``: N distinct events, ``apart_s`` apart, within
    ``window_s`` in the same place and ``group_by`` values (a rule of one event only)."""

    name: str = Field(alias="as", pattern=ALIAS)
    of: str | None = Field(default=None, description="The event before_s/after_s refer to")
    before_s: float | None = Field(default=None, ge=0)
    after_s: float | None = Field(default=None, ge=0)
    times: int = Field(default=1, ge=1, le=100)
    apart_s: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _relative(self) -> EventSpec:
        if (self.of is None) != (self.before_s is None and self.after_s is None):
            raise ValueError("of goes with before_s and/or after_s (and they with of)")
        if self.of == self.name:
            raise ValueError(f"of: {self.of!r} is this event itself")
        if self.apart_s and self.times == 1:
            raise ValueError("apart_s goes with times >= 2")
        return self


class AbsentSpec(Matcher):
    """No event like this within ``before_s`` before / ``after_s`` after the event ``of``."""

    of: str | None = Field(default=None, description="An event alias; default the first")
    before_s: float = Field(default=0.0, ge=0)
    after_s: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _some_window(self) -> AbsentSpec:
        if self.before_s == 0 and self.after_s == 0:
            raise ValueError("an absence needs before_s or after_s > 0")
        return self


class EscalateStep(Strict):
    """Raise the alert to ``severity`` when its count reaches ``repeats``, or when an event
    matching ``with`` happens in the alert's place within ``within_s`` of it."""

    severity: Severity
    repeats: int | None = Field(default=None, ge=2)
    with_: Matcher | None = Field(default=None, alias="with")
    within_s: float = Field(default=60.0, ge=0)

    @model_validator(mode="after")
    def _one_trigger(self) -> EscalateStep:
        if (self.repeats is None) == (self.with_ is None):
            raise ValueError("an escalation step needs exactly one of repeats or with")
        return self


class _Action(Strict):
    when: list[ChangeKind] = Field(default_factory=lambda: [ChangeKind.OPENED,
                                                            ChangeKind.ESCALATED],
                                   description="The changes that run it ('on' is a YAML bool)")


class WebhookAction(_Action):
    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")


class LightsAction(_Action):
    type: Literal["lights"]
    zone: str | None = Field(default=None, description="Default: the alert's zone")
    state: Literal["on", "off"] = "on"
    duration_s: float | None = Field(default=None, gt=0)


class PtzAction(_Action):
    type: Literal["ptz"]
    camera: str
    preset: str | int


Action = Annotated[WebhookAction | LightsAction | PtzAction, Field(discriminator="type")]


class Silence(Strict):
    """Sensors of the site (of these types/ids, from the topology) silent for ``for_s``."""

    type: Annotated[list[SensorType] | None, BeforeValidator(listify)] = None
    sensor: OneOrMany = None
    for_s: float = Field(gt=0)


class EvidenceSpec(Strict):
    """Which events an alert keeps as evidence, and how many: the trigger (the first) and
    the newest ``max - 1`` (``schemas.alerts.cap_evidence``; the store keeps no more than
    ``MAX_EVIDENCE``, the default). The alert's audit trail lists every one of them."""

    events: list[str] | None = Field(default=None, description="Aliases to keep; default all")
    max: int = Field(default=MAX_EVIDENCE, ge=1, le=MAX_EVIDENCE,
                     description="The trigger and the newest max - 1 are kept")


TEMPLATE_NAMES = {"site", "site_name", "zone", "zone_name", "rule", "count", "severity"}


class Rule(Strict):
    id: str = Field(pattern=ALIAS, max_length=64)
    title: str = Field(min_length=1)
    description: str | None = None
    severity: Severity
    enabled: bool = True
    sites: list[str] | None = None
    events: list[EventSpec] = Field(default_factory=list)
    match: Literal["all", "sequence"] = "all"
    window_s: float = Field(default=30.0, ge=0, le=86400)
    where: Literal["site", "zone", "radius"] = "zone"
    radius_m: float | None = Field(default=None, gt=0)
    absent: list[AbsentSpec] = Field(default_factory=list)
    schedule: Schedule | None = None
    silence: Silence | None = None
    anchor: str | None = Field(default=None, description="The alias the alert id is anchored on")
    group_by: list[str] = Field(
        default_factory=list,
        description="Event fields (alias.field, alias.attrs.key) that also separate alerts")
    cooldown_s: float = Field(default=300.0, ge=0)
    escalate: list[EscalateStep] = Field(default_factory=list)
    evidence: EvidenceSpec = Field(default_factory=EvidenceSpec)
    actions: list[Action] = Field(default_factory=list)
    procedure: list[Annotated[str, Field(min_length=1, max_length=300)]] = Field(
        default_factory=list, max_length=30,
        description="Steps the operator follows, shown as a checklist on the console")

    @field_validator("title")
    @classmethod
    def _template_parses(cls, title: str) -> str:
        try:
            list(string.Formatter().parse(title))
        except ValueError as exc:
            raise ValueError(f"bad title template: {exc}") from None
        return title

    @field_validator("group_by")
    @classmethod
    def _paths(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if "." not in path:
                raise ValueError(f"group_by {path!r}: write alias.field (e.g. face.attrs.subject)")
        return paths

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        if (self.silence is None) == (not self.events):
            raise ValueError("a rule needs either events or silence (not both)")
        names = [e.name for e in self.events]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate event alias in {names}")
        known = set(names)
        names_in_title = TEMPLATE_NAMES | known | ({"sensor"} if self.silence else set())
        refs = [("anchor", self.anchor)] + [("absent.of", a.of) for a in self.absent]
        refs += [("evidence.events", n) for n in self.evidence.events or []]
        refs += [("group_by", path.split(".")[0]) for path in self.group_by]
        refs += [("events.of", e.of) for e in self.events]
        for what, ref in refs:
            if ref is not None and ref not in known:
                raise ValueError(f"{what}: unknown event alias {ref!r} (known: {sorted(known)})")
        _check_spans(self)
        if (self.where == "radius") != (self.radius_m is not None):
            raise ValueError("radius_m goes with where: radius (and only with it)")
        if self.silence is not None and (self.absent or self.match != "all"):
            raise ValueError("a silence rule takes no absent or match")
        for _, field, _, _ in string.Formatter().parse(self.title):
            head = (field or "").split(".")[0].split("[")[0]
            if field is not None and head not in names_in_title:
                raise ValueError(f"title: unknown name {head!r} (use {sorted(names_in_title)})")
        return self

    @cached_property
    def anchor_alias(self) -> str | None:
        return self.anchor or (self.events[0].name if self.events else None)

    @cached_property
    def horizon_s(self) -> float:
        """How long buffered events can still matter to this rule."""
        before = max((a.before_s for a in self.absent), default=0.0)
        after = max((a.after_s for a in self.absent), default=0.0)
        within = max((s.within_s for s in self.escalate), default=0.0)
        return self.window_s + before + after + within


def _check_spans(rule: Rule) -> None:
    """``before_s``/``after_s`` within ``window_s``; ``times`` alone and able to fit."""
    for event in rule.events:
        for span in (event.before_s or 0.0, event.after_s or 0.0):
            if span > rule.window_s:
                raise ValueError(f"events {event.name!r}: before_s/after_s {span:g} exceed "
                                 f"window_s {rule.window_s:g}")
        if event.times > 1 and len(rule.events) > 1:
            raise ValueError(f"events {event.name!r}: times goes in a rule of one event")
        if event.times > 1 and event.apart_s * (event.times - 1) > rule.window_s:
            raise ValueError(f"events {event.name!r}: {event.times} times {event.apart_s:g} s "
                             f"apart cannot fit in window_s {rule.window_s:g}")


class RuleSet(Strict):
    """A rules file. (Ids are checked unique by the loader, which can name the line.)"""

    version: Literal[1] = 1
    rules: list[Rule] = Field(default_factory=list)


def raise_severity(current: Severity, target: Severity) -> Severity:
    """The higher of two severities (escalation never lowers)."""
    return max(current, target, key=SEVERITY_ORDER.index)
