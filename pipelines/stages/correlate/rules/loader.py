"""Load ``config/rules.yaml``: pydantic validation, then references checked against the
topology. Every error names the file, the line and the field::

    config/rules.yaml:12: rules[0].window_s: Input should be greater than or equal to 0
    config/rules.yaml:30: rules[2].events[0].sensor: unknown sensor 'pir-9'
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from argus.redact import redact_url
from argus.topology import Topology, _field, _line_of
from pipelines.stages.correlate.rules.matchers import Matcher
from pipelines.stages.correlate.rules.model import LightsAction, PtzAction, RuleSet

Loc = tuple[int | str, ...]


class RuleError(ValueError):
    """A rules file that cannot be used; the message names file, line and field."""


def _matchers(rules: RuleSet) -> Iterator[tuple[Loc, Matcher]]:
    """Every matcher with its location in the file (``any_of`` included)."""

    def walk(loc: Loc, matcher: Matcher) -> Iterator[tuple[Loc, Matcher]]:
        yield loc, matcher
        for j, sub in enumerate(matcher.any_of or []):
            yield from walk((*loc, "any_of", j), sub)

    for i, rule in enumerate(rules.rules):
        for j, event in enumerate(rule.events):
            yield from walk(("rules", i, "events", j), event)
        for j, absent in enumerate(rule.absent):
            yield from walk(("rules", i, "absent", j), absent)
        for j, step in enumerate(rule.escalate):
            if step.with_ is not None:
                yield from walk(("rules", i, "escalate", j, "with"), step.with_)


def _duplicate_ids(rules: RuleSet) -> Iterator[tuple[Loc, str]]:
    seen: set[str] = set()
    for i, rule in enumerate(rules.rules):
        if rule.id in seen:
            yield ("rules", i, "id"), f"duplicate rule id {rule.id!r}"
        seen.add(rule.id)


def _reference_errors(rules: RuleSet, topology: Topology) -> Iterator[tuple[Loc, str]]:
    sites = {s.id for s in topology.sites}
    zones = {z.id for s in topology.sites for z in s.zones}
    sensors = {s.id for s in topology.sensors}
    cameras = {c.id for c in topology.cameras}
    for i, rule in enumerate(rules.rules):
        for site in rule.sites or []:
            if site not in sites:
                yield ("rules", i, "sites"), f"unknown site {site!r}"
        silent = rule.silence.sensor if rule.silence is not None else None
        for sensor in silent or []:
            if sensor not in sensors:
                yield ("rules", i, "silence", "sensor"), f"unknown sensor {sensor!r}"
        for j, action in enumerate(rule.actions):
            if isinstance(action, PtzAction) and action.camera not in cameras:
                yield ("rules", i, "actions", j, "camera"), f"unknown camera {action.camera!r}"
            if isinstance(action, LightsAction) and action.zone not in (None, *zones):
                yield ("rules", i, "actions", j, "zone"), f"unknown zone {action.zone!r}"
    for loc, matcher in _matchers(rules):
        for field, known, what in (("sensor", sensors, "sensor"), ("camera", cameras, "camera"),
                                   ("zone", zones, "zone")):
            for ref in getattr(matcher, field) or []:
                if ref not in known:
                    yield (*loc, field), f"unknown {what} {ref!r}"


def parse_rules(text: str, source: str = "<string>", topology: Topology | None = None
                ) -> RuleSet:
    """Parse and validate rules YAML (and its references, given a topology)."""
    try:
        node = yaml.compose(text)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # the message quotes the offending line, which may hold a webhook URL's token
        raise RuleError(redact_url(f"{source}: invalid YAML: {exc}")) from None
    if not isinstance(data, dict):
        raise RuleError(f"{source}:1: the rules file must be a mapping with 'rules'")
    try:
        rules = RuleSet.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = [p for p in err["loc"] if not (isinstance(p, str) and (
                p.startswith("function-") or p in ("webhook", "lights", "ptz")))]
            lines.append(f"{source}:{_line_of(node, loc) or 1}: {_field(loc)}: {err['msg']}")
        raise RuleError("\n".join(lines)) from None
    found = list(_duplicate_ids(rules))
    if topology is not None:
        found += list(_reference_errors(rules, topology))
    if found:
        raise RuleError("\n".join(f"{source}:{_line_of(node, loc) or 1}: {_field(loc)}: {msg}"
                                   for loc, msg in found))
    return rules


def load_rules(path: Path, topology: Topology | None = None) -> RuleSet:
    """Read and validate a rules file."""
    if not path.exists():
        raise RuleError(f"{path}: rules file not found (set ARGUS_RULES)")
    return parse_rules(path.read_text(encoding="utf-8"), str(path), topology)
