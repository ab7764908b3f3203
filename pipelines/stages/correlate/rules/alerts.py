"""Open alerts as JSON-safe records in the engine state, and the changes they go through.

A record is opened by a rule's first trigger in a place (site, zone); later triggers in
the same place within the rule's cool-down update it (count, last seen, more evidence,
version + 1) and repeats past an escalation step raise its severity. Its evidence keeps
the trigger and the newest items within the rule's ``evidence.max``
(``schemas.alerts.cap_evidence``, the store's rule too).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from pipelines.stages.correlate.rules.context import SiteContext
from pipelines.stages.correlate.rules.events import Compact, alert_zone, evidence_of, template_view
from pipelines.stages.correlate.rules.model import (
    Action,
    ChangeKind,
    LightsAction,
    Rule,
    raise_severity,
)
from schemas.alerts import Alert, Evidence, Severity, cap_evidence

Record = dict[str, Any]


class AlertChange(BaseModel):
    """What one input did to one alert: the alert as it is now, and the actions to run."""

    model_config = ConfigDict(frozen=True)

    change: ChangeKind
    alert: Alert
    actions: list[Action]


def alert_id(rule: str, site: str, zone: str, anchor: str) -> str:
    """Deterministic alert id from the rule, the place and the anchoring event.

    >>> alert_id("confirmed_intrusion", "site", "zone", "pir:1.000:active")
    'confirmed_intrusion-7f3816bce347ec4a'
    """
    digest = hashlib.sha1(f"{rule}|{site}|{zone}|{anchor}".encode()).hexdigest()
    return f"{rule}-{digest[:16]}"


class _Lenient(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def lenient_view(view: Mapping[str, Any]) -> _Lenient:
    """An event's template view whose unknown keys read ``?``, nested ones too (an
    attribute only some events carry: ``{scene[attrs][why]}``).

    >>> view = lenient_view({"attrs": {"cell": 3}})
    >>> "{e[attrs][why]} / {e[attrs][cell]}".format_map({"e": view})
    '? / 3'
    """
    return _Lenient({k: lenient_view(v) if isinstance(v, Mapping) else v
                     for k, v in view.items()})


def render_title(rule: Rule, ctx: SiteContext, site: str, zone: str, count: int,
                 severity: Severity, events: Mapping[str, Compact]) -> str:
    """The rule's title template filled in (unknown keys of an event read ``?``)."""
    values = _Lenient(site=site, site_name=ctx.name or site, zone=zone,
                      zone_name=ctx.zone_names.get(zone, zone), rule=rule.id, count=count,
                      severity=severity.value)
    for alias, ev in events.items():
        values[alias] = lenient_view(template_view(ev))
    try:
        return rule.title.format_map(values)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return rule.title


def _add_evidence(rule: Rule, rec: Record, events: Mapping[str, Compact]) -> None:
    keep = rule.evidence.events
    have = {e["event_id"] for e in rec["evidence"]}
    for alias, ev in events.items():
        if (keep is None or alias.split("#")[0] in keep) and ev["id"] not in have:
            rec["evidence"].append(evidence_of(ev))
            have.add(ev["id"])
            if rec["camera"] is None and ev["src"] == "video":
                rec["camera"] = ev["camera"]
    rec["evidence"] = cap_evidence(rec["evidence"], rule.evidence.max)


def open_record(rule: Rule, ctx: SiteContext, events: Mapping[str, Compact], now: float,
                anchor: Compact | None = None) -> Record:
    """A new alert record for a trigger (``anchor``: default the rule's anchor event)."""
    anchor = anchor or events[rule.anchor_alias or next(iter(events))]
    zone = alert_zone(anchor)
    times = [e["ts"] for e in events.values()]
    rec: Record = {
        "id": alert_id(rule.id, anchor["site"], zone, anchor["id"]), "site": anchor["site"],
        "zone": zone, "first": min(times), "last": max(times), "count": 1,
        "sev": rule.severity.value, "ver": 1, "created": now, "camera": None, "steps": [],
        "evidence": [], "title": "",
    }
    _add_evidence(rule, rec, events)
    rec["title"] = render_title(rule, ctx, rec["site"], zone, 1, rule.severity, events)
    return rec


def update_record(rule: Rule, ctx: SiteContext, rec: Record, events: Mapping[str, Compact]
                  ) -> None:
    """A repeat within the cool-down: count, last seen, evidence, version."""
    rec["count"] += 1
    rec["last"] = max(rec["last"], *(e["ts"] for e in events.values()))
    rec["first"] = min(rec["first"], *(e["ts"] for e in events.values()))
    rec["ver"] += 1
    _add_evidence(rule, rec, events)
    rec["title"] = render_title(rule, ctx, rec["site"], rec["zone"], rec["count"],
                                Severity(rec["sev"]), events)


def escalate_repeats(rule: Rule, rec: Record) -> bool:
    """Apply the ``repeats`` steps the count has reached; True if the severity rose."""
    raised = False
    for i, step in enumerate(rule.escalate):
        if step.repeats is not None and rec["count"] >= step.repeats and i not in rec["steps"]:
            raised |= escalate(rec, i, step.severity)
    return raised


def escalate(rec: Record, step: int, severity: Severity) -> bool:
    """Mark ``step`` applied and raise the severity; True if it rose."""
    rec["steps"].append(step)
    new = raise_severity(Severity(rec["sev"]), severity)
    rose = new != Severity(rec["sev"])
    rec["sev"] = new.value
    return rose


def add_escalation_evidence(rule: Rule, rec: Record, ev: Compact) -> None:
    """Keep the event that escalated the alert (the newest item, within the cap)."""
    if ev["id"] not in {e["event_id"] for e in rec["evidence"]}:
        rec["evidence"].append(evidence_of(ev))
        rec["evidence"] = cap_evidence(rec["evidence"], rule.evidence.max)


def change_of(rule: Rule, ctx: SiteContext, rec: Record, kind: ChangeKind) -> AlertChange:
    """The alert as it is now, with the rule's actions for this kind of change."""
    lat, lon = ctx.positions.get(f"zone:{rec['zone']}", (ctx.lat, ctx.lon))
    alert = Alert(
        alert_id=rec["id"], rule=rule.id, title=rec["title"], severity=Severity(rec["sev"]),
        site_id=rec["site"], zone_id=rec["zone"], camera_id=rec["camera"], lat=lat, lon=lon,
        first_seen=rec["first"], last_seen=rec["last"], count=rec["count"],
        evidence=[Evidence.model_validate(e) for e in rec["evidence"]],
        created_at=rec["created"], version=rec["ver"],
    )
    actions: list[Action] = []
    for action in rule.actions:
        if kind in action.when:
            if isinstance(action, LightsAction) and action.zone is None:
                action = action.model_copy(update={"zone": rec["zone"]})
            actions.append(action)
    return AlertChange(change=kind, alert=alert, actions=actions)
