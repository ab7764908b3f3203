"""The rule schema: what a rule in ``config/rules.yaml`` may say (pydantic, strict).

A rule combines *events* (matched by source, type/kind and attributes), *where* they
happen (same site, same zone, or within ``radius_m``), *when* (all within ``window_s``,
in ``sequence``, and the *absence* of other events), under a *schedule* (the
``Schedule`` of ``argus/schedule.py``, as behaviours have), and produces an alert (title
template, severity, evidence, actions) that is de-duplicated within ``cooldown_s`` and
escalated. A ``silence`` rule instead fires when sensors stop reporting.
Matchers test the engine's compact events (see :mod:`pipelines.stages.correlate.rules.events`).
"""

from __future__ import annotations

import string
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from argus.schedule import Schedule
from schemas.alerts import MAX_EVIDENCE, Severity
from schemas.events import VideoKind
from schemas.sensors import SensorType

Scalar = str | int | float | bool
SEVERITY_ORDER = list(Severity)
ALIAS = r"^[a-z][a-z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _listify(value: Any) -> Any:
    """Accept ``x`` for ``[x]`` (``type: door`` as well as ``type: [door, access]``)."""
    return value if value is None or isinstance(value, list) else [value]


def _lower_strings(value: Any) -> Any:
    value = _listify(value)
    if value is not None and any(isinstance(v, bool) for v in value):
        raise ValueError("YAML reads on/off/yes/no/true/false as booleans: quote states, "
                         'e.g. "on"')
    return None if value is None else [str(v).lower() for v in value]


OneOrMany = Annotated[list[str] | None, BeforeValidator(_listify)]
States = Annotated[list[str] | None, BeforeValidator(_lower_strings)]


class ChangeKind(StrEnum):
    """What happened to an alert."""

    OPENED = "opened"
    UPDATED = "updated"
    ESCALATED = "escalated"


class Range(_Strict):
    """A numeric test: ``{gte: 60}``, ``{gt: 0, lt: 5}``."""

    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Range:
        if all(v is None for v in (self.gt, self.gte, self.lt, self.lte)):
            raise ValueError("a range needs at least one of gt, gte, lt, lte")
        return self

    def test(self, x: Any) -> bool:
        if not isinstance(x, int | float) or isinstance(x, bool):
            return False
        return ((self.gt is None or x > self.gt) and (self.gte is None or x >= self.gte)
                and (self.lt is None or x < self.lt) and (self.lte is None or x <= self.lte))


Condition = Range | list[Scalar] | Scalar


def _condition_holds(condition: Condition, value: Any) -> bool:
    if isinstance(condition, Range):
        return condition.test(value)
    if isinstance(condition, list):
        return value in condition
    return bool(value == condition)


class Rise(_Strict):
    """The sensor's value rose by at least ``by`` above its minimum of the last ``within_s``."""

    by: float = Field(gt=0)
    within_s: float = Field(gt=0, le=86400)


SENSOR_FIELDS = ("type", "state", "value", "rise", "sensor")
VIDEO_FIELDS = ("kind", "class_name", "count", "score", "camera")


