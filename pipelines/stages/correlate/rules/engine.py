"""The rule engine: ``observe(state, event, now)`` and ``tick(state, now, site)``.

The state is one JSON-safe dict per site (a Faust table value, kept by its changelog)::

    {"v": 1, "site": ..., "clock": newest event time, "since": first seen (wall),
     "seen": [recent event ids], "last": {sensor: last event time},
     "series": {"<sensor>|<window>": [[ts, value], ...]},       # for ``rise``
     "rules": {rule_id: {"sig": ..., "buf": {alias: [event, ...]},
                         "open": {place: alert record}, "pending": [...]}}}

Buffers hold the compact events that match a rule's event (``<alias>``), absence
(``!<i>``) or escalation (``^<i>``) matchers, pruned to the rule's horizon in event time.
An event already seen is ignored (at-least-once redelivery). After :meth:`reload`, a
site's state migrates when next touched: rules with an unchanged id keep their open
alerts and cool-downs; removed rules lose their state.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from argus.topology import Topology
from pipelines.stages.correlate.rules.alerts import (
    AlertChange,
    Record,
    add_escalation_evidence,
    change_of,
    escalate,
    escalate_repeats,
    open_record,
    update_record,
)
from pipelines.stages.correlate.rules.context import (
    SiteContext,
    distance_m,
    schedule_allows,
    site_contexts,
)
from pipelines.stages.correlate.rules.events import (
    Compact,
    alert_zone,
    compact,
    lookup,
    update_rises,
)
from pipelines.stages.correlate.rules.matchers import Matcher
from pipelines.stages.correlate.rules.model import ChangeKind, EventSpec, Rule, RuleSet
from pipelines.stages.correlate.rules.repeats import repeated
from schemas.events import VideoEvent
from schemas.sensors import SensorEvent

STATE_VERSION = 1
SEEN_MAX = 200
BUFFER_MAX = 500
"""Per rule and alias: the newest events kept (bounds the state of a chatty sensor)."""
SEARCH_MAX = 2000
"""Combinations tried per event and rule before giving up (bounds the work per event)."""

State = dict[str, Any]


def _matchers(rule: Rule) -> list[tuple[str, Matcher]]:
    """Every matcher of a rule with its buffer key."""
    out: list[tuple[str, Matcher]] = [(e.name, e) for e in rule.events]
    out += [(f"!{i}", a) for i, a in enumerate(rule.absent)]
    out += [(f"^{i}", s.with_) for i, s in enumerate(rule.escalate) if s.with_ is not None]
    return out


def _signature(rule: Rule) -> str:
    return hashlib.sha1(rule.model_dump_json().encode()).hexdigest()[:16]


class RuleEngine:
    """Correlates video and sensor events of one site's state into alert changes."""

    def __init__(self, rules: RuleSet | Sequence[Rule], topology: Topology,
                 contexts: Mapping[str, SiteContext] | None = None) -> None:
        self.topology = topology
        self.contexts = dict(contexts) if contexts is not None else site_contexts(topology)
        self.rules: list[Rule] = []
        self.reload(rules)

    def reload(self, rules: RuleSet | Sequence[Rule]) -> None:
        """Swap the rules. Each site's state migrates lazily on its next event or tick."""
        listed = rules.rules if isinstance(rules, RuleSet) else list(rules)
        self.rules = [r for r in listed if r.enabled]
        self._sigs = {r.id: _signature(r) for r in self.rules}
        self._matchers = {r.id: _matchers(r) for r in self.rules}
        self._rise_windows = sorted({rise.within_s for r in self.rules
                                     for _, m in self._matchers[r.id] for rise in m.rises()})

    @property
    def needs_ticks(self) -> bool:
        """Whether some rule waits on time alone (an absence after an event, a silence)."""
        return any(r.silence is not None or any(a.after_s > 0 for a in r.absent)
                   for r in self.rules)

    @staticmethod
    def already_seen(state: State, event: VideoEvent | SensorEvent) -> bool:
        """Was this event observed before (a redelivery, which :meth:`observe` ignores)?"""
        return event.event_id in state.get("seen", [])

    # --- entry points ------------------------------------------------------------------

    def observe(self, state: State, event: VideoEvent | SensorEvent, now: float
                ) -> list[AlertChange]:
        """Add ``event`` to ``state`` (mutated in place); return the alert changes it makes."""
        ev = compact(event)
        if ev["site"] not in self.contexts:
            raise ValueError(f"site {ev['site']!r} is not in the topology")
        self._prepare(state, ev["site"], now)
        if ev["id"] in state["seen"]:
            return []
        state["seen"] = [*state["seen"][-(SEEN_MAX - 1):], ev["id"]]
        state["clock"] = max(state["clock"], ev["ts"])
        if ev["src"] == "sensor":
            state["last"][ev["sensor"]] = max(state["last"].get(ev["sensor"], 0.0), ev["ts"])
            update_rises(state["series"], ev, self._rise_windows)
        changes: list[AlertChange] = []
        for rule in self._rules_for(ev["site"]):
            rs = state["rules"][rule.id]
            if rule.silence is not None:
                if ev["src"] == "sensor":  # heard again: a later silence is a new alert
                    rs["open"].pop(f"sensor:{ev['sensor']}", None)
                continue
            changes += self._observe_rule(rule, rs, ev, state["clock"], now)
        changes += self._resolve_pending(state, state["clock"], now)
        self._prune(state)
        return changes

    def tick(self, state: State, now: float, site_id: str) -> list[AlertChange]:
        """Time passes at ``site_id``: fire due absences and silence (offline) rules."""
        self._prepare(state, site_id, now)
        changes = self._resolve_pending(state, max(state["clock"], now), now)
        for rule in self._rules_for(site_id):
            if rule.silence is not None:
                changes += self._check_silence(rule, state, site_id, now)
        self._prune(state)
        return changes

    # --- state -------------------------------------------------------------------------

    def _rules_for(self, site: str) -> list[Rule]:
        return [r for r in self.rules if r.sites is None or site in r.sites]

    def _prepare(self, state: State, site: str, now: float) -> None:
        """Fill a new state; migrate rule states after a reload."""
        for key, default in (("v", STATE_VERSION), ("site", site), ("clock", 0.0),
                             ("since", now), ("seen", []), ("last", {}), ("series", {}),
                             ("rules", {})):
            state.setdefault(key, default)
        rules = state["rules"]
        for rule_id in [r for r in rules if r not in self._sigs]:
            del rules[rule_id]
        for rule in self.rules:
            rs = rules.get(rule.id)
            if rs is None:
                rules[rule.id] = {"sig": self._sigs[rule.id], "buf": {}, "open": {},
                                  "pending": []}
            elif rs["sig"] != self._sigs[rule.id]:
                matchers = dict(self._matchers[rule.id])
                rs["buf"] = {k: [e for e in v if matchers[k].matches(e)]
                             for k, v in rs["buf"].items() if k in matchers}
                rs["pending"] = []
                rs["sig"] = self._sigs[rule.id]

    def _prune(self, state: State) -> None:
        clock = state["clock"]
        for rule in self.rules:
            rs = state["rules"].get(rule.id)
            if rs is None or rule.silence is not None:
                continue
            cutoff = clock - rule.horizon_s
            for key, events in rs["buf"].items():
                if len(events) > BUFFER_MAX or (events and min(
                        events[0]["ts"], events[-1]["ts"]) < cutoff):
                    rs["buf"][key] = [e for e in events if e["ts"] >= cutoff][-BUFFER_MAX:]
            keep_s = max(rule.cooldown_s, rule.horizon_s)
            rs["open"] = {k: r for k, r in rs["open"].items() if clock - r["last"] <= keep_s}

    # --- matching ----------------------------------------------------------------------

    def _observe_rule(self, rule: Rule, rs: dict[str, Any], ev: Compact, clock: float,
                      now: float) -> list[AlertChange]:
        roles: list[str] = []
        changes: list[AlertChange] = []
        for key, matcher in self._matchers[rule.id]:
            if not matcher.matches(ev):
                continue
            rs["buf"].setdefault(key, []).append(ev)
            if key.startswith("^"):
                changes += self._escalate_with(rule, rs, ev, int(key[1:]))
            elif not key.startswith("!"):
                roles.append(key)
        for role in roles:
            match = self._complete(rule, rs["buf"], role, ev)
            if match is not None:
                changes += self._decide(rule, rs, match, clock, now)
                break
        return changes

    def _same_place(self, rule: Rule, a: Compact, b: Compact) -> bool:
        if rule.where == "radius":
            pa = self.contexts[a["site"]].position(a)
            pb = self.contexts[b["site"]].position(b)
            return distance_m(pa, pb) <= (rule.radius_m or 0.0)
        if a["site"] != b["site"]:
            return False
        return rule.where == "site" or (a.get("zone") is not None and a["zone"] == b.get("zone"))

    def _complete(self, rule: Rule, buf: dict[str, list[Compact]], role: str, ev: Compact
                  ) -> dict[str, Compact] | None:
        """The best combination with ``ev`` as ``role``: the other events closest in time,
        within the window, in order (``sequence``), in the same place."""
        order = [e.name for e in rule.events]
        k = order.index(role)
        if rule.events[k].times > 1:
            return self._repeated(rule, rule.events[k], buf.get(role, []), ev)
        candidates: dict[str, list[Compact]] = {}
        for alias in order:
            if alias == role:
                continue
            i = order.index(alias)
            found = []
            for c in buf.get(alias, []):
                dt = c["ts"] - ev["ts"]
                if c["id"] == ev["id"] or abs(dt) > rule.window_s:
                    continue
                if rule.match == "sequence" and ((i < k and dt > 0) or (i > k and dt < 0)):
                    continue
                if self._same_place(rule, ev, c):
                    found.append(c)
            if not found:
                return None
            candidates[alias] = sorted(found, key=lambda c: (abs(c["ts"] - ev["ts"]), c["ts"]))
        aliases = list(candidates)
        for combo in itertools.islice(itertools.product(*candidates.values()), SEARCH_MAX):
            chosen = {role: ev, **dict(zip(aliases, combo, strict=True))}
            if self._consistent(rule, chosen):
                return {alias: chosen[alias] for alias in order}
        return None

    def _repeated(self, rule: Rule, spec: EventSpec, buf: list[Compact], ev: Compact
                  ) -> dict[str, Compact] | None:
        """``times: N``: ``ev`` and N - 1 others of the same place and ``group_by`` values
        (``<alias>`` is ``ev``, ``<alias>#1``... the others, in time order)."""
        key = self._group_key(rule, spec.name, ev)
        others = {c["id"]: c for c in buf if c["id"] != ev["id"]  # a redelivery counts once
                  and abs(c["ts"] - ev["ts"]) <= rule.window_s and self._same_place(rule, ev, c)
                  and self._group_key(rule, spec.name, c) == key}
        found = repeated(ev, list(others.values()), spec.times, spec.apart_s, rule.window_s)
        if found is None:
            return None
        names = iter(range(1, spec.times))
        return {spec.name if c is ev else f"{spec.name}#{next(names)}": c for c in found}

    @staticmethod
    def _group_key(rule: Rule, alias: str, ev: Compact) -> list[Any]:
        return [lookup(ev, path.partition(".")[2]) for path in rule.group_by
                if path.split(".")[0] == alias]

    def _consistent(self, rule: Rule, chosen: dict[str, Compact]) -> bool:
        events = list(chosen.values())
        if len({e["id"] for e in events}) != len(events):
            return False
        times = [e["ts"] for e in events]
        if max(times) - min(times) > rule.window_s:
            return False
        if rule.match == "sequence":
            ordered = [chosen[e.name]["ts"] for e in rule.events]
            if any(a > b for a, b in itertools.pairwise(ordered)):
                return False
        for spec in rule.events:  # of / before_s / after_s
            if spec.of is not None:
                dt = chosen[spec.name]["ts"] - chosen[spec.of]["ts"]
                before = rule.window_s if spec.before_s is None else spec.before_s
                after = rule.window_s if spec.after_s is None else spec.after_s
                if not -before <= dt <= after:
                    return False
        return all(self._same_place(rule, a, b) for a, b in itertools.combinations(events, 2))

    def _absences_ok(self, rule: Rule, rs: dict[str, Any], match: dict[str, Compact]) -> bool:
        used = {e["id"] for e in match.values()}
        for i, spec in enumerate(rule.absent):
            ref = match[spec.of or rule.events[0].name]
            lo, hi = ref["ts"] - spec.before_s, ref["ts"] + spec.after_s
            for c in rs["buf"].get(f"!{i}", []):
                if c["id"] not in used and lo <= c["ts"] <= hi and self._same_place(rule, c, ref):
                    return False
        return True

    def _decide(self, rule: Rule, rs: dict[str, Any], match: dict[str, Compact], clock: float,
                now: float) -> list[AlertChange]:
        """A complete combination: check schedule and absences (now, or when due)."""
        t = max(e["ts"] for e in match.values())
        if not schedule_allows(rule.schedule, self.contexts[match[rule.events[0].name]["site"]],
                               t):
            return []
        due = max((match[a.of or rule.events[0].name]["ts"] + a.after_s for a in rule.absent),
                  default=t)
        if due > clock:
            ids = sorted(e["id"] for e in match.values())
            if all(sorted(e["id"] for e in p["events"].values()) != ids for p in rs["pending"]):
                rs["pending"].append({"events": match, "due": due})
            return []
        if not self._absences_ok(rule, rs, match):
            return []
        return [self._trigger(rule, rs, match, now)]

    def _resolve_pending(self, state: State, clock: float, now: float) -> list[AlertChange]:
        changes: list[AlertChange] = []
        for rule in self.rules:
            rs = state["rules"].get(rule.id)
            if rs is None or not rs["pending"]:
                continue
            due = [p for p in rs["pending"] if p["due"] <= clock]
            rs["pending"] = [p for p in rs["pending"] if p["due"] > clock]
            for pending in sorted(due, key=lambda p: p["due"]):
                if self._absences_ok(rule, rs, pending["events"]):
                    changes.append(self._trigger(rule, rs, pending["events"], now))
        return changes

    # --- alerts ------------------------------------------------------------------------

    def _trigger(self, rule: Rule, rs: dict[str, Any], match: dict[str, Compact], now: float
                 ) -> AlertChange:
        """Open a new alert, or update the open one of this place (site and zone, or the
        whole site for ``where: site``, and the ``group_by`` values) within the cool-down."""
        anchor = match[rule.anchor_alias or rule.events[0].name]
        ctx = self.contexts[anchor["site"]]
        place = "|".join([anchor["site"], "*" if rule.where == "site" else alert_zone(anchor), *(
            str(lookup(match[path.split(".")[0]], path.partition(".")[2]))
            for path in rule.group_by)])
        rec: Record | None = rs["open"].get(place)
        t = max(e["ts"] for e in match.values())
        if rec is not None and rec["last"] - rule.cooldown_s <= t <= rec["last"] + rule.cooldown_s:
            update_record(rule, ctx, rec, match)
            kind = ChangeKind.ESCALATED if escalate_repeats(rule, rec) else ChangeKind.UPDATED
            return change_of(rule, ctx, rec, kind)
        rec = open_record(rule, ctx, match, now)
        rs["open"][place] = rec
        for i, step in enumerate(rule.escalate):  # escalating events seen before the alert
            if step.with_ is None:
                continue
            seen = [e for e in rs["buf"].get(f"^{i}", [])
                    if self._near_record(rule, rec, e, step.within_s)]
            if seen:
                escalate(rec, i, step.severity)
                add_escalation_evidence(rule, rec, seen[-1])
        return change_of(rule, ctx, rec, ChangeKind.OPENED)

    def _near_record(self, rule: Rule, rec: Record, ev: Compact, within_s: float) -> bool:
        place = {"site": rec["site"], "zone": rec["zone"]}
        return (rec["first"] - within_s <= ev["ts"] <= rec["last"] + within_s
                and self._same_place(rule, ev, place))

    def _escalate_with(self, rule: Rule, rs: dict[str, Any], ev: Compact, step: int
                       ) -> list[AlertChange]:
        changes = []
        spec = rule.escalate[step]
        for rec in rs["open"].values():
            if step in rec["steps"] or not self._near_record(rule, rec, ev, spec.within_s):
                continue
            if escalate(rec, step, spec.severity):
                add_escalation_evidence(rule, rec, ev)
                rec["ver"] += 1
                changes.append(change_of(rule, self.contexts[rec["site"]], rec,
                                         ChangeKind.ESCALATED))
        return changes

    def _check_silence(self, rule: Rule, state: State, site: str, now: float
                       ) -> list[AlertChange]:
        silence = rule.silence
        assert silence is not None
        rs = state["rules"][rule.id]
        changes = []
        for sensor in self.topology.sensors:
            if sensor.site != site or (silence.type is not None
                                       and sensor.type not in silence.type) or (
                    silence.sensor is not None and sensor.id not in silence.sensor):
                continue
            last = state["last"].get(sensor.id, state["since"])
            key = f"sensor:{sensor.id}"
            if now - last < silence.for_s or key in rs["open"]:
                continue
            if not schedule_allows(rule.schedule, self.contexts[site], now):
                continue
            quiet: Compact = {"id": f"{sensor.id}:silent-since:{last:.3f}", "src": "sensor",
                              "site": site, "ts": last, "zone": sensor.zone,
                              "sensor": sensor.id, "type": sensor.type.value}
            rec = open_record(rule, self.contexts[site], {"sensor": quiet}, now)
            rec["last"] = now
            rs["open"][key] = rec
            changes.append(change_of(rule, self.contexts[site], rec, ChangeKind.OPENED))
        return changes
