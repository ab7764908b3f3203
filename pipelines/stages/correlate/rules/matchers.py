"""Rule matchers: which events a rule's ``events``, ``absent`` and ``escalate.with`` entries
match (by source, sensor type/state/value/rise, video kind/class/count/score/camera, zone
and attributes), and the strict pydantic base the rule schema (``model.py``) shares.
Matchers test the engine's compact events (see :mod:`pipelines.stages.correlate.rules.events`).
"""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from schemas.events import VideoKind
from schemas.sensors import SensorType

Scalar = str | int | float | bool


class Strict(BaseModel):
    """Frozen, no unknown keys, fields by name or alias: the base of every rule model."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def listify(value: Any) -> Any:
    """Accept ``x`` for ``[x]`` (``type: door`` as well as ``type: [door, access]``)."""
    return value if value is None or isinstance(value, list) else [value]


def _lower_strings(value: Any) -> Any:
    value = listify(value)
    if value is not None and any(isinstance(v, bool) for v in value):
        raise ValueError("YAML reads on/off/yes/no/true/false as booleans: quote states, "
                         'e.g. "on"')
    return None if value is None else [str(v).lower() for v in value]


OneOrMany = Annotated[list[str] | None, BeforeValidator(listify)]
States = Annotated[list[str] | None, BeforeValidator(_lower_strings)]


class Range(Strict):
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


class Rise(Strict):
    """The sensor's value rose by at least ``by`` above its minimum of the last ``within_s``."""

    by: float = Field(gt=0)
    within_s: float = Field(gt=0, le=86400)


SENSOR_FIELDS = ("type", "state", "value", "rise", "sensor")
VIDEO_FIELDS = ("kind", "class_name", "count", "score", "camera")


class Matcher(Strict):
    """Which events match. Sensor fields and video fields cannot be mixed in one matcher
    (use ``any_of``); the source follows from the fields used (or ``source``)."""

    source: Literal["sensor", "video", "any"] | None = None
    type: Annotated[list[SensorType] | None, BeforeValidator(listify)] = None
    state: States = None
    value: Range | None = None
    rise: Rise | None = None
    sensor: OneOrMany = None
    kind: Annotated[list[VideoKind] | None, BeforeValidator(listify)] = None
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