class Matcher(_Strict):
    """Which events match. Sensor fields and video fields cannot be mixed in one matcher
    (use ``any_of``); the source follows from the fields used (or ``source``)."""

    source: Literal["sensor", "video", "any"] | None = None
    type: Annotated[list[SensorType] | None, BeforeValidator(_listify)] = None
    state: States = None
    value: Range | None = None
    rise: Rise | None = None
    sensor: OneOrMany = None
    kind: Annotated[list[VideoKind] | None, BeforeValidator(_listify)] = None
    class_name: OneOrMany = Field(default=None, alias="class")
    count: Range | None = None
    score: Range | None = None
    camera: OneOrMany = None
    zone: OneOrMany = None
    attrs: dict[str, Condition] = Field(default_factory=dict)
    any_of: list[Matcher] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_source(self) -> Matcher:
        sensor = [f for f in SENSOR_FIELDS if getattr(self, f) is not None]
        video = [f for f in VIDEO_FIELDS if getattr(self, f) is not None]
        if sensor and video:
            raise ValueError(f"mixes sensor fields {sensor} and video fields {video}; "
                             "use any_of for either")
        if (self.source == "sensor" and video) or (self.source == "video" and sensor):
            raise ValueError(f"source {self.source} with fields of the other source")
        return self

    @cached_property
    def resolved_source(self) -> str:
        if self.source is not None:
            return self.source
        if any(getattr(self, f) is not None for f in SENSOR_FIELDS):
            return "sensor"
        if any(getattr(self, f) is not None for f in VIDEO_FIELDS):
            return "video"
        return "any"

    def matches(self, ev: dict[str, Any]) -> bool:
        """Does the compact event ``ev`` match?"""
        src = self.resolved_source
        if src != "any" and ev["src"] != src:
            return False
        if ev["src"] == "sensor" and not self._sensor_ok(ev):
            return False
        if ev["src"] == "video" and not self._video_ok(ev):
            return False
        if self.zone is not None and ev.get("zone") not in self.zone:
            return False
        attrs = ev.get("attrs") or {}
        for key, condition in self.attrs.items():
            if not _condition_holds(condition, attrs.get(key, ev.get(key))):
                return False
        return self.any_of is None or any(m.matches(ev) for m in self.any_of)

    def _sensor_ok(self, ev: dict[str, Any]) -> bool:
        return ((self.type is None or ev["type"] in self.type)
                and (self.state is None or ev.get("state") in self.state)
                and (self.value is None or self.value.test(ev.get("value")))
                and (self.sensor is None or ev["sensor"] in self.sensor)
                and (self.rise is None
                     or ev.get("rise", {}).get(rise_key(self.rise.within_s), 0.0) >= self.rise.by))

    def _video_ok(self, ev: dict[str, Any]) -> bool:
        return ((self.kind is None or ev["kind"] in self.kind)
                and (self.class_name is None or ev["class"] in self.class_name)
                and (self.count is None or self.count.test(ev.get("count")))
                and (self.score is None or self.score.test(ev.get("score")))
                and (self.camera is None or ev["camera"] in self.camera))

    def rises(self) -> list[Rise]:
        """Every ``rise`` test in this matcher (and its alternatives)."""
        found = [self.rise] if self.rise is not None else []
        for sub in self.any_of or []:
            found.extend(sub.rises())
        return found


def rise_key(within_s: float) -> str:
    """The key of a rise window in a compact event's ``rise`` map (JSON-safe)."""
    return f"{within_s:g}"


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


class EscalateStep(_Strict):
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


class _Action(_Strict):
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


class Silence(_Strict):
    """Sensors of the site (of these types/ids, from the topology) silent for ``for_s``."""

    type: Annotated[list[SensorType] | None, BeforeValidator(_listify)] = None
    sensor: OneOrMany = None
    for_s: float = Field(gt=0)


class EvidenceSpec(_Strict):
    """Which events an alert keeps as evidence, and how many: the trigger (the first) and
    the newest ``max - 1`` (``schemas.alerts.cap_evidence``; the store keeps no more than
    ``MAX_EVIDENCE``, the default). The alert's audit trail lists every one of them."""

    events: list[str] | None = Field(default=None, description="Aliases to keep; default all")
    max: int = Field(default=MAX_EVIDENCE, ge=1, le=MAX_EVIDENCE,
                     description="The trigger and the newest max - 1 are kept")


TEMPLATE_NAMES = {"site", "site_name", "zone", "zone_name", "rule", "count", "severity"}


class Rule(_Strict):
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


class RuleSet(_Strict):
    """A rules file. (Ids are checked unique by the loader, which can name the line.)"""

    version: Literal[1] = 1
    rules: list[Rule] = Field(default_factory=list)


def raise_severity(current: Severity, target: Severity) -> Severity:
    """The higher of two severities (escalation never lowers)."""
    return max(current, target, key=SEVERITY_ORDER.index)
