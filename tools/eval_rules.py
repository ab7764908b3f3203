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
also writes it). The fire replay and its scoring live in ``tools.eval_rules_fire``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from argus.schedule import TimeWindow
from argus.settings import REPO_ROOT, get_settings
from argus.topology import Topology
from pipelines.stages.correlate.rules import Rule, RuleEngine, SiteContext, load_rules
from schemas.sensors import SensorEvent, SensorType
from services.sensor_gateway.replay import iter_kasteren
from tools.eval_rules_fire import (
    SMOKE_CSV,
    fire_replay,
    fire_sweep,
    flat_row,
    read_smoke,
    run,
)

KASTEREN_LOG = "data/iot/kasteren_houseA/kasterenSenseData.txt"
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
    columns = list(flat_row(fire[0]))
    out.write(_table([flat_row(r) for r in fire], columns) + "\n")
    if args.sweep:
        out.write("\nsweep (same data):\n")
        out.write(_table([flat_row(r) for r in report["fire"]["sweep"]], columns) + "\n")
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
