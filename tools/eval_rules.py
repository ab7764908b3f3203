"""Measured replays of the correlation rules on real sensor logs (pure: no Kafka, no clock).

1. **Fire** — the smoke-detection readings (``data/iot/smoke_detection_subset``: one row
   per second with ``Temperature[C]``, ``Humidity[%]``, ``eCO2[ppm]`` and the ``Fire Alarm``
   label) become a smoke sensor (value = eCO2 ppm) and a temperature sensor in one zone,
   row *i* at ``T0 + i`` s, run through the shipped ``fire`` rule (and, for comparison,
   its smoke-only and temperature-only halves). Scoring:

   * *windows*: the replay is cut into ``--window-s`` windows; a window is labelled fire
     when most of its rows are; it is alerted when an alert's span [first, last seen]
     overlaps it. Precision, recall and F1 over windows.
   * *alerts*: an alert is correct when its span overlaps a labelled fire episode (a run
     of fire rows); *episodes*: detected when an alert overlaps them, with the delay from
     the episode's start to the first alert.

2. **After hours** — the van Kasteren house A log (reed switches on doors, cupboards and
   appliances; Amsterdam local time) replayed through the shipped ``after_hours_presence``
   rule for a house "open" 07:00-23:00: alerts per day (after de-duplication), next to the
   triggers a rule without cool-down would raise.

``python -m tools.eval_rules`` prints the tables and one JSON document (``--json FILE``
also writes it).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from argus.schedule import TimeWindow
from argus.settings import REPO_ROOT, get_settings
from argus.topology import Topology
from pipelines.stages.correlate.rules import (
    AlertChange,
    ChangeKind,
    Rule,
    RuleEngine,
    SiteContext,
    load_rules,
)
from schemas.alerts import Alert, Severity
from schemas.sensors import SensorEvent, SensorType
from services.sensor_gateway.replay import iter_kasteren

SMOKE_CSV = "data/iot/smoke_detection_subset/smoke_detection_iot_4col.csv"
SMOKE_COLUMNS = ("", "Temperature[C]", "Humidity[%]", "eCO2[ppm]", "Fire Alarm")
KASTEREN_LOG = "data/iot/kasteren_houseA/kasterenSenseData.txt"
T0 = 1_700_000_000.0
"""Replay origin of the smoke readings (UTC); row i is at T0 + i seconds."""
KASTEREN_TZ = "Europe/Amsterdam"
KASTEREN_OPEN = [{"from": "07:00", "to": "23:00"}]
KASTEREN_SENSORS: dict[int, tuple[str, str]] = {
    # log id: (sensor id, zone) — every one is a contact switch; replayed as type door
    1: ("k-microwave", "kitchen"), 5: ("k-toilet-door", "hall"), 6: ("k-bathroom-door", "hall"),
    7: ("k-cups-cupboard", "kitchen"), 8: ("k-fridge", "kitchen"),
    9: ("k-plates-cupboard", "kitchen"), 12: ("k-front-door", "hall"),
    13: ("k-dishwasher", "kitchen"), 14: ("k-toilet-flush", "toilet"),
    17: ("k-freezer", "kitchen"), 18: ("k-pans-cupboard", "kitchen"),
    20: ("k-washing-machine", "kitchen"), 23: ("k-groceries-cupboard", "kitchen"),
    24: ("k-bedroom-door", "hall"),
}


# --- replay --------------------------------------------------------------------------


def run(engine: RuleEngine, events: Iterable[SensorEvent]
        ) -> tuple[dict[str, Alert], list[AlertChange]]:
    """Feed events in order (``now`` = event time): the final state of every alert, and
    every change."""
    state: dict[str, Any] = {}
    changes = [c for event in events for c in engine.observe(state, event, event.ts)]
    return {c.alert.alert_id: c.alert for c in changes}, changes


# --- fire ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SmokeRow:
    index: int
    temperature: float
    humidity: float
    eco2: float
    fire: bool


def read_smoke(path: Path, limit: int | None = None, start: int = 0) -> list[SmokeRow]:
    """The smoke-detection rows from row ``start`` (checks the header's columns)."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = tuple(next(reader))
        if header != SMOKE_COLUMNS:
            raise ValueError(f"{path}: expected columns {SMOKE_COLUMNS}, got {header}")
        rows: list[SmokeRow] = []
        for lineno, cells in enumerate(reader, start=2):
            if lineno - 2 < start:
                continue
            if limit is not None and len(rows) >= limit:
                break
            try:
                rows.append(SmokeRow(int(cells[0]), float(cells[1]), float(cells[2]),
                                     float(cells[3]), cells[4].strip() == "1"))
            except (IndexError, ValueError) as exc:
                raise ValueError(f"{path}:{lineno}: bad row: {exc}") from None
    return rows


def smoke_events(rows: Sequence[SmokeRow]) -> Iterator[SensorEvent]:
    """Each row: the smoke sensor (eCO2 ppm) and the temperature sensor, at T0 + row s."""
    for row in rows:
        ts = T0 + row.index
        yield SensorEvent(event_id=f"lab-smoke:{row.index}", sensor_id="lab-smoke",
                          site_id="lab", zone_id="room", type=SensorType.SMOKE,
                          value=row.eco2, ts=ts)
        yield SensorEvent(event_id=f"lab-temp:{row.index}", sensor_id="lab-temp",
                          site_id="lab", zone_id="room", type=SensorType.TEMPERATURE,
                          value=row.temperature, ts=ts)


LAB = Topology.model_validate({
    "sites": [{"id": "lab", "name": "Smoke lab", "lat": 0.0, "lon": 0.0,
               "zones": [{"id": "room"}]}],
    "sensors": [{"id": "lab-smoke", "site": "lab", "zone": "room", "type": "smoke"},
                {"id": "lab-temp", "site": "lab", "zone": "room", "type": "temperature"}],
})


def episodes_of(rows: Sequence[SmokeRow], min_s: float) -> list[tuple[float, float]]:
    """Labelled fire episodes (runs of fire rows at least ``min_s`` long) as (start, end)."""
    out: list[tuple[float, float]] = []
    start: float | None = None
    for row in [*rows, SmokeRow(rows[-1].index + 1, 0.0, 0.0, 0.0, False)] if rows else []:
        ts = T0 + row.index
        if row.fire and start is None:
            start = ts
        if not row.fire and start is not None:
            if ts - start >= min_s:
                out.append((start, ts - 1))
            start = None
    return out


def _window_scores(windows: dict[int, list[bool]], window_s: float,
                   spans: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """Precision/recall over windows: a window is alerted when a span overlaps it."""
    tp = fp = fn = 0
    for w, labels in windows.items():
        lo, hi = T0 + w * window_s, T0 + (w + 1) * window_s
        truth = 2 * sum(labels) > len(labels)
        alerted = any(first < hi and last >= lo for first, last in spans)
        tp, fp, fn = tp + (truth and alerted), fp + (alerted and not truth), fn + (
            truth and not alerted)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "alerted_windows": tp + fp}


def score_fire(rows: Sequence[SmokeRow], changes: Sequence[AlertChange], window_s: float
               ) -> dict[str, Any]:
    """Score the alerts of a replay against the fire label (see the module doc).

    ``open``: windows an alert is open in (its span first..last seen); ``trigger``:
    windows in which the rule (re)confirmed an alert.
    """
    final: dict[str, Alert] = {c.alert.alert_id: c.alert for c in changes}
    spans = sorted((a.first_seen, a.last_seen) for a in final.values())
    triggers = [(c.alert.last_seen, c.alert.last_seen) for c in changes]
    windows: dict[int, list[bool]] = {}
    for row in rows:
        windows.setdefault(int(row.index // window_s), []).append(row.fire)
    episodes = episodes_of(rows, window_s)

    def overlaps(span: tuple[float, float], episode: tuple[float, float]) -> bool:
        return span[0] <= episode[1] and span[1] >= episode[0]

    delays = []
    for episode in episodes:
        starts = [max(s[0], episode[0]) for s in spans if overlaps(s, episode)]
        if starts:
            delays.append(min(starts) - episode[0])
    correct = sum(any(overlaps(s, e) for e in episodes) for s in spans)
    return {
        "windows": len(windows),
        "fire_windows": sum(2 * sum(v) > len(v) for v in windows.values()),
        "open": _window_scores(windows, window_s, spans),
        "trigger": _window_scores(windows, window_s, triggers),
        "alerts": len(spans), "alerts_on_fire": correct,
        "alert_precision": round(correct / len(spans), 4) if spans else 0.0,
        "episodes": len(episodes), "episodes_detected": len(delays),
        "median_delay_s": round(statistics.median(delays), 1) if delays else None,
        "open_fraction": round(sum(b - a for a, b in spans) / max(1, len(rows)), 4),
    }


def fire_variants(fire: Rule) -> dict[str, Rule]:
    """The shipped fire rule and its two halves (smoke only, temperature rise only)."""
    base = fire.model_dump(by_alias=True, exclude_none=True)
    out = {"fire (smoke + temperature rise)": fire}
    for name, keep in (("smoke only", "smoke"), ("temperature rise only", "heat")):
        data = {**base, "id": f"fire_{keep}_only", "anchor": keep,
                "events": [e for e in base["events"] if e["as"] == keep]}
        out[name] = Rule.model_validate(data)
    return out


def always_alerting(rows: Sequence[SmokeRow]) -> AlertChange:
    """The baseline: one alert open over the whole replay."""
    alert = Alert(alert_id="always", rule="always", title="always", severity=Severity.HIGH,
                  site_id="lab", zone_id="room", lat=0.0, lon=0.0,
                  first_seen=T0 + rows[0].index, last_seen=T0 + rows[-1].index, evidence=[],
                  created_at=T0)
    return AlertChange(change=ChangeKind.OPENED, alert=alert, actions=[])


def fire_replay(rows: Sequence[SmokeRow], fire: Rule, window_s: float) -> list[dict[str, Any]]:
    """Score each fire variant on the rows, and the always-alerting baseline."""
    results = []
    for name, rule in fire_variants(fire).items():
        started = time.perf_counter()
        _, changes = run(RuleEngine([rule], LAB), smoke_events(rows))
        score = score_fire(rows, changes, window_s)
        results.append({"rule": name, **score, "changes": len(changes),
                        "replay_s": round(time.perf_counter() - started, 2)})
    if rows:
        baseline = score_fire(rows, [always_alerting(rows)], window_s)
        baseline["trigger"] = baseline["open"]  # it "triggers" in every window
        results.append({"rule": "baseline: always alerting", **baseline})
    return results


def fire_sweep(rows: Sequence[SmokeRow], fire: Rule, window_s: float,
               smoke_ppm: Sequence[float], rise_by: Sequence[float]) -> list[dict[str, Any]]:
    """The combined rule at other smoke and rise thresholds (a sensitivity table on the
    same data, not a held-out estimate)."""
    base = fire.model_dump(by_alias=True, exclude_none=True)
    results = []
    for ppm in smoke_ppm:
        for by in rise_by:
            events = []
            for event in base["events"]:
                event = json.loads(json.dumps(event))
                for alt in event.get("any_of", []):
                    if "value" in alt:
                        alt["value"] = {"gte": ppm}
                if "rise" in event:
                    event["rise"]["by"] = by
                events.append(event)
            rule = Rule.model_validate({**base, "events": events})
            _, changes = run(RuleEngine([rule], LAB), smoke_events(rows))
            results.append({"rule": f"smoke >= {ppm:g} ppm, rise >= {by:g} C",
                            **score_fire(rows, changes, window_s)})
    return results


def _flat(result: dict[str, Any]) -> dict[str, Any]:
    """One table row of a fire score."""
    return {"rule": result["rule"],
            **{f"{k}_{m}": result[k][m] for k in ("open", "trigger")
               for m in ("precision", "recall", "f1")},
            "alerts": result["alerts"], "on_fire": result["alerts_on_fire"],
            "episodes": f"{result['episodes_detected']}/{result['episodes']}",
            "delay_s": result["median_delay_s"], "open_frac": result["open_fraction"]}


# --- after hours ---------------------------------------------------------------------


def kasteren_site(opening: list[dict[str, str]]) -> tuple[Topology, SiteContext]:
    topology = Topology.model_validate({
        "sites": [{"id": "house-a", "name": "van Kasteren house A", "lat": 52.37, "lon": 4.89,
                   "zones": [{"id": z} for z in ("hall", "kitchen", "toilet")]}],
        "sensors": [{"id": sid, "site": "house-a", "zone": zone, "type": "door"}
                    for sid, zone in KASTEREN_SENSORS.values()],
    })
    context = SiteContext(lat=52.37, lon=4.89, name="van Kasteren house A",
                          timezone=KASTEREN_TZ,
                          opening_hours=tuple(TimeWindow.model_validate(r) for r in opening),
                          zone_names={"hall": "hall", "kitchen": "kitchen", "toilet": "toilet"})
    return topology, context


def kasteren_events(path: Path, limit: int | None = None) -> list[SensorEvent]:
    """The log as sensor events (firing start = active, end = inactive), local time."""
    names = {k: v[0] for k, v in KASTEREN_SENSORS.items()}
    zones = dict(KASTEREN_SENSORS.values())
    tz = ZoneInfo(KASTEREN_TZ)
    out: list[SensorEvent] = []
    for item in iter_kasteren(path, names):
        if limit is not None and len(out) >= limit:
            break
        assert item.at is not None
        ts = item.at.replace(tzinfo=tz).timestamp()
        out.append(SensorEvent(event_id=f"{item.sensor_id}:{ts:.0f}:{item.state}",
                               sensor_id=item.sensor_id, site_id="house-a",
                               zone_id=zones[item.sensor_id], type=SensorType.DOOR,
                               state=item.state, ts=ts))
    return out


def after_hours_replay(events: Sequence[SensorEvent], rule: Rule) -> dict[str, Any]:
    """Alerts per local day of the after-hours rule, with its cool-down and with none."""
    topology, context = kasteren_site(KASTEREN_OPEN)
    tz = ZoneInfo(KASTEREN_TZ)
    if not events:
        return {"days": 0, "per_day": []}
    first = datetime.fromtimestamp(events[0].ts, tz).date()
    last = datetime.fromtimestamp(events[-1].ts, tz).date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    counts: dict[str, Counter[date]] = {}
    no_cooldown = Rule.model_validate({**rule.model_dump(by_alias=True, exclude_none=True),
                                       "cooldown_s": 0, "escalate": []})
    for label, variant in (("alerts", rule), ("triggers", no_cooldown)):
        engine = RuleEngine([variant], topology, {"house-a": context})
        alerts, _ = run(engine, events)
        counts[label] = Counter(datetime.fromtimestamp(a.first_seen, tz).date()
                                for a in alerts.values())
    events_per_day = Counter(datetime.fromtimestamp(e.ts, tz).date() for e in events)
    per_day: list[dict[str, Any]] = [
        {"day": d.isoformat(), "events": events_per_day[d], "triggers": counts["triggers"][d],
         "alerts": counts["alerts"][d]} for d in days]
    alerts_per_day = [counts["alerts"][d] for d in days]
    return {
        "days": len(days), "events": len(events), "open": KASTEREN_OPEN,
        "cooldown_s": rule.cooldown_s, "alerts": sum(alerts_per_day),
        "triggers": sum(p["triggers"] for p in per_day),
        "alerts_per_day_mean": round(statistics.mean(alerts_per_day), 2),
        "alerts_per_day_median": statistics.median(alerts_per_day),
        "alerts_per_day_max": max(alerts_per_day),
        "days_without_alert": sum(1 for a in alerts_per_day if a == 0), "per_day": per_day,
    }


# --- CLI -----------------------------------------------------------------------------


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(columns, widths, strict=True))
              for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rules", type=Path, default=REPO_ROOT / "config" / "rules.yaml")
    parser.add_argument("--shared", type=Path, default=None, help="default: ARGUS_SHARED")
    parser.add_argument("--start", type=int, default=0, help="first smoke row to replay")
    parser.add_argument("--limit", type=int, default=None, help="N smoke rows only")
    parser.add_argument("--kasteren-limit", type=int, default=None, help="first N log events")
    parser.add_argument("--window-s", type=float, default=60.0)
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--sweep", action="store_true",
                        help="also run the fire rule at other thresholds (slow)")
    args = parser.parse_args(argv)
    shared = args.shared or get_settings().shared
    rules = {r.id: r for r in load_rules(args.rules).rules}
    for needed in ("fire", "after_hours_presence"):
        if needed not in rules:
            sys.stderr.write(f"{args.rules}: no rule {needed!r}\n")
            return 1
    smoke = read_smoke(shared / SMOKE_CSV, args.limit, args.start)
    fire = fire_replay(smoke, rules["fire"], args.window_s)
    after = after_hours_replay(kasteren_events(shared / KASTEREN_LOG, args.kasteren_limit),
                               rules["after_hours_presence"])
    report: dict[str, Any] = {
        "fire": {"rows": len(smoke), "fire_rows": sum(r.fire for r in smoke),
                 "window_s": args.window_s, "variants": fire},
        "after_hours": after}
    if args.sweep:
        report["fire"]["sweep"] = fire_sweep(smoke, rules["fire"], args.window_s,
                                             [450, 600, 800, 1000, 2000], [0.5, 1.0, 2.0])
    out = sys.stdout
    out.write(f"fire rule on {len(smoke)} smoke-detection rows "
              f"({report['fire']['fire_rows']} labelled fire), {args.window_s:g} s windows\n")
    columns = list(_flat(fire[0]))
    out.write(_table([_flat(r) for r in fire], columns) + "\n")
    if args.sweep:
        out.write("\nsweep (same data):\n")
        out.write(_table([_flat(r) for r in report["fire"]["sweep"]], columns) + "\n")
    out.write(f"\nafter-hours rule on the van Kasteren log ({after['events']} events, "
              f"{after['days']} days, open 07:00-23:00 {KASTEREN_TZ})\n")
    out.write(_table(after["per_day"], ["day", "events", "triggers", "alerts"]))
    out.write(f"\nalerts/day mean {after['alerts_per_day_mean']} median "
              f"{after['alerts_per_day_median']} max {after['alerts_per_day_max']}; "
              f"{after['triggers']} triggers -> {after['alerts']} alerts "
              f"(cool-down {after['cooldown_s']:g} s)\n\n")
    text = json.dumps(report, indent=None, default=str)
    out.write(text + "\n")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
